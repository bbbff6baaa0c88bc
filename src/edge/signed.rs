//! CloudFront signed URLs and signed cookies: verification (per request, pure: the caller
//! passes the time and the client address) and signing (for `homefront sign-url`), in the
//! exact wire format of botocore's `CloudFrontSigner` and `@aws-sdk/cloudfront-signer`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::sign::{Signer, Verifier};

use super::behavior::glob_match;
use super::ip::Cidr;
use super::viewer::percent_decode;

/// Query parameters that carry the signature; never forwarded, never in the cache key.
pub const SIGNING_PARAMS: [&str; 5] = ["Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"];

/// The 403 reasons, with CloudFront's codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedError {
    MissingKey,
    InvalidKey,
    MalformedSignature,
    MalformedPolicy,
    AccessDenied,
}

impl SignedError {
    pub fn code(self) -> &'static str {
        match self {
            SignedError::MissingKey => "MissingKey",
            SignedError::InvalidKey => "InvalidKey",
            SignedError::MalformedSignature => "MalformedSignature",
            SignedError::MalformedPolicy => "MalformedPolicy",
            SignedError::AccessDenied => "AccessDenied",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            SignedError::MissingKey => "Missing Key-Pair-Id query parameter or cookie value",
            SignedError::InvalidKey => "Unknown Key",
            SignedError::MalformedSignature => "Could not unencode Signature",
            SignedError::MalformedPolicy => "Malformed Policy",
            SignedError::AccessDenied => "Access denied",
        }
    }
}

/// A public key of a trusted key group, parsed once per config generation.
pub struct VerifyKey {
    pkey: PKey<Public>,
    is_ec: bool,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VerifyKey({}, {} bits)",
            if self.is_ec { "ECDSA" } else { "RSA" },
            self.pkey.bits()
        )
    }
}

impl VerifyKey {
    /// RSA (2048 bits or more) or ECDSA P-256, from PEM.
    pub fn from_pem(pem: &[u8]) -> Result<VerifyKey, String> {
        let pkey = PKey::public_key_from_pem(pem).map_err(|e| format!("not a PEM public key: {e}"))?;
        match pkey.id() {
            Id::RSA if pkey.bits() >= 2048 => Ok(VerifyKey { pkey, is_ec: false }),
            Id::RSA => Err(format!(
                "RSA keys must have at least 2048 bits (this one has {})",
                pkey.bits()
            )),
            Id::EC => {
                let ec = pkey.ec_key().map_err(|e| e.to_string())?;
                if ec.group().curve_name() == Some(openssl::nid::Nid::X9_62_PRIME256V1) {
                    Ok(VerifyKey { pkey, is_ec: true })
                } else {
                    Err("EC keys must be on the P-256 curve".into())
                }
            }
            _ => Err("only RSA and ECDSA P-256 public keys are supported".into()),
        }
    }

    fn verify(&self, sha256: bool, message: &[u8], signature: &[u8]) -> bool {
        // CloudFront pairs ECDSA with SHA-256 only.
        if self.is_ec && !sha256 {
            return false;
        }
        let md = if sha256 {
            MessageDigest::sha256()
        } else {
            MessageDigest::sha1()
        };
        match Verifier::new(md, &self.pkey) {
            Ok(mut v) => v.verify_oneshot(signature, message).unwrap_or(false),
            Err(_) => false,
        }
    }
}

/// The keys a behavior trusts: the union of its key groups, by key id.
#[derive(Default, Clone)]
pub struct TrustedKeys {
    keys: HashMap<String, Arc<VerifyKey>>,
    /// Signatures already verified, so that a signed URL used for many requests (a page's
    /// assets, a video's segments) pays for the public-key operation once. Keyed by a
    /// SHA-256 over key id, algorithm, signature and signed bytes; only successes are kept.
    memo: Arc<Memo>,
}

/// A bounded set of verified (key, algorithm, signature, message) digests.
#[derive(Default)]
struct Memo {
    seen: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

/// Verified signatures kept per config generation; the set is cleared when full.
const MEMO_CAPACITY: usize = 65_536;

impl Memo {
    fn digest(key_id: &str, sha256: bool, message: &[u8], signature: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update((key_id.len() as u32).to_be_bytes());
        h.update(key_id.as_bytes());
        h.update([u8::from(sha256)]);
        h.update((signature.len() as u32).to_be_bytes());
        h.update(signature);
        h.update(message);
        h.finalize().into()
    }
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("TrustedKeys").field("ids", &ids).finish()
    }
}

impl TrustedKeys {
    pub fn insert(&mut self, id: String, key: Arc<VerifyKey>) {
        self.keys.insert(id, key);
    }

    /// Forgets remembered signatures (benchmarks measure the first use with it).
    pub fn forget_verified(&self) {
        if let Ok(mut seen) = self.memo.seen.lock() {
            seen.clear();
        }
    }

    /// Verifies `signature` over `message` with key `key_id`, remembering successes.
    fn verify_signature(&self, key_id: &str, key: &VerifyKey, sha256: bool, message: &[u8], signature: &[u8]) -> bool {
        let digest = Memo::digest(key_id, sha256, message, signature);
        if self.memo.seen.lock().map(|s| s.contains(&digest)).unwrap_or(false) {
            return true;
        }
        if !key.verify(sha256, message, signature) {
            return false;
        }
        if let Ok(mut seen) = self.memo.seen.lock() {
            if seen.len() >= MEMO_CAPACITY {
                seen.clear();
            }
            seen.insert(digest);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What verification needs to know about the viewer's request.
pub struct ViewerRequest<'a> {
    /// `https` or `http`, as the viewer connected.
    pub scheme: &'a str,
    /// The Host header as sent.
    pub host: &'a str,
    /// Path as sent (percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The Cookie header(s), joined with `; `.
    pub cookies: Option<&'a str>,
    pub client_ip: IpAddr,
    /// Seconds since the epoch, when the request arrived.
    pub now: u64,
}

#[derive(Default)]
struct Credentials<'a> {
    expires: Option<&'a str>,
    policy: Option<&'a str>,
    signature: Option<&'a str>,
    key_pair_id: Option<&'a str>,
    hash_algorithm: Option<&'a str>,
    /// A signing parameter came more than once.
    repeated: bool,
}

impl<'a> Credentials<'a> {
    fn set(&mut self, name: &str, value: &'a str) {
        let slot = match name {
            "Expires" => &mut self.expires,
            "Policy" => &mut self.policy,
            "Signature" => &mut self.signature,
            "Key-Pair-Id" => &mut self.key_pair_id,
            "Hash-Algorithm" => &mut self.hash_algorithm,
            _ => return,
        };
        self.repeated |= slot.is_some();
        *slot = Some(value);
    }

    /// Two of one parameter, or both a canned (`Expires`) and a custom (`Policy`) policy:
    /// which one counts would be a guess (and another reader of the same request could
    /// guess otherwise), so such a request is refused whatever else it holds.
    fn ambiguous(&self) -> bool {
        self.repeated || (self.expires.is_some() && self.policy.is_some())
    }

    fn any_url_credential(&self) -> bool {
        self.expires.is_some() || self.policy.is_some() || self.signature.is_some() || self.key_pair_id.is_some()
    }
}

/// `query` without the signing parameters, other parameters as sent and in order; `None`
/// when nothing remains.
pub fn strip_signing_params(query: &str) -> Option<String> {
    let mut out = String::with_capacity(query.len());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if SIGNING_PARAMS.contains(&name) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    (!out.is_empty()).then_some(out)
}

/// Does the query carry any signing parameter? (Cheap check before stripping.)
pub fn has_signing_params(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| SIGNING_PARAMS.contains(&pair.split_once('=').map_or(pair, |(n, _)| n)))
}

/// CloudFront's URL-safe base64: `+`→`-`, `=`→`_`, `/`→`~`.
pub fn url_b64encode(data: &[u8]) -> String {
    openssl::base64::encode_block(data)
        .replace('+', "-")
        .replace('=', "_")
        .replace('/', "~")
}

/// Decodes CloudFront's base64 (the standard `+` `=` `/` are taken too, and the value may
/// be percent-encoded): padded to a multiple of four characters, padding only at the end,
/// the unused bits zero. Only the one encoding a signer makes of some bytes is accepted
/// (openssl's decoder also took padding inside the text, as zero bits).
fn url_b64decode(text: &str) -> Option<Vec<u8>> {
    let decoded;
    let bytes = if text.contains('%') {
        decoded = percent_decode(text.as_bytes())?;
        &decoded[..]
    } else {
        text.as_bytes()
    };
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let sextet = |b: u8| -> Option<u32> {
        Some(u32::from(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'~' => 63,
            _ => return None,
        }))
    };
    let groups = bytes.len() / 4;
    let mut out = Vec::with_capacity(groups * 3);
    for (i, group) in bytes.chunks_exact(4).enumerate() {
        let pad = if i + 1 == groups {
            group.iter().rev().take_while(|&&b| b == b'=' || b == b'_').count()
        } else {
            0
        };
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &b in &group[..4 - pad] {
            n = n << 6 | sextet(b)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        if three[3 - pad..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

/// Decimal seconds as a signer writes them: digits only.
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Verifies a request for content behind trusted key groups.
pub fn verify(keys: &TrustedKeys, req: &ViewerRequest<'_>) -> Result<(), SignedError> {
    let mut creds = Credentials::default();
    if let Some(q) = req.query {
        for pair in q.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            creds.set(name, value);
        }
    }
    // Any signing parameter in the URL means the URL alone decides.
    if !creds.any_url_credential() {
        creds = Credentials::default();
        if let Some(cookies) = req.cookies {
            // RFC 6265 §4.2.1: blanks around each pair; a value may be in double quotes.
            for c in cookies.split(';') {
                let c = c.trim_matches([' ', '\t']);
                let (name, value) = c.split_once('=').unwrap_or((c, ""));
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                if let Some(param) = name.strip_prefix("CloudFront-") {
                    creds.set(param, value);
                }
            }
        }
    }
    if creds.ambiguous() {
        return Err(SignedError::AccessDenied);
    }

    let key_id = creds
        .key_pair_id
        .filter(|k| !k.is_empty())
        .ok_or(SignedError::MissingKey)?;
    let key = keys.keys.get(key_id).ok_or(SignedError::InvalidKey)?;
    let signature = creds
        .signature
        .and_then(url_b64decode)
        .ok_or(SignedError::MalformedSignature)?;
    let sha256 = match creds.hash_algorithm {
        None => false,
        Some("SHA256") => true,
        Some("SHA1") => false,
        Some(_) => return Err(SignedError::AccessDenied),
    };

    // The URL the policy speaks of: scheme://host/path plus the request's own query minus
    // the signing parameters, exactly as sent.
    let mut url = String::with_capacity(req.scheme.len() + req.host.len() + req.path.len() + 64);
    url.push_str(req.scheme);
    url.push_str("://");
    url.push_str(req.host);
    url.push_str(req.path);
    if let Some(rest) = req.query.and_then(strip_signing_params) {
        url.push('?');
        url.push_str(&rest);
    }

    if let Some(policy_b64) = creds.policy {
        let policy = url_b64decode(policy_b64).ok_or(SignedError::MalformedPolicy)?;
        let parsed = parse_policy(&policy).ok_or(SignedError::MalformedPolicy)?;
        if !keys.verify_signature(key_id, key, sha256, &policy, &signature) {
            return Err(SignedError::AccessDenied);
        }
        parsed
            .allows(&url, req.client_ip, req.now)
            .then_some(())
            .ok_or(SignedError::AccessDenied)
    } else {
        let expires = creds.expires.and_then(decimal).ok_or(SignedError::AccessDenied)?;
        let policy = canned_policy(&url, expires);
        if !keys.verify_signature(key_id, key, sha256, policy.as_bytes(), &signature) {
            return Err(SignedError::AccessDenied);
        }
        (req.now < expires).then_some(()).ok_or(SignedError::AccessDenied)
    }
}

/// The canned policy, byte for byte as the signers build it.
pub fn canned_policy(url: &str, expires: u64) -> String {
    format!(r#"{{"Statement":[{{"Resource":"{url}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#)
}

/// A custom policy's conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub resource: Option<String>,
    pub date_less_than: u64,
    pub date_greater_than: Option<u64>,
    pub source_ip: Option<Cidr>,
}

impl Policy {
    pub fn allows(&self, url: &str, client: IpAddr, now: u64) -> bool {
        self.resource
            .as_deref()
            .is_none_or(|r| glob_match(r.as_bytes(), url.as_bytes()))
            && now < self.date_less_than
            && self.date_greater_than.is_none_or(|t| now > t)
            && self.source_ip.is_none_or(|c| c.contains(client))
    }
}

/// `{"AWS:EpochTime": N}`: N a JSON integer (CloudFront's form) or a string of digits.
fn epoch(v: &serde_json::Value) -> Option<u64> {
    let t = v.get("AWS:EpochTime")?;
    t.as_u64().or_else(|| decimal(t.as_str()?))
}

/// `AWS:SourceIp`: an address with an optional `/LENGTH`, written without blanks or signs
/// (which `Cidr::parse`, made for the config file, lets through).
fn source_ip(text: &str) -> Option<Cidr> {
    let plain = |b: u8| b.is_ascii_hexdigit() || b == b'.' || b == b':' || b == b'/';
    if !text.bytes().all(plain) {
        return None;
    }
    Cidr::parse(text)
}

/// One statement, as an array of one or a bare object (CloudFront: "You can include only
/// one statement"; two are MalformedPolicy); `DateLessThan` required.
pub fn parse_policy(bytes: &[u8]) -> Option<Policy> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let statement = match doc.get("Statement")? {
        serde_json::Value::Array(list) if list.len() == 1 => &list[0],
        obj @ serde_json::Value::Object(_) => obj,
        _ => return None,
    };
    let resource = match statement.get("Resource") {
        None => None,
        Some(r) => Some(r.as_str()?.to_string()),
    };
    let cond = statement.get("Condition")?;
    let date_less_than = epoch(cond.get("DateLessThan")?)?;
    let date_greater_than = match cond.get("DateGreaterThan") {
        None => None,
        Some(v) => Some(epoch(v)?),
    };
    let source_ip = match cond.get("IpAddress") {
        None => None,
        Some(v) => Some(source_ip(v.get("AWS:SourceIp")?.as_str()?)?),
    };
    Some(Policy {
        resource,
        date_less_than,
        date_greater_than,
        source_ip,
    })
}

/// What `homefront sign-url` signs.
pub struct SignSpec<'a> {
    pub url: &'a str,
    pub key_pair_id: &'a str,
    pub expires: u64,
    /// Custom policy fields; all `None` → canned policy.
    pub resource: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub not_before: Option<u64>,
    pub sha256: bool,
}

impl SignSpec<'_> {
    fn is_custom(&self) -> bool {
        self.resource.is_some() || self.ip.is_some() || self.not_before.is_some()
    }

    /// The policy as botocore's `build_policy` renders it (compact JSON, fixed key order).
    pub fn policy(&self) -> String {
        if !self.is_custom() {
            return canned_policy(self.url, self.expires);
        }
        let mut cond = format!(r#""DateLessThan":{{"AWS:EpochTime":{}}}"#, self.expires);
        if let Some(ip) = self.ip {
            let ip = if ip.contains('/') {
                ip.to_string()
            } else {
                format!("{ip}/32")
            };
            cond.push_str(&format!(
                r#","IpAddress":{{"AWS:SourceIp":{}}}"#,
                serde_json::Value::String(ip)
            ));
        }
        if let Some(t) = self.not_before {
            cond.push_str(&format!(r#","DateGreaterThan":{{"AWS:EpochTime":{t}}}"#));
        }
        let resource = serde_json::Value::String(self.resource.unwrap_or(self.url).to_string());
        format!(r#"{{"Statement":[{{"Resource":{resource},"Condition":{{{cond}}}}}]}}"#)
    }
}

fn sign_bytes(key: &PKey<Private>, sha256: bool, data: &[u8]) -> Result<Vec<u8>, String> {
    let md = if sha256 {
        MessageDigest::sha256()
    } else {
        MessageDigest::sha1()
    };
    if key.id() == Id::EC && !sha256 {
        return Err("ECDSA keys sign with SHA-256 only: add --sha256".into());
    }
    let mut s = Signer::new(md, key).map_err(|e| e.to_string())?;
    s.sign_oneshot_to_vec(data).map_err(|e| e.to_string())
}

/// The signed URL, parameters in botocore's order (then `Hash-Algorithm=SHA256` as the AWS
/// JS signer appends it).
pub fn sign_url(spec: &SignSpec<'_>, key: &PKey<Private>) -> Result<String, String> {
    let policy = spec.policy();
    let signature = url_b64encode(&sign_bytes(key, spec.sha256, policy.as_bytes())?);
    let mut url = spec.url.to_string();
    url.push(if url.contains('?') { '&' } else { '?' });
    if spec.is_custom() {
        url.push_str(&format!("Policy={}", url_b64encode(policy.as_bytes())));
    } else {
        url.push_str(&format!("Expires={}", spec.expires));
    }
    url.push_str(&format!("&Signature={signature}&Key-Pair-Id={}", spec.key_pair_id));
    if spec.sha256 {
        url.push_str("&Hash-Algorithm=SHA256");
    }
    Ok(url)
}

/// Signed cookies (name, value) for the same spec; a custom policy always (cookies cover
/// wildcard resources).
pub fn sign_cookies(spec: &SignSpec<'_>, key: &PKey<Private>) -> Result<Vec<(&'static str, String)>, String> {
    let policy = spec.policy();
    let signature = url_b64encode(&sign_bytes(key, spec.sha256, policy.as_bytes())?);
    let mut out = Vec::new();
    if spec.is_custom() {
        out.push(("CloudFront-Policy", url_b64encode(policy.as_bytes())));
    } else {
        out.push(("CloudFront-Expires", spec.expires.to_string()));
    }
    out.push(("CloudFront-Signature", signature));
    out.push(("CloudFront-Key-Pair-Id", spec.key_pair_id.to_string()));
    if spec.sha256 {
        out.push(("CloudFront-Hash-Algorithm", "SHA256".to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../tests/vectors/cloudfront-signed.json");
    /// 2026-01-01, inside the vectors' stated validity window.
    const NOW: u64 = 1_767_225_600;

    fn trusted() -> TrustedKeys {
        let mut t = TrustedKeys::default();
        for (id, pem) in [
            (
                "KTRUSTEDRSA0001",
                include_bytes!("../../tests/vectors/keys/trusted-rsa.pub.pem").as_slice(),
            ),
            (
                "KTRUSTEDEC00001",
                include_bytes!("../../tests/vectors/keys/trusted-ec.pub.pem").as_slice(),
            ),
        ] {
            t.insert(id.into(), Arc::new(VerifyKey::from_pem(pem).unwrap()));
        }
        t
    }

    /// A viewer request for a full URL, from `ip` at `now`, without cookies.
    fn url_request<'a>(url: &'a str, ip: &str, now: u64) -> ViewerRequest<'a> {
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

    fn split_url(url: &str) -> (&str, &str, &str, Option<&str>) {
        let (scheme, rest) = url.split_once("://").unwrap();
        let slash = rest.find('/').unwrap();
        let (host, pq) = rest.split_at(slash);
        match pq.split_once('?') {
            Some((p, q)) => (scheme, host, p, Some(q)),
            None => (scheme, host, pq, None),
        }
    }

    #[test]
    fn every_vector_gets_its_verdict() {
        let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let keys = trusted();
        for case in doc["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (scheme, host, path, query) = split_url(case["request_url"].as_str().unwrap());
            let cookies: Vec<String> = case["cookies"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            let cookies = cookies.join("; ");
            let req = ViewerRequest {
                scheme,
                host,
                path,
                query,
                cookies: (!cookies.is_empty()).then_some(cookies.as_str()),
                client_ip: case["client_ip"].as_str().unwrap().parse().unwrap(),
                now: NOW,
            };
            let got = verify(&keys, &req);
            match case["expect"].as_str().unwrap() {
                "allow" => assert_eq!(got, Ok(()), "{name}"),
                _ => assert_eq!(got.err().map(|e| e.code()), case["error_code"].as_str(), "{name}"),
            }
        }
    }

    #[test]
    fn expiry_is_checked_against_the_given_clock() {
        let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let case = doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "canned-rsa-sha1-valid")
            .unwrap();
        let mut req = url_request(case["request_url"].as_str().unwrap(), "203.0.113.7", 4_102_444_799);
        assert_eq!(verify(&trusted(), &req), Ok(()));
        req.now = 4_102_444_800;
        assert_eq!(verify(&trusted(), &req), Err(SignedError::AccessDenied));
    }

    #[test]
    fn signing_round_trips_and_matches_the_canned_format() {
        let key = PKey::private_key_from_pem(include_bytes!("../../tests/vectors/keys/trusted-rsa.pem")).unwrap();
        let spec = SignSpec {
            url: "https://cdn.example.test/private/report.pdf",
            key_pair_id: "KTRUSTEDRSA0001",
            expires: 4_102_444_800,
            resource: None,
            ip: None,
            not_before: None,
            sha256: false,
        };
        let url = sign_url(&spec, &key).unwrap();
        // RSA PKCS#1 v1.5 is deterministic: the same inputs give botocore's exact URL.
        let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let case = doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "canned-rsa-sha1-valid")
            .unwrap();
        assert_eq!(url, case["request_url"].as_str().unwrap());

        let custom = SignSpec {
            resource: Some("https://cdn.example.test/private/*"),
            ip: Some("192.0.2.0/24"),
            not_before: Some(100),
            sha256: true,
            ..spec
        };
        let signed = sign_url(&custom, &key).unwrap();
        let mut req = url_request(&signed, "192.0.2.9", NOW);
        assert_eq!(verify(&trusted(), &req), Ok(()));
        req.client_ip = "198.51.100.1".parse().unwrap();
        assert_eq!(verify(&trusted(), &req), Err(SignedError::AccessDenied));
        req.client_ip = "192.0.2.9".parse().unwrap();
        req.now = 50;
        assert_eq!(
            verify(&trusted(), &req),
            Err(SignedError::AccessDenied),
            "not yet valid"
        );
    }

    #[test]
    fn cookies_are_used_only_without_url_credentials() {
        let key = PKey::private_key_from_pem(include_bytes!("../../tests/vectors/keys/trusted-ec.pem")).unwrap();
        let spec = SignSpec {
            url: "https://cdn.example.test/members/x",
            key_pair_id: "KTRUSTEDEC00001",
            expires: NOW + 60,
            resource: Some("https://cdn.example.test/members/*"),
            ip: None,
            not_before: None,
            sha256: true,
        };
        let cookies: Vec<String> = sign_cookies(&spec, &key)
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let cookies = format!("session=abc; {}", cookies.join("; "));
        let mut req = ViewerRequest {
            scheme: "https",
            host: "cdn.example.test",
            path: "/members/video.mp4",
            query: Some("quality=hd"),
            cookies: Some(&cookies),
            client_ip: "203.0.113.7".parse().unwrap(),
            now: NOW,
        };
        assert_eq!(verify(&trusted(), &req), Ok(()));
        // A URL credential takes over, even a broken one.
        req.query = Some("quality=hd&Key-Pair-Id=KTRUSTEDEC00001");
        assert_eq!(verify(&trusted(), &req), Err(SignedError::MalformedSignature));
        assert!(
            sign_url(&SignSpec { sha256: false, ..spec }, &key).is_err(),
            "ECDSA needs SHA-256"
        );
    }

    #[test]
    fn remembered_signatures_still_check_everything_else() {
        let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let keys = trusted();
        let find = |n: &str| {
            doc["cases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == n)
                .unwrap()
                .clone()
        };
        let ok = find("canned-rsa-sha1-valid");
        let (scheme, host, path, query) = split_url(ok["request_url"].as_str().unwrap());
        let req = |now| ViewerRequest {
            scheme,
            host,
            path,
            query,
            cookies: None,
            client_ip: "203.0.113.7".parse().unwrap(),
            now,
        };
        assert_eq!(verify(&keys, &req(NOW)), Ok(()));
        assert_eq!(verify(&keys, &req(NOW)), Ok(()), "second time from the memo");
        assert_eq!(
            verify(&keys, &req(4_102_444_800)),
            Err(SignedError::AccessDenied),
            "expiry is not memoized"
        );
        // The same signature over other bytes (a tampered path) is not a memo hit.
        let bad = find("canned-tampered-path");
        let req = url_request(bad["request_url"].as_str().unwrap(), "203.0.113.7", NOW);
        assert_eq!(verify(&keys, &req), Err(SignedError::AccessDenied));
        // Nor under another algorithm.
        let stripped = find("js-canned-rsa-sha256-flag-stripped");
        let full = find("js-canned-rsa-sha256");
        for (case, expect) in [(&full, Ok(())), (&stripped, Err(SignedError::AccessDenied))] {
            let req = url_request(case["request_url"].as_str().unwrap(), "203.0.113.7", NOW);
            assert_eq!(verify(&keys, &req), expect);
        }
    }

    #[test]
    fn stripping_keeps_other_params_in_order() {
        assert_eq!(
            strip_signing_params("w=200&Expires=1&h=100&Signature=x&Key-Pair-Id=K"),
            Some("w=200&h=100".into())
        );
        assert_eq!(
            strip_signing_params("Policy=a&Signature=b&Key-Pair-Id=c&Hash-Algorithm=SHA256"),
            None
        );
        assert!(has_signing_params("a=1&Signature=x"));
        assert!(!has_signing_params("a=1&Signatures=x"));
    }

    #[test]
    fn policy_parsing() {
        let p = parse_policy(br#"{"Statement":{"Condition":{"DateLessThan":{"AWS:EpochTime":"10"}}}}"#).unwrap();
        assert_eq!((p.resource, p.date_less_than), (None, 10));
        for bad in [
            &br#"not json"#[..],
            br#"{"Statement":[]}"#,
            br#"{"Statement":[{"Condition":{}}]}"#,
            br#"{"Statement":[{"Resource":1,"Condition":{"DateLessThan":{"AWS:EpochTime":1}}}]}"#,
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":1},"IpAddress":{"AWS:SourceIp":"x"}}}]}"#,
        ] {
            assert!(parse_policy(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn vector(name: &str) -> serde_json::Value {
        let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    }

    fn private_key(pem: &[u8]) -> PKey<Private> {
        PKey::private_key_from_pem(pem).unwrap()
    }

    fn rsa_key() -> PKey<Private> {
        private_key(include_bytes!("../../tests/vectors/keys/trusted-rsa.pem"))
    }

    fn ec_key() -> PKey<Private> {
        private_key(include_bytes!("../../tests/vectors/keys/trusted-ec.pem"))
    }

    /// A signature made with openssl directly (no check of the key/hash pairing).
    fn raw_signature(key: &PKey<Private>, sha256: bool, data: &[u8]) -> String {
        let md = if sha256 {
            MessageDigest::sha256()
        } else {
            MessageDigest::sha1()
        };
        url_b64encode(&Signer::new(md, key).unwrap().sign_oneshot_to_vec(data).unwrap())
    }

    fn verdict(url: &str) -> Result<(), SignedError> {
        verify(&trusted(), &url_request(url, "192.0.2.9", NOW))
    }

    fn cookie_verdict(url: &str, cookies: &str) -> Result<(), SignedError> {
        let mut req = url_request(url, "192.0.2.9", NOW);
        req.cookies = Some(cookies);
        verify(&trusted(), &req)
    }

    fn spec(url: &str) -> SignSpec<'_> {
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

    /// The docs and every AWS signer write `SHA256` (and `SHA1`) exactly; the parameter
    /// names and cookie names are case-sensitive, and so is this value.
    #[test]
    fn hash_algorithm_is_sha1_or_sha256_exactly() {
        let url = sign_url(
            &SignSpec {
                sha256: true,
                ..spec("https://cdn.example.test/a.txt")
            },
            &rsa_key(),
        )
        .unwrap();
        assert!(url.ends_with("&Hash-Algorithm=SHA256"));
        assert_eq!(verdict(&url), Ok(()));
        let base = url.strip_suffix("SHA256").unwrap();
        for other in ["sha256", "Sha256", "SHA-256", "SHA512", "SHA384", "MD5", "", "SHA256 "] {
            assert_eq!(
                verdict(&format!("{base}{other}")),
                Err(SignedError::AccessDenied),
                "{other:?}"
            );
        }
        // SHA1 named explicitly is the default made explicit.
        let sha1 = sign_url(&spec("https://cdn.example.test/a.txt"), &rsa_key()).unwrap();
        assert_eq!(verdict(&format!("{sha1}&Hash-Algorithm=SHA1")), Ok(()));
        assert_eq!(
            verdict(&format!("{sha1}&Hash-Algorithm=sha1")),
            Err(SignedError::AccessDenied)
        );
        // The same for the cookie.
        let custom = SignSpec {
            sha256: true,
            resource: Some("https://cdn.example.test/*"),
            ..spec("https://cdn.example.test/a.txt")
        };
        let mut cookies: Vec<String> = sign_cookies(&custom, &rsa_key())
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            cookie_verdict("https://cdn.example.test/b", &cookies.join("; ")),
            Ok(())
        );
        let last = cookies.len() - 1;
        assert_eq!(cookies[last], "CloudFront-Hash-Algorithm=SHA256");
        cookies[last] = "CloudFront-Hash-Algorithm=sha256".into();
        assert_eq!(
            cookie_verdict("https://cdn.example.test/b", &cookies.join("; ")),
            Err(SignedError::AccessDenied)
        );
    }

    /// CloudFront pairs ECDSA P-256 keys with SHA-256: a genuine ECDSA signature over
    /// SHA-1 is refused, with or without `Hash-Algorithm=SHA1`.
    #[test]
    fn ecdsa_needs_sha256() {
        let url = "https://cdn.example.test/ec.txt";
        let expires = NOW + 600;
        let policy = canned_policy(url, expires);
        let sha1 = raw_signature(&ec_key(), false, policy.as_bytes());
        let signed = format!("{url}?Expires={expires}&Signature={sha1}&Key-Pair-Id=KTRUSTEDEC00001");
        assert_eq!(verdict(&signed), Err(SignedError::AccessDenied));
        assert_eq!(
            verdict(&format!("{signed}&Hash-Algorithm=SHA1")),
            Err(SignedError::AccessDenied)
        );
        // The SHA-1 signature is genuine: openssl verifies it as ECDSA with SHA-1.
        let public = PKey::public_key_from_pem(include_bytes!("../../tests/vectors/keys/trusted-ec.pub.pem")).unwrap();
        let raw = url_b64decode(&sha1).unwrap();
        let mut v = Verifier::new(MessageDigest::sha1(), &public).unwrap();
        assert!(v.verify_oneshot(&raw, policy.as_bytes()).unwrap());
        // The control: SHA-256, said so.
        let sha256 = raw_signature(&ec_key(), true, policy.as_bytes());
        let signed = format!("{url}?Expires={expires}&Signature={sha256}&Key-Pair-Id=KTRUSTEDEC00001");
        assert_eq!(verdict(&format!("{signed}&Hash-Algorithm=SHA256")), Ok(()));
        assert_eq!(
            verdict(&signed),
            Err(SignedError::AccessDenied),
            "no Hash-Algorithm: SHA-1"
        );
    }

    /// "You can include only one statement": a genuinely signed policy with two is
    /// MalformedPolicy, even when each statement alone would allow the request.
    #[test]
    fn a_policy_has_exactly_one_statement() {
        let statement = format!(
            r#"{{"Resource":"https://cdn.example.test/*","Condition":{{"DateLessThan":{{"AWS:EpochTime":{}}}}}}}"#,
            NOW + 600
        );
        let signed = |policy: &str| {
            format!(
                "https://cdn.example.test/a.txt?Policy={}&Signature={}&Key-Pair-Id=KTRUSTEDRSA0001",
                url_b64encode(policy.as_bytes()),
                raw_signature(&rsa_key(), false, policy.as_bytes())
            )
        };
        assert_eq!(verdict(&signed(&format!(r#"{{"Statement":[{statement}]}}"#))), Ok(()));
        assert_eq!(verdict(&signed(&format!(r#"{{"Statement":{statement}}}"#))), Ok(()));
        for policy in [
            format!(r#"{{"Statement":[{statement},{statement}]}}"#),
            r#"{"Statement":[]}"#.to_string(),
        ] {
            assert_eq!(verdict(&signed(&policy)), Err(SignedError::MalformedPolicy), "{policy}");
        }
    }

    /// A signing parameter twice is refused, whichever copy is the genuine one, so that no
    /// reader of the request can take another copy than the one that was checked.
    #[test]
    fn repeated_signing_parameters_are_refused() {
        let valid = vector("canned-rsa-sha1-valid")["request_url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(verdict(&valid), Ok(()));
        let (base, query) = valid.split_once('?').unwrap();
        for pair in query.split('&') {
            let (name, _) = pair.split_once('=').unwrap();
            for extra in [pair.to_string(), format!("{name}=x"), format!("{name}=")] {
                // The copy after, and the copy before.
                for url in [format!("{valid}&{extra}"), format!("{base}?{extra}&{query}")] {
                    assert_eq!(verdict(&url), Err(SignedError::AccessDenied), "{url}");
                }
            }
        }
        for extra in [
            "Hash-Algorithm=SHA1&Hash-Algorithm=SHA1",
            "Hash-Algorithm=SHA256&Hash-Algorithm=SHA1",
        ] {
            assert_eq!(verdict(&format!("{valid}&{extra}")), Err(SignedError::AccessDenied));
        }
        // Two Policy parameters, the same policy twice.
        let custom = vector("custom-wildcard-match")["request_url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(verdict(&custom), Ok(()));
        let policy = custom.split('&').find(|p| p.contains("Policy=")).unwrap();
        let policy = &policy[policy.find("Policy=").unwrap()..];
        assert_eq!(verdict(&format!("{custom}&{policy}")), Err(SignedError::AccessDenied));
        // Cookies: the same rule.
        let case = vector("cookies-custom-valid");
        let cookies: Vec<String> = case["cookies"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        let url = case["request_url"].as_str().unwrap();
        let mut req = url_request(url, case["client_ip"].as_str().unwrap(), NOW);
        let joined = cookies.join("; ");
        req.cookies = Some(&joined);
        assert_eq!(verify(&trusted(), &req), Ok(()));
        for cookie in &cookies {
            let twice = format!("{joined}; {cookie}");
            let mut req = url_request(url, case["client_ip"].as_str().unwrap(), NOW);
            req.cookies = Some(&twice);
            assert_eq!(verify(&trusted(), &req), Err(SignedError::AccessDenied), "{cookie}");
        }
    }

    /// `Policy` and `Expires` together: neither is taken over the other.
    #[test]
    fn policy_and_expires_together_are_refused() {
        let custom = vector("custom-wildcard-match")["request_url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(verdict(&custom), Ok(()));
        for expires in ["4102444800", "1", ""] {
            assert_eq!(
                verdict(&format!("{custom}&Expires={expires}")),
                Err(SignedError::AccessDenied),
                "{expires}"
            );
        }
        let canned = vector("canned-rsa-sha1-valid")["request_url"]
            .as_str()
            .unwrap()
            .to_string();
        let policy = custom.split('&').find(|p| p.contains("Policy=")).unwrap();
        let policy = &policy[policy.find("Policy=").unwrap()..];
        assert_eq!(verdict(&format!("{canned}&{policy}")), Err(SignedError::AccessDenied));
        // Cookies: a canned cookie set with a custom one's policy added.
        let cookies = format!("CloudFront-Expires=4102444800; CloudFront-{policy}; CloudFront-Signature=x; CloudFront-Key-Pair-Id=KTRUSTEDRSA0001");
        assert_eq!(
            cookie_verdict("https://cdn.example.test/images/a.jpg", &cookies),
            Err(SignedError::AccessDenied)
        );
    }

    /// The scheme and the host are part of the signed URL: a URL signed for https does not
    /// open the resource over http (nor the reverse), nor on another host.
    #[test]
    fn scheme_and_host_are_signed() {
        for (signed_for, other_scheme) in [("https", "http"), ("http", "https")] {
            let url = format!("{signed_for}://cdn.example.test/private/a.pdf");
            let canned = sign_url(&spec(&url), &rsa_key()).unwrap();
            assert_eq!(verdict(&canned), Ok(()));
            let moved = canned.replacen(signed_for, other_scheme, 1);
            assert_eq!(verdict(&moved), Err(SignedError::AccessDenied), "{moved}");
            let resource = format!("{signed_for}://cdn.example.test/private/*");
            let custom = sign_url(
                &SignSpec {
                    resource: Some(&resource),
                    ..spec(&url)
                },
                &rsa_key(),
            )
            .unwrap();
            assert_eq!(verdict(&custom), Ok(()));
            let moved = custom.replacen(signed_for, other_scheme, 1);
            assert_eq!(verdict(&moved), Err(SignedError::AccessDenied), "{moved}");
        }
        let canned = sign_url(&spec("https://cdn.example.test/private/a.pdf"), &rsa_key()).unwrap();
        for host in ["other.example.test", "cdn.example.test:8443"] {
            let moved = canned.replacen("cdn.example.test", host, 1);
            assert_eq!(verdict(&moved), Err(SignedError::AccessDenied), "{moved}");
        }
        let custom = sign_url(
            &SignSpec {
                resource: Some("https://cdn.example.test/private/*"),
                ..spec("https://cdn.example.test/private/a.pdf")
            },
            &rsa_key(),
        )
        .unwrap();
        assert_eq!(
            verdict(&custom.replacen("cdn.example.test", "other.example.test", 1)),
            Err(SignedError::AccessDenied)
        );
        // Cookies for one host, sent to another.
        let cookies: Vec<String> = sign_cookies(
            &SignSpec {
                resource: Some("https://cdn.example.test/private/*"),
                ..spec("https://cdn.example.test/private/a.pdf")
            },
            &rsa_key(),
        )
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        let cookies = cookies.join("; ");
        assert_eq!(cookie_verdict("https://cdn.example.test/private/b", &cookies), Ok(()));
        assert_eq!(
            cookie_verdict("https://other.example.test/private/b", &cookies),
            Err(SignedError::AccessDenied)
        );
        assert_eq!(
            cookie_verdict("http://cdn.example.test/private/b", &cookies),
            Err(SignedError::AccessDenied)
        );
    }

    /// Only the encodings the signers make: canonical base64, decimal `Expires`, policy
    /// times and ranges without signs or blanks.
    #[test]
    fn values_are_read_as_the_signers_write_them() {
        let valid = vector("canned-rsa-sha1-valid")["request_url"]
            .as_str()
            .unwrap()
            .to_string();
        let signature = valid.split("Signature=").nth(1).unwrap().split('&').next().unwrap();
        // An `A` (zero bits) written as padding: openssl's decoder read the same bytes.
        let at = signature[..signature.len() - 4]
            .find('A')
            .expect("an A in the signature");
        let odd = format!("{}_{}", &signature[..at], &signature[at + 1..]);
        assert_eq!(
            verdict(&valid.replace(signature, &odd)),
            Err(SignedError::MalformedSignature)
        );
        // Percent-encoded, the same signature is still read.
        assert_eq!(
            verdict(&valid.replace(signature, &signature.replace('~', "%7E"))),
            Ok(())
        );
        for expires in ["+4102444800", "04102444800x", " 4102444800", "4102444800.0"] {
            assert_eq!(
                verdict(&valid.replace("Expires=4102444800", &format!("Expires={expires}"))),
                Err(SignedError::AccessDenied),
                "{expires}"
            );
        }
        let with = |cond: &str| {
            format!(r#"{{"Statement":[{{"Condition":{{"DateLessThan":{{"AWS:EpochTime":10}}{cond}}}}}]}}"#)
        };
        assert!(parse_policy(with("").as_bytes()).is_some());
        assert!(parse_policy(with(r#","IpAddress":{"AWS:SourceIp":"192.0.2.0/24"}"#).as_bytes()).is_some());
        for bad in [
            r#","IpAddress":{"AWS:SourceIp":" 192.0.2.0/24"}"#,
            r#","IpAddress":{"AWS:SourceIp":"192.0.2.0/+24"}"#,
            r#","IpAddress":{"AWS:SourceIp":"192.0.2.0/24 "}"#,
            r#","DateGreaterThan":{"AWS:EpochTime":"+5"}"#,
            r#","DateGreaterThan":{"AWS:EpochTime":" 5"}"#,
        ] {
            assert!(parse_policy(with(bad).as_bytes()).is_none(), "{bad}");
        }
        // A cookie value in double quotes loses one pair of them, no more.
        let case = vector("cookies-custom-valid");
        let url = case["request_url"].as_str().unwrap();
        let quoted = |q: &str| {
            case["cookies"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={q}{}{q}", v.as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(";\t")
        };
        let mut req = url_request(url, case["client_ip"].as_str().unwrap(), NOW);
        let once = quoted("\"");
        req.cookies = Some(&once);
        assert_eq!(verify(&trusted(), &req), Ok(()));
        let twice = quoted("\"\"");
        req.cookies = Some(&twice);
        assert_eq!(
            verify(&trusted(), &req),
            Err(SignedError::InvalidKey),
            "a quoted key id"
        );
    }

    #[test]
    fn weak_keys_are_refused() {
        let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
        let pem = PKey::from_rsa(rsa).unwrap().public_key_to_pem().unwrap();
        assert!(VerifyKey::from_pem(&pem).unwrap_err().contains("2048"));
        assert!(VerifyKey::from_pem(b"garbage").is_err());
    }
}
