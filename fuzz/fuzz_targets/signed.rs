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
//! - `verify` agrees with the reference verifier of `homefront_fuzz::signed_reference`,
//!   written from the CloudFront documentation and sharing no code with homefront's (its
//!   own query and cookie reading, base64, policy reading, CIDR check and wildcard
//!   matcher; openssl called directly): no request verifies unless its signature is
//!   genuine for the exact policy its URL or cookies imply, and every refusal has the
//!   right error code.
//! - The remembered-signature shortcut changes nothing: the long-lived key set (whose memo
//!   holds every signature seen so far) and a fresh one give the same verdict.
//! - Moving the signing parameters from the query string into `CloudFront-*` cookies gives
//!   the same verdict.
//! - `strip_signing_params` and `has_signing_params` agree with each other and are stable.
//!
//! Checked for a policy: `parse_policy` accepts exactly the documents the reference reads
//! as a policy, and `Policy::allows` agrees with the reference's conditions; parsing is
//! deterministic; a parsed policy rendered again (as `homefront sign-url` renders one)
//! parses back to the same conditions.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock};

use homefront::policy::signed::{
    has_signing_params, parse_policy, strip_signing_params, verify, SignSpec, TrustedKeys, VerifyKey, ViewerRequest,
    SIGNING_PARAMS,
};
use homefront_fuzz::signed_reference;
use libfuzzer_sys::fuzz_target;
use openssl::pkey::{PKey, Public};

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

    fn reference(&self) -> signed_reference::Request<'_> {
        signed_reference::Request {
            scheme: &self.scheme,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            cookies: self.cookies.as_deref(),
            client_ip: self.client_ip,
            now: self.now,
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

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The same request with its signing parameters moved into `CloudFront-*` cookies, when
/// the cookie syntax can carry them unchanged (no `;`, no surrounding blanks, not in
/// double quotes).
fn as_cookies(req: &Request) -> Option<Request> {
    let query = req.query.as_deref()?;
    let mut signing = Vec::new();
    for (name, value) in query_pairs(query) {
        if SIGNING_PARAMS.contains(&name) {
            let blank = |c: char| c == ' ' || c == '\t';
            let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
            let awkward = value.contains(';') || value.starts_with(blank) || value.ends_with(blank) || quoted;
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
    assert_eq!(
        got.map_err(|e| e.code()),
        signed_reference::verify(&REFERENCE_KEYS, &req.reference()),
        "verdict differs from the reference"
    );
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
    let parsed = parse_policy(document);
    let read = signed_reference::read_policy(document);
    assert_eq!(
        parsed.is_some(),
        read.is_some(),
        "parse_policy {parsed:?}, the reference {read:?}"
    );
    let (Some(policy), Some(conditions)) = (parsed, read) else {
        return;
    };
    assert_eq!(
        parse_policy(document).as_ref(),
        Some(&policy),
        "parsing is not deterministic"
    );
    // Clients inside and just outside the range (its first and last prefix bit flipped).
    let mut clients = vec![DEFAULT_CLIENT, "192.0.2.10".parse().unwrap(), "::1".parse().unwrap()];
    if let Some((network, length)) = conditions.source_ip {
        clients.push(network);
        let flip = |bit: u32| match network {
            IpAddr::V4(a) => IpAddr::from((u32::from(a) ^ (1u32 << (31 - bit))).to_be_bytes()),
            IpAddr::V6(a) => IpAddr::from((u128::from(a) ^ (1u128 << (127 - bit))).to_be_bytes()),
        };
        if length > 0 {
            clients.push(flip(0));
            clients.push(flip(length - 1));
        }
        if let IpAddr::V4(a) = network {
            clients.push(IpAddr::V6(a.to_ipv6_mapped()));
        }
    }
    let resource = conditions.resource.clone().unwrap_or_default();
    let urls = [
        "https://cdn.example.test/private/a.pdf",
        "https://cdn.example.test/",
        "http://x/y?z",
        "",
        resource.as_str(),
    ];
    let times = [
        DEFAULT_NOW,
        policy.date_less_than,
        policy.date_less_than.saturating_sub(1),
        policy.date_greater_than.unwrap_or(0),
        policy.date_greater_than.unwrap_or(0).saturating_add(1),
    ];
    for url in urls {
        for &client in &clients {
            for now in times {
                assert_eq!(
                    policy.allows(url, client, now),
                    conditions.allow(url, client, now),
                    "{url} from {client} at {now}"
                );
            }
        }
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
    let ip = statement["Condition"]["IpAddress"]["AWS:SourceIp"]
        .as_str()
        .map(|ip| match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => format!("{ip}/32"),
            Ok(IpAddr::V6(_)) => format!("{ip}/128"),
            Err(_) => ip.to_string(),
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
