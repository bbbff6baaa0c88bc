//! Bucket CORS rules as a bucket's configuration holds them (`PutBucketCors` or
//! `buckets.<name>.cors`), and their validation as S3's PutBucketCors does it. Evaluating a
//! request against them is the bucket store's (`origin::cors`).

use serde::{Deserialize, Serialize};

/// One CORS rule of a bucket (`PutBucketCors` or `buckets.<name>.cors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
}

/// S3's limit on rules per bucket.
pub const MAX_RULES: usize = 100;

/// Checks rules as S3's PutBucketCors does; the error is the message of a 400 MalformedXML /
/// InvalidRequest.
pub fn validate(rules: &[CorsRule]) -> Result<(), String> {
    if rules.is_empty() {
        return Err("a CORS configuration needs at least one rule".into());
    }
    if rules.len() > MAX_RULES {
        return Err(format!("a CORS configuration holds at most {MAX_RULES} rules"));
    }
    for (i, r) in rules.iter().enumerate() {
        if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
            return Err(format!("rule {i}: AllowedOrigin and AllowedMethod are required"));
        }
        for m in &r.allowed_methods {
            if !matches!(m.as_str(), "GET" | "PUT" | "POST" | "DELETE" | "HEAD") {
                return Err(format!(
                    "rule {i}: found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
        }
        for o in &r.allowed_origins {
            if o.matches('*').count() > 1 {
                return Err(format!(
                    "rule {i}: AllowedOrigin \"{o}\" can not have more than one wildcard."
                ));
            }
        }
        for h in &r.allowed_headers {
            if h.matches('*').count() > 1 {
                return Err(format!(
                    "rule {i}: AllowedHeader \"{h}\" can not have more than one wildcard."
                ));
            }
        }
    }
    Ok(())
}

/// A rule for the tests, exposing `ETag` and caching a preflight for 3000 s.
#[cfg(test)]
pub(crate) fn test_rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
    CorsRule {
        id: None,
        allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
        allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
        allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
        expose_headers: vec!["ETag".into()],
        max_age_seconds: Some(3000),
    }
}

#[cfg(test)]
mod tests {
    use super::test_rule as rule;
    use super::*;

    #[test]
    fn validation() {
        let rules = vec![rule(&["https://app.test"], &["GET"], &[])];
        assert!(validate(&rules).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&[rule(&["https://*.*.test"], &["GET"], &[])]).is_err());
        assert!(validate(&[rule(&["*"], &["PATCH"], &[])])
            .unwrap_err()
            .contains("PATCH"));
        assert!(validate(&vec![rule(&["*"], &["GET"], &[]); 101]).is_err());
    }
}
