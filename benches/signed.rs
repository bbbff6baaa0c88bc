//! Cost per request of signed-URL verification, per algorithm, on the AWS signers' vectors.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use homefront::policy::signed::{verify, TrustedKeys, VerifyKey, ViewerRequest};

const VECTORS: &str = include_str!("../tests/vectors/cloudfront-signed.json");

fn bench(c: &mut Criterion) {
    let mut keys = TrustedKeys::default();
    for (id, pem) in [
        (
            "KTRUSTEDRSA0001",
            include_bytes!("../tests/vectors/keys/trusted-rsa.pub.pem").as_slice(),
        ),
        (
            "KTRUSTEDEC00001",
            include_bytes!("../tests/vectors/keys/trusted-ec.pub.pem").as_slice(),
        ),
    ] {
        keys.insert(id.into(), Arc::new(VerifyKey::from_pem(pem).unwrap()));
    }
    let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    for (label, case) in [
        ("rsa2048_sha1_canned", "canned-rsa-sha1-valid"),
        ("rsa2048_sha256_canned", "js-canned-rsa-sha256"),
        ("ecdsa_p256_sha256_canned", "js-canned-ecdsa-sha256"),
        ("rsa2048_sha1_custom_wildcard", "custom-wildcard-match"),
        ("rsa2048_sha1_tampered", "canned-tampered-path"),
    ] {
        let case = doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == case)
            .unwrap();
        let url = case["request_url"].as_str().unwrap().to_string();
        let rest = url.strip_prefix("https://").unwrap();
        let slash = rest.find('/').unwrap();
        let (host, pq) = rest.split_at(slash);
        let (path, query) = pq.split_once('?').unwrap();
        let client_ip = case["client_ip"].as_str().unwrap().parse().unwrap();
        let expect_ok = case["expect"] == "allow";
        let make = || ViewerRequest {
            scheme: "https",
            host,
            path,
            query: Some(query),
            cookies: None,
            client_ip,
            now: 1_767_225_600,
        };
        // First use of a signed URL: the public-key operation.
        c.bench_function(&format!("verify_first_use/{label}"), |b| {
            b.iter(|| {
                keys.forget_verified();
                assert_eq!(verify(black_box(&keys), black_box(&make())).is_ok(), expect_ok);
            })
        });
        // The same URL again (assets of one page, segments of one video): remembered.
        c.bench_function(&format!("verify_repeat/{label}"), |b| {
            b.iter(|| {
                let req = ViewerRequest {
                    scheme: "https",
                    host,
                    path,
                    query: Some(query),
                    cookies: None,
                    client_ip,
                    now: 1_767_225_600,
                };
                let r = verify(black_box(&keys), black_box(&req));
                assert_eq!(r.is_ok(), expect_ok);
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
