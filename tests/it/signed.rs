//! Signed URLs and cookies through the running edge: every vector made by the real AWS
//! signers, botocore's signer run at test time, `homefront sign-url`, and key rotation.

use std::net::SocketAddr;
use std::process::Command;

use crate::common::*;

/// 2026-01-01T00:00:00Z: the clock injected into the edge (HOMEFRONT_FIXED_TIME).
const NOW: u64 = 1_767_225_600;
const VECTORS: &str = include_str!("../vectors/cloudfront-signed.json");
const SIGNING_PARAMS: [&str; 5] = ["Expires=", "Policy=", "Signature=", "Key-Pair-Id=", "Hash-Algorithm="];

fn config(app: u16, keys: &[(&str, &str)]) -> String {
    let mut group = String::new();
    for (id, file) in keys {
        group.push_str(&format!("    - {{ id: {id}, public_key: {file} }}\n"));
    }
    format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
trusted_proxies: ["127.0.0.1"]
key_groups:
  trusted:
{group}origins:
  app: {{ http: "127.0.0.1:{app}" }}
distributions:
  - domains: [cdn.example.test, other.example.test]
    behaviors:
      - {{ path_pattern: "/public/*", origin: app }}
      - {{ path_pattern: "*", origin: app, trusted_key_groups: [trusted], cache: {{ query_strings: all }} }}
"#
    )
}

const KEY_FILES: &[(&str, &[u8])] = &[
    (
        "keys/trusted-rsa.pub.pem",
        include_bytes!("../vectors/keys/trusted-rsa.pub.pem"),
    ),
    (
        "keys/trusted-ec.pub.pem",
        include_bytes!("../vectors/keys/trusted-ec.pub.pem"),
    ),
];

fn start(app: u16, keys: &[(&str, &str)]) -> Homefront {
    Homefront::start_in_env(
        tempfile::tempdir().unwrap(),
        &config(app, keys),
        KEY_FILES,
        &[("HOMEFRONT_FIXED_TIME", &NOW.to_string())],
    )
}

const BOTH_KEYS: &[(&str, &str)] = &[
    ("KTRUSTEDRSA0001", "keys/trusted-rsa.pub.pem"),
    ("KTRUSTEDEC00001", "keys/trusted-ec.pub.pem"),
];

/// Requests `url` (https://cdn.example.test/...) from the edge as the viewer would: Host
/// without a port, as for a CDN on 443, the client address in X-Forwarded-For from a
/// trusted proxy.
async fn fetch(hf: &Homefront, url: &str, cookies: &str, client_ip: &str) -> (u16, String, String) {
    fetch_as(hf, url, "cdn.example.test", cookies, client_ip).await
}

/// Like [`fetch`], over the scheme `url` names (the edge's http or https listener) and for
/// the host `host` (in TLS's server name and in the Host header) instead of the URL's own.
async fn fetch_as(hf: &Homefront, url: &str, host: &str, cookies: &str, client_ip: &str) -> (u16, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let port = if scheme == "https" {
        hf.ports.https
    } else {
        hf.ports.http
    };
    let path_and_query = &rest[rest.find('/').unwrap()..];
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .resolve(host, SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();
    let target = format!("{scheme}://{host}:{port}{path_and_query}");
    let mut req = client
        .get(target)
        .header("host", host)
        .header("x-forwarded-for", client_ip);
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let x_cache = r
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, x_cache, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_vector_gets_its_verdict_through_the_edge() {
    let app = start_echo_origin().await;
    let hf = start(app, BOTH_KEYS);
    let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 29);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let url = case["request_url"].as_str().unwrap();
        let cookies: Vec<String> = case["cookies"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        let (status, x_cache, body) = fetch(&hf, url, &cookies.join("; "), case["client_ip"].as_str().unwrap()).await;
        if case["expect"] == "allow" {
            assert_eq!(status, 200, "{name}: {body}");
            let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
            let uri = echo["uri"].as_str().unwrap();
            for p in SIGNING_PARAMS {
                assert!(!uri.contains(p), "{name}: {p} reached the origin: {uri}");
            }
            // The viewer's own query parameters do reach it.
            if let Some(q) = url.split_once('?').map(|(_, q)| q) {
                for pair in q
                    .split('&')
                    .filter(|p| !SIGNING_PARAMS.iter().any(|s| p.starts_with(s)))
                {
                    assert!(uri.contains(pair), "{name}: {pair} missing from {uri}");
                }
            }
        } else {
            let code = case["error_code"].as_str().unwrap();
            assert_eq!(status, 403, "{name}: {body}");
            assert_eq!(x_cache, "Error from homefront", "{name}");
            assert!(
                body.contains(&format!("<Code>{code}</Code>")),
                "{name}: expected {code}: {body}"
            );
        }
    }
    // A behavior without trusted key groups stays public.
    let (status, _, _) = fetch(&hf, "https://cdn.example.test/public/a.txt", "", "203.0.113.7").await;
    assert_eq!(status, 200);
}

fn python_sign(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/cf_sign.py"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/keys/trusted-rsa.pem"
        ))
        .args(args)
        .output()
        .expect("python3 with botocore and cryptography (./dev.sh test installs them)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn homefront_sign(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(["sign-url", "--key-pair-id", "KTRUSTEDRSA0001", "--private-key"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/keys/trusted-rsa.pem"
        ))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn botocore_signs_at_test_time_and_sign_url_matches_it_byte_for_byte() {
    let app = start_echo_origin().await;
    let hf = start(app, BOTH_KEYS);
    let expires = (NOW + 3600).to_string();

    // Canned policy, with the viewer's own query string.
    let url = "https://cdn.example.test/reports/q3%20final.pdf?download=1";
    let boto = python_sign(&["KTRUSTEDRSA0001", url, &expires]);
    let ours = homefront_sign(&["--expires", &format!("@{expires}"), url]);
    assert_eq!(ours, boto);
    let (status, _, body) = fetch(&hf, &boto, "", "203.0.113.7").await;
    assert_eq!(status, 200, "{body}");

    // Custom policy: wildcard resource, IP range, not-before.
    let url = "https://cdn.example.test/videos/2026/intro.mp4";
    let resource = "https://cdn.example.test/videos/*";
    let not_before = (NOW - 60).to_string();
    let boto = python_sign(&["KTRUSTEDRSA0001", url, &expires, resource, "192.0.2.0/24", &not_before]);
    let ours = homefront_sign(&[
        "--expires",
        &format!("@{expires}"),
        "--policy-resource",
        resource,
        "--ip",
        "192.0.2.0/24",
        "--not-before",
        &format!("@{not_before}"),
        url,
    ]);
    assert_eq!(ours, boto);
    let (status, _, body) = fetch(&hf, &boto, "", "192.0.2.77").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = fetch(&hf, &boto, "", "198.51.100.1").await;
    assert_eq!(status, 403, "{body}");

    // Expired by the edge's clock.
    let old = homefront_sign(&["--expires", &format!("@{}", NOW - 1), "https://cdn.example.test/a.txt"]);
    let (status, _, body) = fetch(&hf, &old, "", "203.0.113.7").await;
    assert_eq!(
        (status, body.contains("<Code>AccessDenied</Code>")),
        (403, true),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_cookies_from_sign_url_work() {
    let app = start_echo_origin().await;
    let hf = start(app, BOTH_KEYS);
    let out = Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(["sign-url", "--key-pair-id", "KTRUSTEDEC00001", "--private-key"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/keys/trusted-ec.pem"
        ))
        .args(["--sha256", "--cookies", "--expires", &format!("@{}", NOW + 600)])
        .args([
            "--policy-resource",
            "https://cdn.example.test/members/*",
            "https://cdn.example.test/members/",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let cookies: Vec<&str> = text
        .lines()
        .map(|l| l.strip_prefix("Set-Cookie: ").unwrap().split(';').next().unwrap())
        .collect();
    assert_eq!(cookies.len(), 4, "{text}");
    let (status, _, body) = fetch(
        &hf,
        "https://cdn.example.test/members/video.mp4",
        &cookies.join("; "),
        "203.0.113.7",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = fetch(
        &hf,
        "https://cdn.example.test/admin/x",
        &cookies.join("; "),
        "203.0.113.7",
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_with_a_config_change_and_restart() {
    let app = start_echo_origin().await;
    let signed = homefront_sign(&[
        "--expires",
        &format!("@{}", NOW + 600),
        "https://cdn.example.test/r.txt",
    ]);

    // Only the EC key is trusted: the RSA key id is unknown.
    let hf = start(app, &[("KTRUSTEDEC00001", "keys/trusted-ec.pub.pem")]);
    let (status, _, body) = fetch(&hf, &signed, "", "203.0.113.7").await;
    assert_eq!(
        (status, body.contains("<Code>InvalidKey</Code>")),
        (403, true),
        "{body}"
    );
    drop(hf);

    // The new key is added to the group (the old one stays during rotation).
    let hf = start(app, BOTH_KEYS);
    let (status, _, body) = fetch(&hf, &signed, "", "203.0.113.7").await;
    assert_eq!(status, 200, "{body}");
}

/// A signature over `data` with a test key, in CloudFront's base64, made with openssl
/// directly (whatever the key and hash: the edge must refuse what CloudFront refuses).
fn raw_signature(private_pem: &[u8], sha256: bool, data: &[u8]) -> String {
    use openssl::hash::MessageDigest;
    let key = openssl::pkey::PKey::private_key_from_pem(private_pem).unwrap();
    let md = if sha256 {
        MessageDigest::sha256()
    } else {
        MessageDigest::sha1()
    };
    let raw = openssl::sign::Signer::new(md, &key)
        .unwrap()
        .sign_oneshot_to_vec(data)
        .unwrap();
    homefront::policy::signed::url_b64encode(&raw)
}

const RSA_PRIVATE: &[u8] = include_bytes!("../vectors/keys/trusted-rsa.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../vectors/keys/trusted-ec.pem");

/// Asserts a 403 with CloudFront's error `code` in the XML body.
fn assert_refused((status, _, body): &(u16, String, String), code: &str, what: &str) {
    assert_eq!(status, &403, "{what}: {body}");
    assert!(
        body.contains(&format!("<Code>{code}</Code>")),
        "{what}: expected {code}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_url_opens_its_own_scheme_and_host_only() {
    let app = start_echo_origin().await;
    let hf = start(app, BOTH_KEYS);
    let expires = format!("@{}", NOW + 600);

    for (signed_for, other) in [("https", "http"), ("http", "https")] {
        let signed = homefront_sign(&[
            "--expires",
            &expires,
            &format!("{signed_for}://cdn.example.test/private/a.txt"),
        ]);
        let (status, _, body) = fetch(&hf, &signed, "", "203.0.113.7").await;
        assert_eq!(status, 200, "{signed_for} over {signed_for}: {body}");
        let moved = signed.replacen(signed_for, other, 1);
        assert_refused(
            &fetch(&hf, &moved, "", "203.0.113.7").await,
            "AccessDenied",
            &format!("signed for {signed_for}, asked over {other}"),
        );
    }

    // The same URL on another host of the same distribution.
    let signed = homefront_sign(&["--expires", &expires, "https://cdn.example.test/private/a.txt"]);
    assert_refused(
        &fetch_as(&hf, &signed, "other.example.test", "", "203.0.113.7").await,
        "AccessDenied",
        "canned URL on another host",
    );
    let custom = homefront_sign(&[
        "--expires",
        &expires,
        "--policy-resource",
        "https://cdn.example.test/private/*",
        "https://cdn.example.test/private/a.txt",
    ]);
    let (status, _, body) = fetch(&hf, &custom, "", "203.0.113.7").await;
    assert_eq!(status, 200, "{body}");
    assert_refused(
        &fetch_as(&hf, &custom, "other.example.test", "", "203.0.113.7").await,
        "AccessDenied",
        "custom policy on another host",
    );
    assert_refused(
        &fetch(&hf, &custom.replacen("https", "http", 1), "", "203.0.113.7").await,
        "AccessDenied",
        "custom policy over http",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_or_unsupported_signing_parameters_are_refused() {
    let app = start_echo_origin().await;
    let hf = start(app, BOTH_KEYS);
    let expires = format!("@{}", NOW + 600);
    let ok = |r: &(u16, String, String), what: &str| assert_eq!(r.0, 200, "{what}: {}", r.2);

    // Hash-Algorithm: SHA1 or SHA256, spelled so.
    let sha256 = homefront_sign(&["--sha256", "--expires", &expires, "https://cdn.example.test/h.txt"]);
    ok(&fetch(&hf, &sha256, "", "203.0.113.7").await, "SHA256");
    for other in ["sha256", "SHA512"] {
        let url = sha256.replace("Hash-Algorithm=SHA256", &format!("Hash-Algorithm={other}"));
        assert_refused(&fetch(&hf, &url, "", "203.0.113.7").await, "AccessDenied", other);
    }

    // Every signing parameter twice: the same copy again, or another value before it.
    let (base, query) = sha256.split_once('?').unwrap();
    for pair in query.split('&') {
        let name = pair.split_once('=').unwrap().0;
        for url in [format!("{sha256}&{pair}"), format!("{base}?{name}=0&{query}")] {
            assert_refused(&fetch(&hf, &url, "", "203.0.113.7").await, "AccessDenied", &url);
        }
    }

    // Policy twice, and Policy with Expires.
    let custom = homefront_sign(&[
        "--expires",
        &expires,
        "--policy-resource",
        "https://cdn.example.test/c/*",
        "https://cdn.example.test/c/1.txt",
    ]);
    ok(&fetch(&hf, &custom, "", "203.0.113.7").await, "custom");
    let policy = custom.split(['?', '&']).find(|p| p.starts_with("Policy=")).unwrap();
    assert_refused(
        &fetch(&hf, &format!("{custom}&{policy}"), "", "203.0.113.7").await,
        "AccessDenied",
        "two Policy parameters",
    );
    assert_refused(
        &fetch(&hf, &format!("{custom}&Expires={}", NOW + 600), "", "203.0.113.7").await,
        "AccessDenied",
        "Policy and Expires",
    );

    // A policy with two statements, genuinely signed.
    let statement = format!(
        r#"{{"Resource":"https://cdn.example.test/c/*","Condition":{{"DateLessThan":{{"AWS:EpochTime":{}}}}}}}"#,
        NOW + 600
    );
    let two = format!(r#"{{"Statement":[{statement},{statement}]}}"#);
    let url = format!(
        "https://cdn.example.test/c/1.txt?Policy={}&Signature={}&Key-Pair-Id=KTRUSTEDRSA0001",
        homefront::policy::signed::url_b64encode(two.as_bytes()),
        raw_signature(RSA_PRIVATE, false, two.as_bytes())
    );
    assert_refused(
        &fetch(&hf, &url, "", "203.0.113.7").await,
        "MalformedPolicy",
        "two statements",
    );

    // An ECDSA key with SHA-1 (a genuine signature), then with SHA-256 as the control.
    let resource = "https://cdn.example.test/ec.txt";
    let canned = homefront::policy::signed::canned_policy(resource, NOW + 600);
    let sha1 = raw_signature(EC_PRIVATE, false, canned.as_bytes());
    let url = format!(
        "{resource}?Expires={}&Signature={sha1}&Key-Pair-Id=KTRUSTEDEC00001",
        NOW + 600
    );
    assert_refused(
        &fetch(&hf, &url, "", "203.0.113.7").await,
        "AccessDenied",
        "ECDSA, SHA-1",
    );
    assert_refused(
        &fetch(&hf, &format!("{url}&Hash-Algorithm=SHA1"), "", "203.0.113.7").await,
        "AccessDenied",
        "ECDSA, Hash-Algorithm=SHA1",
    );
    let good = raw_signature(EC_PRIVATE, true, canned.as_bytes());
    let url = format!(
        "{resource}?Expires={}&Signature={good}&Key-Pair-Id=KTRUSTEDEC00001&Hash-Algorithm=SHA256",
        NOW + 600
    );
    ok(&fetch(&hf, &url, "", "203.0.113.7").await, "ECDSA, SHA-256");
}
