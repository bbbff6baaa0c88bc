//! Verifying a viewer request's signed URL or signed cookies (per request, pure: the caller
//! passes the time and the client address).

use std::net::IpAddr;

use super::policy_doc::{canned_policy, decimal, parse_policy};
use super::{SignedError, TrustedKeys, SIGNING_PARAMS};
use crate::policy::percent::percent_decode;

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

#[cfg(test)]
mod tests {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Verifier;

    use super::super::test_support::*;
    use super::super::{canned_policy, parse_policy, sign_cookies, sign_url, SignSpec};
    use super::*;

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
    fn cookies_are_used_only_without_url_credentials() {
        let key = PKey::private_key_from_pem(include_bytes!("../../../tests/vectors/keys/trusted-ec.pem")).unwrap();
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
        let public =
            PKey::public_key_from_pem(include_bytes!("../../../tests/vectors/keys/trusted-ec.pub.pem")).unwrap();
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
}
