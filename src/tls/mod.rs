//! Certificates for the edge: a store chosen by SNI, the self-signed `localhost` default,
//! and the pingora TLS settings (TLS 1.2/1.3, HTTP/2 by ALPN).

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{NameType, SslRef, SslVersion};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TlsAccept;
use prometheus::{register_int_counter, register_int_counter_vec, IntCounter, IntCounterVec};

use crate::config::compile::secrets::read_certificate_pair;
use crate::config::model::CertificateSpec;

pub mod acme;

/// A certificate problem, naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// One certificate chain and its key, ready for handshakes.
pub struct LoadedCert {
    pub domains: Vec<String>,
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

/// Certificates by name. Exact names first, then the most specific `*.` wildcard, else the
/// first certificate (the default).
pub struct CertStore {
    certs: Vec<LoadedCert>,
    exact: std::collections::HashMap<String, usize>,
    wildcard: std::collections::HashMap<String, usize>,
}

impl CertStore {
    pub fn load(specs: &[CertificateSpec]) -> Result<CertStore, TlsError> {
        let mut certs = Vec::with_capacity(specs.len());
        for spec in specs {
            certs.push(load_pair(&spec.cert, &spec.key, &spec.domains)?);
        }
        Self::from_loaded(certs)
    }

    pub fn from_loaded(certs: Vec<LoadedCert>) -> Result<CertStore, TlsError> {
        if certs.is_empty() {
            return Err(TlsError("no TLS certificate to serve".into()));
        }
        let mut exact = std::collections::HashMap::new();
        let mut wildcard = std::collections::HashMap::new();
        for (i, c) in certs.iter().enumerate() {
            for d in &c.domains {
                let d = d.to_ascii_lowercase();
                match d.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()).or_insert(i),
                    None => exact.entry(d).or_insert(i),
                };
            }
        }
        Ok(CertStore { certs, exact, wildcard })
    }

    /// The certificate for a server name; `None` or no match → the first certificate.
    pub fn select(&self, sni: Option<&str>) -> &LoadedCert {
        &self.certs[self.select_index(sni).unwrap_or(0)]
    }

    /// Index of the matching certificate, `None` when only the default applies.
    pub fn select_index(&self, sni: Option<&str>) -> Option<usize> {
        let name = sni?.trim_end_matches('.').to_ascii_lowercase();
        if let Some(&i) = self.exact.get(&name) {
            return Some(i);
        }
        // `*.example.com` covers exactly one label: `a.example.com`, not `a.b.example.com`.
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).copied()
    }
}

fn load_pair(cert: &Path, key: &Path, domains: &[String]) -> Result<LoadedCert, TlsError> {
    let (chain, pkey) = read_certificate_pair(cert, key).map_err(TlsError)?;
    Ok(LoadedCert {
        domains: domains.to_vec(),
        chain,
        key: pkey,
    })
}

/// Reuses `dir/localhost.pem` + `dir/localhost.key` when they load, else generates a
/// self-signed ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1 (825 days).
pub fn ensure_self_signed(dir: &Path) -> Result<CertificateSpec, TlsError> {
    let cert = dir.join("localhost.pem");
    let key = dir.join("localhost.key");
    let spec = CertificateSpec {
        domains: vec!["localhost".into()],
        cert: cert.clone(),
        key: key.clone(),
    };
    if cert.exists() && key.exists() && load_pair(&cert, &key, &spec.domains).is_ok() {
        return Ok(spec);
    }
    let (cert_pem, key_pem) = generate_self_signed("localhost")
        .map_err(|e| TlsError(format!("cannot generate a self-signed certificate: {e}")))?;
    let write = |p: &PathBuf, data: &[u8], mode: u32| {
        crate::util::write_file_atomic(p, data, mode)
            .map_err(|e| TlsError(format!("cannot write {}: {e}", p.display())))
    };
    write(&key, &key_pem, 0o600)?;
    write(&cert, &cert_pem, crate::util::PRIVATE_FILE_MODE)?;
    tracing::info!(
        "generated a self-signed certificate for localhost in {}",
        cert.display()
    );
    Ok(spec)
}

fn generate_self_signed(name: &str) -> Result<(Vec<u8>, Vec<u8>), openssl::error::ErrorStack> {
    let (cert, key) = self_signed(&[("CN", name), ("O", "homefront self-signed")], 825, |b| {
        b.append_extension(BasicConstraints::new().build()?)?;
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let san = SubjectAlternativeName::new()
            .dns(name)
            .ip("127.0.0.1")
            .ip("::1")
            .build(&b.x509v3_context(None, None))?;
        b.append_extension(san)
    })?;
    Ok((cert.to_pem()?, key.private_key_to_pem_pkcs8()?))
}

/// A fresh P-256 key and a certificate it signs itself: `subject` entries (issuer alike),
/// a random serial, valid from now for `days`, with the extensions `extend` appends.
pub(crate) fn self_signed(
    subject: &[(&str, &str)],
    days: u32,
    extend: impl FnOnce(&mut openssl::x509::X509Builder) -> Result<(), openssl::error::ErrorStack>,
) -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    for (field, value) in subject {
        name.append_entry_by_text(field, value)?;
    }
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(days)?.as_ref())?;
    extend(&mut b)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

/// `homefront_tls_handshakes_total{sni_matched}`: certificate selections during handshakes.
pub static HANDSHAKES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_tls_handshakes_total",
        "Full TLS handshakes on the edge (a certificate chosen; resumptions are counted in homefront_tls_resumptions_total), by whether the SNI matched a configured certificate name.",
        &["sni_matched"]
    )
    .expect("metric registered once")
});

/// `homefront_tls_resumptions_total`: handshakes that resumed a session (a ticket from an
/// earlier connection). These choose no certificate, so `homefront_tls_handshakes_total`
/// does not see them.
pub static RESUMPTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "homefront_tls_resumptions_total",
        "TLS handshakes on the edge that resumed an earlier session (no certificate chosen)."
    )
    .expect("metric registered once")
});

/// The server name (SNI) a TLS connection was made for, lower-case, without a trailing dot:
/// kept in the connection's `SslDigest` extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerName(pub String);

/// Picks the certificate per handshake from a swappable store (or, for an ACME
/// TLS-ALPN-01 validation, the challenge certificate).
struct SniCallback {
    store: Arc<ArcSwap<CertStore>>,
    acme: Arc<acme::Challenges>,
}

#[async_trait]
impl TlsAccept for SniCallback {
    async fn certificate_callback(&self, ssl: &mut SslRef) {
        let store = self.store.load();
        let sni = ssl.servername(NameType::HOST_NAME).map(str::to_string);
        // TLS 1.3 negotiates ALPN before the certificate is chosen: a validation handshake
        // (only `acme-tls/1` offered, and selected) gets the challenge certificate.
        let challenge = (ssl.selected_alpn_protocol() == Some(acme::ACME_TLS_ALPN))
            .then(|| sni.as_deref().and_then(|n| self.acme.tls_alpn01(n)))
            .flatten();
        let idx = store.select_index(sni.as_deref());
        HANDSHAKES
            .with_label_values(&[if idx.is_some() { "yes" } else { "no" }])
            .inc();
        let cert = match &challenge {
            Some(c) => c.as_ref(),
            None => &store.certs[idx.unwrap_or(0)],
        };
        let result = (|| {
            pingora::tls::ext::ssl_use_certificate(ssl, &cert.chain[0])?;
            for extra in &cert.chain[1..] {
                pingora::tls::ext::ssl_add_chain_cert(ssl, extra)?;
            }
            pingora::tls::ext::ssl_use_private_key(ssl, &cert.key)
        })();
        if let Err(e) = result {
            // The handshake then fails for this client only.
            tracing::warn!("cannot use the certificate for {:?}: {e}", sni);
        }
    }

    /// The connection keeps the server name the client asked for ([`ServerName`]), for the
    /// edge's check that each request's Host belongs to the same distribution.
    async fn handshake_complete_callback(&self, ssl: &SslRef) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        if ssl.session_reused() {
            RESUMPTIONS.inc();
        }
        let sni = ssl.servername(NameType::HOST_NAME)?;
        Some(Arc::new(ServerName(sni.trim_end_matches('.').to_ascii_lowercase())))
    }
}

/// Listener settings: certificate by SNI from `store`, TLS 1.2 and 1.3 only, h2 preferred
/// by ALPN with HTTP/1.1 as the fallback, and `acme-tls/1` while a TLS-ALPN-01 validation
/// of that name is under way.
pub fn tls_settings(store: Arc<ArcSwap<CertStore>>, acme: Arc<acme::Challenges>) -> Result<TlsSettings, TlsError> {
    LazyLock::force(&HANDSHAKES);
    LazyLock::force(&RESUMPTIONS);
    let mut settings = TlsSettings::with_callbacks(Box::new(SniCallback {
        store,
        acme: acme.clone(),
    }))
    .map_err(|e| TlsError(format!("cannot set up TLS: {e}")))?;
    settings
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| TlsError(format!("cannot set the TLS minimum version: {e}")))?;
    settings
        .set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(|e| TlsError(format!("cannot set the TLS maximum version: {e}")))?;
    settings.enable_h2();
    // Replaces the h2/http1.1 selection enable_h2 installed, adding acme-tls/1.
    settings.set_alpn_select_callback(move |ssl, offered| {
        let sni = ssl.servername(NameType::HOST_NAME);
        let validating = sni.is_some_and(|n| acme.tls_alpn01(n).is_some());
        let ours: &[u8] = if validating {
            b"\x0aacme-tls/1\x02h2\x08http/1.1"
        } else {
            b"\x02h2\x08http/1.1"
        };
        openssl::ssl::select_next_proto(ours, offered).ok_or(openssl::ssl::AlpnError::NOACK)
    });
    Ok(settings)
}

/// Puts each new TLS connection's handshake behind the work already under way, as nginx
/// does by accepting one connection per turn of its event loop.
///
/// pingora accepts every waiting connection at once and gives each a task. A handshake
/// (even a resumed one: its key exchange) costs the server several times what a cache hit
/// does, and run in the order they came, a burst of new connections made the requests of
/// connections already open wait behind all of their handshakes: 3.8 ms from request to
/// answer at the median with 32 clients reconnecting for every request, against nginx's
/// 0.6 ms (measured on the wire). So before reading the ClientHello a connection takes one
/// of `workers` places, yields once, which puts it behind the tasks that are ready and
/// those the next poll of the sockets wakes, and then gives its place to the next. New
/// connections still start at least one per worker per turn of the scheduler; they wait
/// only while there is other work, and waiting they cost nothing but their socket.
pub struct HandshakePacer(tokio::sync::Semaphore);

impl HandshakePacer {
    pub fn new(workers: usize) -> Self {
        HandshakePacer(tokio::sync::Semaphore::new(workers.max(1)))
    }

    /// Returns when it is this connection's turn to start its handshake.
    pub async fn turn(&self) {
        // The semaphore is never closed.
        if let Ok(_place) = self.0.acquire().await {
            tokio::task::yield_now().await;
        }
    }
}

#[async_trait]
impl pingora::listeners::PreTlsProcess for HandshakePacer {
    async fn process(&self, _stream: &mut pingora::protocols::l4::stream::Stream) -> pingora::Result<()> {
        self.turn().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(names: &[&[&str]]) -> CertStore {
        let certs = names
            .iter()
            .map(|domains| {
                let (c, k) = generate_self_signed(domains[0].trim_start_matches("*.")).unwrap();
                LoadedCert {
                    domains: domains.iter().map(|s| s.to_string()).collect(),
                    chain: X509::stack_from_pem(&c).unwrap(),
                    key: PKey::private_key_from_pem(&k).unwrap(),
                }
            })
            .collect();
        CertStore::from_loaded(certs).unwrap()
    }

    #[test]
    fn sni_selection() {
        let s = store_with(&[
            &["default.test"],
            &["*.example.com"],
            &["cdn.example.com"],
            &["*.img.example.com"],
        ]);
        assert_eq!(s.select_index(Some("cdn.example.com")), Some(2), "exact beats wildcard");
        assert_eq!(s.select_index(Some("a.example.com")), Some(1));
        assert_eq!(
            s.select_index(Some("x.img.example.com")),
            Some(3),
            "most specific wildcard"
        );
        assert_eq!(
            s.select_index(Some("a.b.example.com")),
            None,
            "a wildcard covers one label"
        );
        assert_eq!(s.select_index(Some("example.com")), None);
        assert_eq!(
            s.select_index(Some("CDN.Example.COM.")),
            Some(2),
            "case and trailing dot"
        );
        assert_eq!(s.select_index(None), None);
        assert_eq!(s.select(Some("unknown.test")).domains, ["default.test"]);
    }

    #[test]
    fn self_signed_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_self_signed(dir.path()).unwrap();
        let first = std::fs::read(&a.cert).unwrap();
        let b = ensure_self_signed(dir.path()).unwrap();
        assert_eq!(std::fs::read(&b.cert).unwrap(), first);
        let loaded = CertStore::load(&[b]).unwrap();
        let cert = &loaded.select(Some("localhost")).chain[0];
        let san: Vec<_> = cert
            .subject_alt_names()
            .unwrap()
            .iter()
            .filter_map(|n| n.dnsname().map(str::to_string))
            .collect();
        assert_eq!(san, ["localhost"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&a.key).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn broken_self_signed_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("localhost.pem"), "garbage").unwrap();
        std::fs::write(dir.path().join("localhost.key"), "garbage").unwrap();
        let spec = ensure_self_signed(dir.path()).unwrap();
        assert!(CertStore::load(&[spec]).is_ok());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, _) = generate_self_signed("a.test").unwrap();
        let (_, k2) = generate_self_signed("b.test").unwrap();
        let cert = dir.path().join("a.pem");
        let key = dir.path().join("b.key");
        std::fs::write(&cert, c1).unwrap();
        std::fs::write(&key, k2).unwrap();
        let spec = |cert: &Path, key: &Path| CertificateSpec {
            domains: vec!["a.test".into()],
            cert: cert.into(),
            key: key.into(),
        };
        let e = CertStore::load(&[spec(&cert, &key)]).err().unwrap();
        assert!(e.0.contains("does not belong") && e.0.contains("b.key"), "{e}");
        let missing = dir.path().join("nope.pem");
        let e = CertStore::load(&[spec(&missing, &key)]).err().unwrap();
        assert!(e.0.contains("nope.pem"), "{e}");
        let e = CertStore::load(&[spec(&key, &key)]).err().unwrap();
        assert!(e.0.contains("b.key") && e.0.contains("holds no certificate"), "{e}");
    }

    /// Runs `tasks` on one thread, in the order given, until all are done.
    fn run_on_one_thread(tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
            for h in handles {
                h.await.unwrap();
            }
        });
    }

    #[test]
    fn a_handshake_waits_for_the_work_that_is_ready_before_it() {
        let pacer = Arc::new(HandshakePacer::new(1));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (p, o1, o2) = (pacer.clone(), order.clone(), order.clone());
        run_on_one_thread(vec![
            Box::pin(async move {
                p.turn().await;
                o1.lock().unwrap().push("handshake");
            }),
            Box::pin(async move { o2.lock().unwrap().push("request") }),
        ]);
        assert_eq!(*order.lock().unwrap(), ["request", "handshake"]);
    }

    #[test]
    fn handshakes_start_one_per_worker_in_each_turn_of_the_scheduler() {
        for workers in [1, 2] {
            let pacer = Arc::new(HandshakePacer::new(workers));
            let order = Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = Vec::new();
            for _ in 0..4 {
                let (p, o) = (pacer.clone(), order.clone());
                tasks.push(Box::pin(async move {
                    p.turn().await;
                    o.lock().unwrap().push("handshake");
                }));
            }
            // Another connection's task, woken once per turn.
            let o = order.clone();
            tasks.push(Box::pin(async move {
                for _ in 0..8 {
                    o.lock().unwrap().push("turn");
                    tokio::task::yield_now().await;
                }
            }));
            run_on_one_thread(tasks);
            let order = order.lock().unwrap();
            assert_eq!(order.iter().filter(|e| **e == "handshake").count(), 4);
            // Unpaced, all four start in the ticker's second turn.
            let last = order.iter().rposition(|e| *e == "handshake").unwrap();
            let turns_before_the_last = order[..last].iter().filter(|e| **e == "turn").count();
            assert!(turns_before_the_last >= 4 / workers, "{workers} worker(s): {order:?}");
        }
    }
}
