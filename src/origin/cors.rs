//! Bucket CORS, evaluated as S3 does: the first rule whose origin and method match (and, for
//! a preflight, every requested header) decides; an origin or header pattern may hold one
//! `*`; only the requested headers are echoed; `Vary` names the CORS request headers whenever
//! an Origin was sent. Pure functions; `super::serve` applies them.

use crate::policy::cors::CorsRule;
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
    use crate::policy::cors::test_rule as rule;

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
    fn actual_requests() {
        let rules = vec![rule(&["https://app.test"], &["GET"], &[])];
        let h = actual(&rules, "https://app.test", "GET");
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some("https://app.test"));
        assert_eq!(get(&h, "Access-Control-Expose-Headers"), Some("ETag"));
        let no = actual(&rules, "https://other.test", "GET");
        assert_eq!(no.0, vec![("Vary", VARY.to_string())], "no match: Vary only");
    }
}
