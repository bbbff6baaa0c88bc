//! What the signed-URL tests share: the CloudFront vectors, the trusted test keys, and
//! requests built from URLs.

use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;

use super::{url_b64encode, verify, SignSpec, SignedError, TrustedKeys, VerifyKey, ViewerRequest};

pub(super) const VECTORS: &str = include_str!("../../../tests/vectors/cloudfront-signed.json");
/// 2026-01-01, inside the vectors' stated validity window.
pub(super) const NOW: u64 = 1_767_225_600;

pub(super) fn trusted() -> TrustedKeys {
    let mut t = TrustedKeys::default();
    for (id, pem) in [
        (
            "KTRUSTEDRSA0001",
            include_bytes!("../../../tests/vectors/keys/trusted-rsa.pub.pem").as_slice(),
        ),
        (
            "KTRUSTEDEC00001",
            include_bytes!("../../../tests/vectors/keys/trusted-ec.pub.pem").as_slice(),
        ),
    ] {
        t.insert(id.into(), Arc::new(VerifyKey::from_pem(pem).unwrap()));
    }
    t
}

/// A viewer request for a full URL, from `ip` at `now`, without cookies.
pub(super) fn url_request<'a>(url: &'a str, ip: &str, now: u64) -> ViewerRequest<'a> {
    let (scheme, host, path, query) = split_url(url);
    ViewerRequest {
        scheme,
        host,
        path,
        query,
        cookies: None,
        client_ip: ip.parse().unwrap(),
        now,
    }
}

pub(super) fn split_url(url: &str) -> (&str, &str, &str, Option<&str>) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let slash = rest.find('/').unwrap();
    let (host, pq) = rest.split_at(slash);
    match pq.split_once('?') {
        Some((p, q)) => (scheme, host, p, Some(q)),
        None => (scheme, host, pq, None),
    }
}

pub(super) fn vector(name: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
        .clone()
}

pub(super) fn private_key(pem: &[u8]) -> PKey<Private> {
    PKey::private_key_from_pem(pem).unwrap()
}

pub(super) fn rsa_key() -> PKey<Private> {
    private_key(include_bytes!("../../../tests/vectors/keys/trusted-rsa.pem"))
}

pub(super) fn ec_key() -> PKey<Private> {
    private_key(include_bytes!("../../../tests/vectors/keys/trusted-ec.pem"))
}

/// A signature made with openssl directly (no check of the key/hash pairing).
pub(super) fn raw_signature(key: &PKey<Private>, sha256: bool, data: &[u8]) -> String {
    let md = if sha256 {
        MessageDigest::sha256()
    } else {
        MessageDigest::sha1()
    };
    url_b64encode(&Signer::new(md, key).unwrap().sign_oneshot_to_vec(data).unwrap())
}

pub(super) fn verdict(url: &str) -> Result<(), SignedError> {
    verify(&trusted(), &url_request(url, "192.0.2.9", NOW))
}

pub(super) fn cookie_verdict(url: &str, cookies: &str) -> Result<(), SignedError> {
    let mut req = url_request(url, "192.0.2.9", NOW);
    req.cookies = Some(cookies);
    verify(&trusted(), &req)
}

pub(super) fn spec(url: &str) -> SignSpec<'_> {
    SignSpec {
        url,
        key_pair_id: "KTRUSTEDRSA0001",
        expires: NOW + 600,
        resource: None,
        ip: None,
        not_before: None,
        sha256: false,
    }
}
