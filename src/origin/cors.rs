//! Bucket CORS, evaluated as S3 does: the first rule whose origin and method match (and, for
//! a preflight, every requested header) decides; an origin or header pattern may hold one
//! `*`; only the requested headers are echoed; `Vary` names the CORS request headers whenever
//! an Origin was sent. Pure functions; `super::serve` applies them.

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

use crate::util::one_star_match as wildcard;

/// The headers S3 adds to an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsHeaders(pub Vec<(&'static str, String)>);

/// `Vary` for any request that carried an Origin.
pub const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

fn allow_origin(rule: &CorsRule, origin: &str) -> (String, bool) {
    // A rule for any origin answers `*` (and no credentials); otherwise the origin itself.
    if rule.allowed_origins.iter().any(|o| o == "*") {
        ("*".to_string(), false)
    } else {
        (origin.to_string(), true)
    }
}

/// An OPTIONS preflight: the answer's headers, or `None` for 403 AccessForbidden.
pub fn preflight(rules: &[CorsRule], origin: &str, method: &str, request_headers: Option<&str>) -> Option<CorsHeaders> {
    let requested = crate::util::requested_headers(request_headers);
    let rule = rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard(o, origin))
            && r.allowed_methods.iter().any(|m| m == method)
            && requested
                .iter()
                .all(|h| r.allowed_headers.iter().any(|a| wildcard(&a.to_ascii_lowercase(), h)))
    })?;
    let mut h = rule_headers(rule, origin, &requested);
    h.push(("Vary", VARY.into()));
    Some(CorsHeaders(h))
}

/// The headers a matching rule gives an answer; `requested` (a preflight's requested
/// headers, already matched) are echoed.
fn rule_headers(rule: &CorsRule, origin: &str, requested: &[String]) -> Vec<(&'static str, String)> {
    let (allow, credentials) = allow_origin(rule, origin);
    let mut h = vec![
        ("Access-Control-Allow-Origin", allow),
        ("Access-Control-Allow-Methods", rule.allowed_methods.join(", ")),
    ];
    if !requested.is_empty() {
        h.push(("Access-Control-Allow-Headers", requested.join(", ")));
    }
    if !rule.expose_headers.is_empty() {
        h.push(("Access-Control-Expose-Headers", rule.expose_headers.join(", ")));
    }
    if let Some(age) = rule.max_age_seconds {
        h.push(("Access-Control-Max-Age", age.to_string()));
    }
    if credentials {
        h.push(("Access-Control-Allow-Credentials", "true".into()));
    }
    h
}

/// An actual request with an Origin: the CORS headers to add, or only `Vary` when no rule
/// matches (the browser then blocks it, as with S3).
pub fn actual(rules: &[CorsRule], origin: &str, method: &str) -> CorsHeaders {
    let rule = rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard(o, origin)) && r.allowed_methods.iter().any(|m| m == method)
    });
    let mut h = rule.map(|r| rule_headers(r, origin, &[])).unwrap_or_default();
    h.push(("Vary", VARY.into()));
    CorsHeaders(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(3000),
        }
    }

    fn get<'a>(h: &'a CorsHeaders, name: &str) -> Option<&'a str> {
        h.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn preflight_first_matching_rule_and_echoed_headers() {
        let rules = vec![
            rule(
                &["https://admin.example.com"],
                &["PUT", "GET"],
                &["content-type", "x-amz-*"],
            ),
            rule(&["https://*.example.com"], &["GET"], &[]),
            rule(&["*"], &["GET", "HEAD"], &["*"]),
        ];
        let ok = preflight(
            &rules,
            "https://admin.example.com",
            "PUT",
            Some("Content-Type, X-Amz-Meta-Owner"),
        )
        .unwrap();
        assert_eq!(
            get(&ok, "Access-Control-Allow-Origin"),
            Some("https://admin.example.com")
        );
        assert_eq!(get(&ok, "Access-Control-Allow-Methods"), Some("PUT, GET"));
        assert_eq!(
            get(&ok, "Access-Control-Allow-Headers"),
            Some("content-type, x-amz-meta-owner"),
            "only the requested headers, not the patterns"
        );
        assert_eq!(get(&ok, "Access-Control-Max-Age"), Some("3000"));
        assert_eq!(get(&ok, "Access-Control-Allow-Credentials"), Some("true"));
        assert_eq!(get(&ok, "Vary"), Some(VARY));
        // A header the first rule does not allow: no other rule allows PUT either.
        assert!(preflight(&rules, "https://admin.example.com", "PUT", Some("x-other")).is_none());
        // The wildcard origin rule answers "*" without credentials.
        let any = preflight(&rules, "https://evil.test", "GET", Some("x-anything")).unwrap();
        assert_eq!(get(&any, "Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(get(&any, "Access-Control-Allow-Credentials"), None);
        assert!(preflight(&rules, "https://evil.test", "DELETE", None).is_none());
        // One * in origins: subdomains of example.com, not example.com.evil.
        assert!(preflight(&rules[1..2], "https://cdn.example.com", "GET", None).is_some());
        assert!(preflight(&rules[1..2], "https://example.com.evil", "GET", None).is_none());
    }

    #[test]
    fn actual_requests_and_validation() {
        let rules = vec![rule(&["https://app.test"], &["GET"], &[])];
        let h = actual(&rules, "https://app.test", "GET");
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some("https://app.test"));
        assert_eq!(get(&h, "Access-Control-Expose-Headers"), Some("ETag"));
        let no = actual(&rules, "https://other.test", "GET");
        assert_eq!(no.0, vec![("Vary", VARY.to_string())], "no match: Vary only");
        assert!(validate(&rules).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&[rule(&["https://*.*.test"], &["GET"], &[])]).is_err());
        assert!(validate(&[rule(&["*"], &["PATCH"], &[])])
            .unwrap_err()
            .contains("PATCH"));
        assert!(validate(&vec![rule(&["*"], &["GET"], &[]); 101]).is_err());
    }
}
