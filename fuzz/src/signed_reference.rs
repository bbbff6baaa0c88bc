//! A reference verifier for CloudFront signed URLs and signed cookies, written from the
//! CloudFront Developer Guide ("Create a signed URL using a canned policy / a custom
//! policy", "Set signed cookies") and `shared/spec/cloudfront-s3-behavior.md`, for the
//! `signed` fuzz target to compare `homefront::policy::signed::verify` with.
//!
//! It shares no code with homefront's verifier: its own reading of the query and of the
//! Cookie header, its own base64 variant, its own policy reading (over `serde_json::Value`),
//! its own CIDR check and wildcard matcher ([`crate::glob_reference`]), and openssl called
//! directly for the signature. It is written for plainness, not speed.
//!
//! The rules, each from the documentation unless marked as homefront's own choice where the
//! documentation says nothing:
//! - The signing parameters are `Expires`, `Policy`, `Signature`, `Key-Pair-Id` and
//!   `Hash-Algorithm`, names case-sensitive. If the query holds any of the first four, the
//!   URL alone decides; otherwise the `CloudFront-<name>` cookies do.
//! - (homefront) A parameter given twice, or `Policy` together with `Expires`, is refused
//!   (AccessDenied) before anything else is looked at: which one counts would be a guess.
//! - No or an empty `Key-Pair-Id`: MissingKey. A key id outside the trusted keys: InvalidKey.
//! - `Signature` missing or not CloudFront base64: MalformedSignature.
//! - `Hash-Algorithm` absent or `SHA1`: SHA-1; `SHA256`: SHA-256; anything else (other
//!   spellings included) refused with AccessDenied. ECDSA keys sign with SHA-256 only.
//! - CloudFront base64 is base64 (RFC 4648, padded) with `-` `_` `~` for `+` `=` `/`.
//!   (homefront) The value may be percent-encoded, the standard characters are taken too,
//!   and only the canonical encoding of some bytes is accepted.
//! - Custom policy: JSON, one statement (an array of one, or a bare object); `Resource`
//!   optional, a string, with `*` (any run) and `?` (one byte) wildcards; `Condition` with
//!   `DateLessThan` (required), `DateGreaterThan` and `IpAddress.AWS:SourceIp`, times as
//!   `{"AWS:EpochTime": <seconds>}` ((homefront) also a string of decimal digits). Anything
//!   else in that shape: MalformedPolicy. The signature covers the policy bytes as sent.
//! - `AWS:SourceIp`: an address, optionally `/<prefix length>` (no prefix: that address
//!   alone). (homefront) IPv6 ranges too, and an IPv4-mapped client matches an IPv4 range.
//! - Canned policy: `Expires` is decimal seconds (digits only, else AccessDenied); the
//!   signature covers `{"Statement":[{"Resource":"<URL>","Condition":{"DateLessThan":
//!   {"AWS:EpochTime":<Expires>}}}]}`, URL being scheme://host/path plus the request's own
//!   query minus the signing parameters, exactly as sent.
//! - Allowed while now < DateLessThan, now > DateGreaterThan, the client in the range and
//!   the URL matching the resource; otherwise AccessDenied.

use std::net::IpAddr;

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use serde_json::Value;

use crate::glob_reference;

/// The signing parameters' names.
pub const PARAMETERS: [&str; 5] = ["Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"];

/// A viewer request as the verifier sees it.
pub struct Request<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The Cookie header(s), joined with `; `.
    pub cookies: Option<&'a str>,
    pub client_ip: IpAddr,
    pub now: u64,
}

/// The verdict: allowed, or refused with CloudFront's error code.
pub type Verdict = Result<(), &'static str>;

/// A custom policy's conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    pub resource: Option<String>,
    pub date_less_than: u64,
    pub date_greater_than: Option<u64>,
    /// Network address and prefix length.
    pub source_ip: Option<(IpAddr, u32)>,
}

impl Conditions {
    /// Do the conditions let `client` have `url` at `now`?
    pub fn allow(&self, url: &str, client: IpAddr, now: u64) -> bool {
        let resource = match &self.resource {
            Some(pattern) => glob_reference(pattern.as_bytes(), url.as_bytes(), true),
            None => true,
        };
        let not_expired = now < self.date_less_than;
        let started = match self.date_greater_than {
            Some(start) => now > start,
            None => true,
        };
        let address = match self.source_ip {
            Some(range) => in_range(range, client),
            None => true,
        };
        resource && not_expired && started && address
    }
}

/// The reference verdict for `req` against the trusted `keys` (key id, public key).
pub fn verify(keys: &[(&str, PKey<Public>)], req: &Request<'_>) -> Verdict {
    // Where the credentials come from.
    let from_query: Vec<(&str, &str)> = query_pairs(req.query.unwrap_or(""))
        .into_iter()
        .filter(|(name, _)| PARAMETERS.contains(name))
        .collect();
    let url_is_signed = from_query.iter().any(|(name, _)| *name != "Hash-Algorithm");
    let params: Vec<(&str, &str)> = if url_is_signed {
        from_query
    } else {
        cookie_pairs(req.cookies.unwrap_or(""))
            .into_iter()
            .filter_map(|(name, value)| Some((name.strip_prefix("CloudFront-")?, value)))
            .filter(|(name, _)| PARAMETERS.contains(name))
            .collect()
    };

    // An ambiguous set of parameters.
    for name in PARAMETERS {
        if params.iter().filter(|(n, _)| *n == name).count() > 1 {
            return Err("AccessDenied");
        }
    }
    let get = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    if get("Policy").is_some() && get("Expires").is_some() {
        return Err("AccessDenied");
    }

    let key_id = match get("Key-Pair-Id") {
        None | Some("") => return Err("MissingKey"),
        Some(id) => id,
    };
    let Some((_, key)) = keys.iter().find(|(id, _)| *id == key_id) else {
        return Err("InvalidKey");
    };
    let Some(signature) = get("Signature").and_then(cloudfront_base64) else {
        return Err("MalformedSignature");
    };
    let sha256 = match get("Hash-Algorithm") {
        None | Some("SHA1") => false,
        Some("SHA256") => true,
        Some(_) => return Err("AccessDenied"),
    };

    let url = policy_url(req);
    match get("Policy") {
        Some(encoded) => {
            let document = cloudfront_base64(encoded).ok_or("MalformedPolicy")?;
            let conditions = read_policy(&document).ok_or("MalformedPolicy")?;
            if !genuine(key, sha256, &document, &signature) {
                return Err("AccessDenied");
            }
            if conditions.allow(&url, req.client_ip, req.now) {
                Ok(())
            } else {
                Err("AccessDenied")
            }
        }
        None => {
            let expires = match get("Expires") {
                Some(e) if is_decimal(e) => e.parse::<u64>().map_err(|_| "AccessDenied")?,
                _ => return Err("AccessDenied"),
            };
            let canned = format!(
                "{{\"Statement\":[{{\"Resource\":\"{url}\",\"Condition\":{{\"DateLessThan\":{{\"AWS:EpochTime\":{expires}}}}}}}]}}"
            );
            if !genuine(key, sha256, canned.as_bytes(), &signature) {
                return Err("AccessDenied");
            }
            if req.now < expires {
                Ok(())
            } else {
                Err("AccessDenied")
            }
        }
    }
}

/// The URL a policy speaks of: scheme://host/path, then `?` and the request's own query
/// pairs (empty ones and signing parameters left out) when any remain.
pub fn policy_url(req: &Request<'_>) -> String {
    let kept: Vec<String> = req
        .query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = match pair.find('=') {
                Some(i) => &pair[..i],
                None => pair,
            };
            !PARAMETERS.contains(&name)
        })
        .map(str::to_string)
        .collect();
    let mut url = format!("{}://{}{}", req.scheme, req.host, req.path);
    if !kept.is_empty() {
        url.push('?');
        url.push_str(&kept.join("&"));
    }
    url
}

/// The query's `name=value` pairs (a pair without `=` has an empty value).
fn query_pairs(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.find('=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        })
        .collect()
}

/// The Cookie header's pairs (RFC 6265 §4.2.1: `;`-separated, optional blanks around each
/// pair; a value in double quotes loses them).
fn cookie_pairs(header: &str) -> Vec<(&str, &str)> {
    header
        .split(';')
        .map(|pair| pair.trim_matches(|c| c == ' ' || c == '\t'))
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.find('=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, ""),
            };
            let value = if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                &value[1..value.len() - 1]
            } else {
                value
            };
            (name, value)
        })
        .collect()
}

fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `%XX` sequences decoded; `None` for a `%` not followed by two hex digits.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64 of `data`.
fn base64_encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// CloudFront's base64: decoded bit by bit, then accepted only if encoding the result
/// again gives back exactly the (substituted) text.
pub fn cloudfront_base64(text: &str) -> Option<Vec<u8>> {
    let standard: Vec<u8> = percent_decode(text)?
        .into_iter()
        .map(|b| match b {
            b'-' => b'+',
            b'_' => b'=',
            b'~' => b'/',
            b => b,
        })
        .collect();
    let mut body = &standard[..];
    for _ in 0..2 {
        if let Some(rest) = body.strip_suffix(b"=") {
            body = rest;
        }
    }
    let mut out = Vec::new();
    let (mut bits, mut count) = (0u32, 0u32);
    for c in body {
        let value = ALPHABET.iter().position(|a| a == c)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    (!out.is_empty() && base64_encode(&out) == standard).then_some(out)
}

/// Is `signature` genuine for `message` under `key`? ECDSA goes with SHA-256 only.
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

/// A custom policy document's conditions, or `None` if it is not one.
pub fn read_policy(document: &[u8]) -> Option<Conditions> {
    let doc: Value = serde_json::from_slice(document).ok()?;
    let statement = match doc.as_object()?.get("Statement")? {
        Value::Array(list) if list.len() == 1 => &list[0],
        Value::Array(_) => return None,
        other => other,
    };
    let statement = statement.as_object()?;
    let resource = match statement.get("Resource") {
        None => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return None,
    };
    let condition = statement.get("Condition")?.as_object()?;
    let date_less_than = epoch_time(condition.get("DateLessThan")?)?;
    let date_greater_than = match condition.get("DateGreaterThan") {
        None => None,
        Some(v) => Some(epoch_time(v)?),
    };
    let source_ip = match condition.get("IpAddress") {
        None => None,
        Some(v) => match v.as_object()?.get("AWS:SourceIp")? {
            Value::String(range) => Some(read_range(range)?),
            _ => return None,
        },
    };
    Some(Conditions {
        resource,
        date_less_than,
        date_greater_than,
        source_ip,
    })
}

/// `{"AWS:EpochTime": N}`, N a non-negative integer (or a string of decimal digits).
fn epoch_time(v: &Value) -> Option<u64> {
    match v.as_object()?.get("AWS:EpochTime")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if is_decimal(s) => s.parse().ok(),
        _ => None,
    }
}

/// `ADDRESS` or `ADDRESS/LENGTH`, LENGTH decimal digits up to the address's bit count.
pub fn read_range(text: &str) -> Option<(IpAddr, u32)> {
    let (address, length) = match text.find('/') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let length = match length {
        None => bits,
        Some(l) if is_decimal(l) => l.parse::<u32>().ok()?,
        Some(_) => return None,
    };
    (length <= bits).then_some((address, length))
}

/// Is `client` inside the range? Compared bit by bit over the prefix.
pub fn in_range((network, length): (IpAddr, u32), client: IpAddr) -> bool {
    let octets = |ip: IpAddr| match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let client = match (network, client) {
        (IpAddr::V4(_), IpAddr::V6(c)) => match c.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        (IpAddr::V6(_), IpAddr::V4(_)) => return false,
        _ => client,
    };
    let (a, b) = (octets(network), octets(client));
    let bit = |bytes: &[u8], i: u32| (bytes[(i / 8) as usize] >> (7 - i % 8)) & 1;
    (0..length).all(|i| bit(&a, i) == bit(&b, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../tests/vectors/cloudfront-signed.json");

    fn keys() -> Vec<(&'static str, PKey<Public>)> {
        vec![
            (
                "KTRUSTEDRSA0001",
                PKey::public_key_from_pem(include_bytes!("../../tests/vectors/keys/trusted-rsa.pub.pem")).unwrap(),
            ),
            (
                "KTRUSTEDEC00001",
                PKey::public_key_from_pem(include_bytes!("../../tests/vectors/keys/trusted-ec.pub.pem")).unwrap(),
            ),
        ]
    }

    /// The reference gives every vector of the real AWS signers its verdict.
    #[test]
    fn every_vector_gets_its_verdict() {
        let doc: Value = serde_json::from_str(VECTORS).unwrap();
        let keys = keys();
        for case in doc["cases"].as_array().unwrap() {
            let url = case["request_url"].as_str().unwrap();
            let (scheme, rest) = url.split_once("://").unwrap();
            let (before, query) = match rest.split_once('?') {
                Some((b, q)) => (b, Some(q)),
                None => (rest, None),
            };
            let slash = before.find('/').unwrap();
            let cookies: Vec<String> = case["cookies"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            let cookies = cookies.join("; ");
            let req = Request {
                scheme,
                host: &before[..slash],
                path: &before[slash..],
                query,
                cookies: (!cookies.is_empty()).then_some(cookies.as_str()),
                client_ip: case["client_ip"].as_str().unwrap().parse().unwrap(),
                now: 1_767_225_600,
            };
            let expect = match case["expect"].as_str().unwrap() {
                "allow" => Ok(()),
                _ => Err(case["error_code"].as_str().unwrap()),
            };
            assert_eq!(
                verify(&keys, &req).map_err(str::to_string),
                expect.map_err(str::to_string),
                "{}",
                case["name"]
            );
        }
    }

    #[test]
    fn base64_variant() {
        assert_eq!(cloudfront_base64("aGk_").as_deref(), Some(&b"hi"[..]));
        assert_eq!(cloudfront_base64("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(cloudfront_base64("aGk%5F").as_deref(), Some(&b"hi"[..]));
        assert_eq!(cloudfront_base64("~-8_").as_deref(), Some(&[0xff, 0xef][..]));
        for bad in ["", "aGk", "aGl_", "a_k_", "aG__x___", "aGk%5", "aGk%zz", "aG k", "____"] {
            assert_eq!(cloudfront_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let range = read_range("192.0.2.0/24").unwrap();
        assert!(in_range(range, "192.0.2.200".parse().unwrap()));
        assert!(in_range(range, "::ffff:192.0.2.1".parse().unwrap()));
        assert!(!in_range(range, "192.0.3.1".parse().unwrap()));
        assert!(!in_range(range, "2001:db8::1".parse().unwrap()));
        assert_eq!(read_range("203.0.113.7"), Some(("203.0.113.7".parse().unwrap(), 32)));
        assert!(in_range(read_range("0.0.0.0/0").unwrap(), "8.8.8.8".parse().unwrap()));
        assert!(in_range(
            read_range("2001:db8::/32").unwrap(),
            "2001:db8::1".parse().unwrap()
        ));
        for bad in [
            "192.0.2.0/33",
            "192.0.2.0/",
            "192.0.2.0/+8",
            " 192.0.2.0/24",
            "x/8",
            "192.0.2.0/24/1",
        ] {
            assert_eq!(read_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn policies() {
        let p = read_policy(br#"{"Statement":{"Condition":{"DateLessThan":{"AWS:EpochTime":"10"}}}}"#).unwrap();
        assert_eq!((p.resource, p.date_less_than), (None, 10));
        for bad in [
            &br#"not json"#[..],
            br#"{"Statement":[]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":1}}},{"Condition":{"DateLessThan":{"AWS:EpochTime":1}}}]}"#,
            br#"{"Statement":[{"Condition":{}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":"+1"}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":1.5}}}]}"#,
            br#"{"Statement":[{"Resource":1,"Condition":{"DateLessThan":{"AWS:EpochTime":1}}}]}"#,
        ] {
            assert_eq!(read_policy(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let p = read_policy(
            br#"{"Statement":[{"Resource":"https://h/a/*","Condition":{"DateLessThan":{"AWS:EpochTime":100},"DateGreaterThan":{"AWS:EpochTime":10},"IpAddress":{"AWS:SourceIp":"192.0.2.0/24"}}}]}"#,
        )
        .unwrap();
        let inside: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(p.allow("https://h/a/b", inside, 50));
        assert!(!p.allow("http://h/a/b", inside, 50), "another scheme");
        assert!(!p.allow("https://other/a/b", inside, 50), "another host");
        assert!(!p.allow("https://h/a/b", inside, 100), "expired");
        assert!(!p.allow("https://h/a/b", inside, 10), "not yet valid");
        assert!(!p.allow("https://h/a/b", "198.51.100.1".parse().unwrap(), 50));
    }
}
