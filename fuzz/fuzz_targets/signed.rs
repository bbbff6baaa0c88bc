//! CloudFront signed URLs and signed cookies.
//!
//! Input, one of:
//! - a request, as lines: `<scheme>://<host><path>[?<query>]`, the Cookie header (empty:
//!   none), the client address, the time in epoch seconds (later lines optional). The seeds
//!   are the signed URLs and cookies of `tests/vectors/`, so mutations start from requests
//!   that verify: with the trusted test keys of `tests/vectors/keys/`, the public-key
//!   check is really reached.
//! - a custom policy document (input starting with `{`).
//!
//! Checked for a request:
//! - `verify` agrees with a reference verifier written here from the wire format, which
//!   checks the signature with openssl directly: no request verifies unless its signature
//!   is genuine for the exact policy its URL or cookies imply, and every refusal has the
//!   right error code.
//! - The remembered-signature shortcut changes nothing: the long-lived key set (whose memo
//!   holds every signature seen so far) and a fresh one give the same verdict.
//! - Moving the signing parameters from the query string into `CloudFront-*` cookies gives
//!   the same verdict.
//! - `strip_signing_params` and `has_signing_params` agree with each other and are stable.
//!
//! Checked for a policy: parsing is deterministic; a parsed policy rendered again (as
//! `homefront sign-url` renders one) parses back to the same conditions; `Policy::allows`
//! follows its conditions.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock};

use homefront::edge::signed::{
    canned_policy, has_signing_params, parse_policy, strip_signing_params, verify, Policy, SignSpec, SignedError,
    TrustedKeys, VerifyKey, ViewerRequest, SIGNING_PARAMS,
};
use homefront_fuzz::glob_reference;
use libfuzzer_sys::fuzz_target;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;

/// 2026-01-01, inside the vectors' validity window.
const DEFAULT_NOW: u64 = 1_767_225_600;
const DEFAULT_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

/// The trusted key ids of the vectors with their public keys in PEM.
const KEYS: [(&str, &[u8]); 2] = [
    (
        "KTRUSTEDRSA0001",
        include_bytes!("../../tests/vectors/keys/trusted-rsa.pub.pem"),
    ),
    (
        "KTRUSTEDEC00001",
        include_bytes!("../../tests/vectors/keys/trusted-ec.pub.pem"),
    ),
];

/// Parsed once, shared by the key sets.
static VERIFY_KEYS: LazyLock<Vec<(&str, Arc<VerifyKey>)>> = LazyLock::new(|| {
    KEYS.iter()
        .map(|(id, pem)| (*id, Arc::new(VerifyKey::from_pem(pem).expect("test key"))))
        .collect()
});

fn key_set() -> TrustedKeys {
    let mut keys = TrustedKeys::default();
    for (id, key) in VERIFY_KEYS.iter() {
        keys.insert(id.to_string(), key.clone());
    }
    keys
}

/// Lives as long as the fuzzer: its memo remembers every signature that ever verified.
static LONG_LIVED: LazyLock<TrustedKeys> = LazyLock::new(key_set);

/// The reference verifier's own copies of the keys, as plain openssl keys.
static REFERENCE_KEYS: LazyLock<Vec<(&str, PKey<Public>)>> = LazyLock::new(|| {
    KEYS.iter()
        .map(|(id, pem)| (*id, PKey::public_key_from_pem(pem).expect("test key")))
        .collect()
});

struct Request {
    scheme: String,
    host: String,
    path: String,
    query: Option<String>,
    cookies: Option<String>,
    client_ip: IpAddr,
    now: u64,
}

impl Request {
    fn parse(text: &str) -> Request {
        let mut lines = text.split('\n');
        let url = lines.next().unwrap_or("");
        let cookies = lines.next().filter(|c| !c.is_empty()).map(str::to_string);
        let client_ip = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(DEFAULT_CLIENT);
        let now = lines.next().and_then(|l| l.trim().parse().ok()).unwrap_or(DEFAULT_NOW);
        let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q.to_string())),
            None => (rest, None),
        };
        let slash = before_query.find('/').unwrap_or(before_query.len());
        let (host, path) = before_query.split_at(slash);
        Request {
            scheme: scheme.to_string(),
            host: host.to_string(),
            path: path.to_string(),
            query,
            cookies,
            client_ip,
            now,
        }
    }

    fn viewer(&self) -> ViewerRequest<'_> {
        ViewerRequest {
            scheme: &self.scheme,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            cookies: self.cookies.as_deref(),
            client_ip: self.client_ip,
            now: self.now,
        }
    }
}

/// The signing parameters a request carries, by name, first occurrence winning.
#[derive(Default)]
struct Credentials {
    found: Vec<(String, String)>,
}

impl Credentials {
    fn add(&mut self, name: &str, value: &str) {
        if SIGNING_PARAMS.contains(&name) && self.get(name).is_none() {
            self.found.push((name.to_string(), value.to_string()));
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.found.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `Hash-Algorithm` alone does not make a URL signed.
    fn signs_the_url(&self) -> bool {
        self.found.iter().any(|(n, _)| n != "Hash-Algorithm")
    }
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// URL credentials if the query holds any, else the `CloudFront-*` cookies.
fn credentials(req: &Request) -> Credentials {
    let mut url = Credentials::default();
    for (name, value) in query_pairs(req.query.as_deref().unwrap_or("")) {
        url.add(name, value);
    }
    if url.signs_the_url() {
        return url;
    }
    let mut cookies = Credentials::default();
    for cookie in req.cookies.as_deref().unwrap_or("").split(';') {
        let cookie = cookie.trim();
        let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
        if let Some(param) = name.strip_prefix("CloudFront-") {
            cookies.add(param, value.trim_matches('"'));
        }
    }
    cookies
}

/// CloudFront's base64 (`-` `_` `~` for `+` `=` `/`), possibly percent-encoded.
fn decode_cloudfront_base64(text: &str) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let high = char::from(bytes.next()?).to_digit(16)?;
            let low = char::from(bytes.next()?).to_digit(16)?;
            raw.push((high * 16 + low) as u8);
        } else {
            raw.push(b);
        }
    }
    let standard: String = String::from_utf8(raw)
        .ok()?
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    let alphabet = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
    if standard.is_empty() || !standard.chars().all(alphabet) {
        return None;
    }
    openssl::base64::decode_block(&standard).ok()
}

/// Is `signature` a genuine signature of `message` by `key`? ECDSA goes with SHA-256 only.
fn genuine(key: &PKey<Public>, sha256: bool, message: &[u8], signature: &[u8]) -> bool {
    if key.id() == Id::EC && !sha256 {
        return false;
    }
    let digest = if sha256 {
        MessageDigest::sha256()
    } else {
        MessageDigest::sha1()
    };
    let mut verifier = Verifier::new(digest, key).expect("verifier");
    verifier.verify_oneshot(signature, message).unwrap_or(false)
}

/// The reference verdict.
fn reference(req: &Request) -> Result<(), SignedError> {
    let creds = credentials(req);
    let key_id = creds
        .get("Key-Pair-Id")
        .filter(|k| !k.is_empty())
        .ok_or(SignedError::MissingKey)?;
    let key = REFERENCE_KEYS
        .iter()
        .find(|(id, _)| *id == key_id)
        .map(|(_, k)| k)
        .ok_or(SignedError::InvalidKey)?;
    let signature = creds
        .get("Signature")
        .and_then(decode_cloudfront_base64)
        .ok_or(SignedError::MalformedSignature)?;
    let sha256 = match creds.get("Hash-Algorithm") {
        None | Some("SHA1") => false,
        Some("SHA256") => true,
        Some(_) => return Err(SignedError::AccessDenied),
    };
    // The URL as requested, minus the signing parameters and empty pairs.
    let kept: Vec<&str> = req
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !SIGNING_PARAMS.contains(&pair.split_once('=').map_or(*pair, |(n, _)| n)))
        .collect();
    let mut url = format!("{}://{}{}", req.scheme, req.host, req.path);
    if !kept.is_empty() {
        url = format!("{url}?{}", kept.join("&"));
    }
    let allowed = match creds.get("Policy") {
        Some(encoded) => {
            let document = decode_cloudfront_base64(encoded).ok_or(SignedError::MalformedPolicy)?;
            let policy = parse_policy(&document).ok_or(SignedError::MalformedPolicy)?;
            if !genuine(key, sha256, &document, &signature) {
                return Err(SignedError::AccessDenied);
            }
            conditions_hold(&policy, &url, req.client_ip, req.now)
        }
        None => {
            let expires: u64 = creds
                .get("Expires")
                .and_then(|e| e.parse().ok())
                .ok_or(SignedError::AccessDenied)?;
            if !genuine(key, sha256, canned_policy(&url, expires).as_bytes(), &signature) {
                return Err(SignedError::AccessDenied);
            }
            req.now < expires
        }
    };
    allowed.then_some(()).ok_or(SignedError::AccessDenied)
}

/// A custom policy's conditions, each on its own.
fn conditions_hold(policy: &Policy, url: &str, client: IpAddr, now: u64) -> bool {
    let resource = match &policy.resource {
        None => true,
        Some(r) => glob_reference(r.as_bytes(), url.as_bytes(), true),
    };
    let after = policy.date_greater_than.is_none_or(|t| now > t);
    let address = policy.source_ip.is_none_or(|c| c.contains(client));
    resource && now < policy.date_less_than && after && address
}

/// The same request with its signing parameters moved into `CloudFront-*` cookies, when
/// the cookie syntax can carry them unchanged (no `;`, no surrounding blanks or quotes).
fn as_cookies(req: &Request) -> Option<Request> {
    let query = req.query.as_deref()?;
    let mut signing = Vec::new();
    for (name, value) in query_pairs(query) {
        if SIGNING_PARAMS.contains(&name) {
            let awkward =
                value.contains(';') || value.trim() != value || value.starts_with('"') || value.ends_with('"');
            if awkward {
                return None;
            }
            signing.push(format!("CloudFront-{name}={value}"));
        }
    }
    let url_signed = query_pairs(query).any(|(name, _)| SIGNING_PARAMS.contains(&name) && name != "Hash-Algorithm");
    if !url_signed {
        return None;
    }
    Some(Request {
        scheme: req.scheme.clone(),
        host: req.host.clone(),
        path: req.path.clone(),
        query: strip_signing_params(query),
        cookies: Some(signing.join("; ")),
        client_ip: req.client_ip,
        now: req.now,
    })
}

fn check_query_stripping(query: &str) {
    let stripped = strip_signing_params(query);
    let signing = query_pairs(query).any(|(name, _)| SIGNING_PARAMS.contains(&name));
    assert_eq!(has_signing_params(query), signing);
    if let Some(rest) = &stripped {
        assert!(!has_signing_params(rest), "{rest:?} still signs");
        assert!(!rest.is_empty() && !rest.starts_with('&') && !rest.ends_with('&') && !rest.contains("&&"));
        assert_eq!(
            strip_signing_params(rest).as_deref(),
            Some(rest.as_str()),
            "not idempotent"
        );
    } else {
        assert!(query
            .split('&')
            .all(|p| p.is_empty() || SIGNING_PARAMS.contains(&query_pairs(p).next().unwrap().0)));
    }
}

fn check_request(text: &str) {
    let req = Request::parse(text);
    if let Some(q) = &req.query {
        check_query_stripping(q);
    }
    let got = verify(&LONG_LIVED, &req.viewer());
    assert_eq!(got, reference(&req), "verdict differs from the reference");
    assert_eq!(verify(&key_set(), &req.viewer()), got, "the memo changed the verdict");
    if let Some(moved) = as_cookies(&req) {
        assert_eq!(
            verify(&LONG_LIVED, &moved.viewer()),
            got,
            "cookies {:?} and query {:?} judged differently",
            moved.cookies,
            moved.query
        );
    }
}

fn check_policy(document: &[u8]) {
    let Some(policy) = parse_policy(document) else {
        return;
    };
    assert_eq!(
        parse_policy(document).as_ref(),
        Some(&policy),
        "parsing is not deterministic"
    );
    for (url, client, now) in [
        ("https://cdn.example.test/private/a.pdf", DEFAULT_CLIENT, DEFAULT_NOW),
        (
            "https://cdn.example.test/",
            "192.0.2.10".parse().unwrap(),
            policy.date_less_than,
        ),
        (
            "http://x/y?z",
            "::1".parse().unwrap(),
            policy.date_less_than.saturating_sub(1),
        ),
        ("", DEFAULT_CLIENT, policy.date_greater_than.unwrap_or(0)),
        (
            "",
            DEFAULT_CLIENT,
            policy.date_greater_than.unwrap_or(0).saturating_add(1),
        ),
    ] {
        assert_eq!(
            policy.allows(url, client, now),
            conditions_hold(&policy, url, client, now)
        );
    }
    // Rendered as `homefront sign-url` renders a custom policy, it parses back the same.
    let Some(resource) = policy.resource.as_deref() else {
        return;
    };
    let doc: serde_json::Value = serde_json::from_slice(document).expect("parsed before");
    let statement = match &doc["Statement"] {
        serde_json::Value::Array(list) => &list[0],
        other => other,
    };
    // The range as written, with an explicit prefix length (the signer assumes /32).
    let ip = statement["Condition"]["IpAddress"]["AWS:SourceIp"].as_str().map(|ip| {
        let ip = ip.trim();
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => format!("{ip}/32"),
            Ok(IpAddr::V6(_)) => format!("{ip}/128"),
            Err(_) => ip.to_string(),
        }
    });
    let spec = SignSpec {
        url: "",
        key_pair_id: "",
        expires: policy.date_less_than,
        resource: Some(resource),
        ip: ip.as_deref(),
        not_before: policy.date_greater_than,
        sha256: true,
    };
    let rendered = spec.policy();
    assert_eq!(parse_policy(rendered.as_bytes()), Some(policy), "{rendered}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if text.starts_with('{') {
        check_policy(data);
    } else {
        check_request(&text);
    }
});
