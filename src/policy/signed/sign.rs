//! Signing URLs and cookies (for `homefront sign-url`), in the exact wire format of
//! botocore's `CloudFrontSigner` and `@aws-sdk/cloudfront-signer`.

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;

use super::policy_doc::canned_policy;
use super::verify::url_b64encode;

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
    use super::super::test_support::*;
    use super::super::{verify, SignedError};
    use super::*;

    #[test]
    fn signing_round_trips_and_matches_the_canned_format() {
        let key = PKey::private_key_from_pem(include_bytes!("../../../tests/vectors/keys/trusted-rsa.pem")).unwrap();
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
}
