//! Automatic HTTPS: homefront obtains a certificate from a local Pebble (the ACME test CA,
//! Debian package `pebble`) over loopback, answering HTTP-01 on its HTTP listener or
//! TLS-ALPN-01 on its HTTPS listener, and serves it by SNI. Pebble resolves the names through
//! its companion DNS server (pebble-challtestsrv), which answers 127.0.0.1 for every name.
//! `./dev.sh test` installs pebble when it is missing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn key() -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap()).unwrap()
}

fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>, ca: bool) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(
        &BigNum::from_u32(if ca { 1 } else { 2 })
            .unwrap()
            .to_asn1_integer()
            .unwrap(),
    )
    .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap())
            .unwrap();
    } else {
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256()).unwrap();
    b.build()
}

/// A CA for Pebble's own HTTPS (which homefront's ACME client is told to trust).
fn pebble_tls(dir: &Path) {
    let ca_key = key();
    let ca = cert("test CA for pebble", &ca_key, None, true);
    let leaf_key = key();
    let leaf = cert("localhost", &leaf_key, Some((&ca, &ca_key)), false);
    std::fs::write(dir.join("pebble-ca.pem"), ca.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("pebble.pem"), leaf.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("pebble.key"), leaf_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
}

fn wait_tcp(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts pebble-challtestsrv (DNS only) and pebble, validating against `http`/`https`.
/// Returns the processes, the directory URL and Pebble's management port.
fn start_pebble(dir: &Path, http: u16, https: u16) -> (Vec<Killed>, String, u16) {
    pebble_tls(dir);
    let (dns, dns_mgmt, acme, mgmt) = (free_port(), free_port(), free_port(), free_port());
    let log = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).unwrap());
    let challtestsrv = Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{dns}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .stdout(log("challtestsrv.log"))
        .stderr(log("challtestsrv.err"))
        .spawn()
        .expect("pebble-challtestsrv (Debian package pebble; ./dev.sh test installs it)");
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.join("pebble.pem"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": http,
            "tlsPort": https,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }
    });
    std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
    let pebble = Command::new("pebble")
        .arg("-config")
        .arg(dir.join("pebble.json"))
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        // No artificial validation delays, no injected bad nonces.
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(log("pebble.log"))
        .stderr(log("pebble.err"))
        .spawn()
        .expect("pebble (Debian package pebble; ./dev.sh test installs it)");
    let procs = vec![Killed(challtestsrv), Killed(pebble)];
    wait_tcp(acme);
    wait_tcp(mgmt);
    (procs, format!("https://127.0.0.1:{acme}/dir"), mgmt)
}

/// The certificate the edge presents for `sni`.
fn served_cert(port: u16, sni: &str) -> X509 {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let s = b.build().connect(sni, tcp).unwrap();
    s.ssl().peer_certificate().unwrap()
}

async fn obtains_and_serves(challenge: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let pebble_dir = tempfile::tempdir().unwrap();
    let (_pebble, directory, mgmt) = start_pebble(pebble_dir.path(), ports.http, ports.https);
    std::fs::copy(
        pebble_dir.path().join("pebble-ca.pem"),
        dir.path().join("pebble-ca.pem"),
    )
    .unwrap();
    let config = format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
tls:
  acme:
    directory: "{directory}"
    domains: [shop.acme.test, www.shop.acme.test]
    email: ops@acme.test
    ca_file: pebble-ca.pem
    challenge: {challenge}
origins:
  site: {{ bucket: site }}
distributions:
  - domains: [shop.acme.test, www.shop.acme.test]
    behaviors:
      - {{ path_pattern: "*", origin: site }}
buckets:
  site: {{}}
origin_server:
  listen: "127.0.0.1:{{origin}}"
  credentials: [ {{ access_key_id: testkey, secret_access_key_file: origin.key }} ]
"#
    );
    let mut hf = Homefront::start_on(dir, ports, &config, &[("origin.key", SECRET_KEY.as_bytes())], &[]);

    // Until the CA has issued, the self-signed certificate is served; then Pebble's.
    let deadline = Instant::now() + Duration::from_secs(90);
    let served = loop {
        let c = served_cert(hf.ports.https, "shop.acme.test");
        let issuer = format!("{:?}", c.issuer_name());
        if issuer.to_ascii_lowercase().contains("pebble") {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate from Pebble after 90 s; homefront said:\n{}",
            hf.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let names: Vec<String> = served
        .subject_alt_names()
        .unwrap()
        .iter()
        .filter_map(|n| n.dnsname().map(str::to_string))
        .collect();
    assert!(
        names.contains(&"shop.acme.test".to_string()) && names.contains(&"www.shop.acme.test".to_string()),
        "{names:?}"
    );
    // Signed by Pebble's intermediate (from its management API).
    let mgmt_client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let intermediate = mgmt_client
        .get(format!("https://127.0.0.1:{mgmt}/intermediates/0"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let intermediate = X509::from_pem(&intermediate).unwrap();
    assert!(
        served.verify(&intermediate.public_key().unwrap()).unwrap(),
        "not signed by Pebble's CA"
    );
    // The other name is served the same certificate; the files are in data_dir/acme.
    let www = served_cert(hf.ports.https, "www.shop.acme.test");
    assert_eq!(www.to_der().unwrap(), served.to_der().unwrap());
    let stored = std::fs::read(hf.dir.path().join("data/acme/shop.acme.test.pem")).unwrap();
    assert_eq!(
        X509::stack_from_pem(&stored).unwrap()[0].to_der().unwrap(),
        served.to_der().unwrap()
    );

    // After a restart the stored certificate is served at once, with no new order.
    hf.crash();
    hf.restart(&["serve".into(), "-c".into(), "homefront.yaml".into()]);
    hf.wait_port(hf.ports.https);
    let again = served_cert(hf.ports.https, "shop.acme.test");
    assert_eq!(again.to_der().unwrap(), served.to_der().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_pebble_over_http_01() {
    obtains_and_serves("http-01").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_pebble_over_tls_alpn_01() {
    obtains_and_serves("tls-alpn-01").await;
}
