//! Response headers policies, as CloudFront's: CORS answered at the edge (preflights
//! included), security headers, and custom headers added or removed. Pure functions over a
//! header map; the proxy applies them to every response of the behavior (hits included).

use http::{HeaderMap, HeaderName, HeaderValue};

/// `behaviors[].response_headers`, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadersPolicy {
    pub cors: Option<CorsPolicy>,
    /// Security headers, set in this order; replace the origin's when `override_origin`.
    pub security: Vec<(HeaderName, HeaderValue)>,
    pub security_override: bool,
    /// Custom headers, always set (replacing the origin's).
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Origins (`*` alone for any; one `*` inside a pattern, e.g. `https://*.example.com`).
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    /// Lower-case header names, or `*`.
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
    /// Replace CORS headers the origin sent (CloudFront's "origin override").
    pub origin_override: bool,
}

use crate::util::one_star_match as wildcard;

impl CorsPolicy {
    fn origin_allowed(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|o| o == "*" || wildcard(o, origin))
    }

    /// `Access-Control-Allow-Origin`: `*` for an any-origin policy without credentials,
    /// else the request's origin.
    fn allow_origin_value(&self, origin: &str) -> String {
        if !self.allow_credentials && self.allow_origins.iter().any(|o| o == "*") {
            "*".into()
        } else {
            origin.to_string()
        }
    }

    /// A preflight (`OPTIONS` with Origin and Access-Control-Request-Method): the answer's
    /// headers, or `None` when the policy does not allow it.
    pub fn preflight(
        &self,
        origin: &str,
        method: &str,
        request_headers: Option<&str>,
    ) -> Option<Vec<(&'static str, String)>> {
        if !self.origin_allowed(origin) {
            return None;
        }
        if !self
            .allow_methods
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(method))
        {
            return None;
        }
        let requested = crate::util::requested_headers(request_headers);
        let any_header = self.allow_headers.iter().any(|h| h == "*");
        if !any_header && !requested.iter().all(|h| self.allow_headers.contains(h)) {
            return None;
        }
        let mut out = vec![
            ("access-control-allow-origin", self.allow_origin_value(origin)),
            ("access-control-allow-methods", self.allow_methods.join(", ")),
        ];
        if !requested.is_empty() {
            out.push(("access-control-allow-headers", requested.join(", ")));
        }
        if let Some(age) = self.max_age {
            out.push(("access-control-max-age", age.to_string()));
        }
        if self.allow_credentials {
            out.push(("access-control-allow-credentials", "true".into()));
        }
        out.push(("vary", "Origin".into()));
        Some(out)
    }

    /// The CORS headers of an actual response to a request from `origin`.
    fn actual(&self, origin: &str) -> Vec<(&'static str, String)> {
        if !self.origin_allowed(origin) {
            return Vec::new();
        }
        let mut out = vec![("access-control-allow-origin", self.allow_origin_value(origin))];
        if !self.expose_headers.is_empty() {
            out.push(("access-control-expose-headers", self.expose_headers.join(", ")));
        }
        if self.allow_credentials {
            out.push(("access-control-allow-credentials", "true".into()));
        }
        out
    }
}

const CORS_HEADERS: [&str; 6] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
];

/// One change to a response header: set (replacing) or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(HeaderName, HeaderValue),
    Remove(HeaderName),
}

/// The changes the policy makes to a response with `headers`, in order; `origin` is the
/// request's Origin header.
pub fn changes(policy: &HeadersPolicy, origin: Option<&str>, headers: &HeaderMap) -> Vec<Change> {
    let mut out = Vec::new();
    if let Some(cors) = &policy.cors {
        let origin_sent_cors = headers.contains_key("access-control-allow-origin");
        if cors.origin_override || !origin_sent_cors {
            if cors.origin_override {
                for h in CORS_HEADERS {
                    if headers.contains_key(h) {
                        out.push(Change::Remove(HeaderName::from_static(h)));
                    }
                }
            }
            if let Some(o) = origin {
                for (name, value) in cors.actual(o) {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        out.push(Change::Set(HeaderName::from_static(name), v));
                    }
                }
            }
        }
    }
    for (name, value) in &policy.security {
        if policy.security_override || !headers.contains_key(name) {
            out.push(Change::Set(name.clone(), value.clone()));
        }
    }
    for name in &policy.remove {
        if headers.contains_key(name) {
            out.push(Change::Remove(name.clone()));
        }
    }
    for (name, value) in &policy.add {
        out.push(Change::Set(name.clone(), value.clone()));
    }
    out
}

/// Applies [`changes`] to a header map.
pub fn apply(policy: &HeadersPolicy, origin: Option<&str>, headers: &mut HeaderMap) {
    for c in changes(policy, origin, headers) {
        match c {
            Change::Set(n, v) => {
                headers.insert(n, v);
            }
            Change::Remove(n) => {
                headers.remove(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool, over: bool) -> CorsPolicy {
        CorsPolicy {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into(), "HEAD".into(), "PUT".into()],
            allow_headers: vec!["content-type".into()],
            expose_headers: vec!["ETag".into()],
            max_age: Some(600),
            allow_credentials: credentials,
            origin_override: over,
        }
    }

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn preflights() {
        let c = cors(&["https://*.example.com"], true, true);
        let ok = c
            .preflight("https://app.example.com", "PUT", Some("Content-Type"))
            .unwrap();
        assert_eq!(get(&ok, "access-control-allow-origin"), Some("https://app.example.com"));
        assert_eq!(get(&ok, "access-control-allow-headers"), Some("content-type"));
        assert_eq!(get(&ok, "access-control-allow-credentials"), Some("true"));
        assert_eq!(get(&ok, "access-control-max-age"), Some("600"));
        assert!(c.preflight("https://evil.test", "GET", None).is_none());
        assert!(c.preflight("https://app.example.com", "DELETE", None).is_none());
        assert!(c
            .preflight("https://app.example.com", "GET", Some("x-secret"))
            .is_none());
        let any = cors(&["*"], false, true);
        assert_eq!(
            get(
                &any.preflight("https://x.test", "GET", None).unwrap(),
                "access-control-allow-origin"
            ),
            Some("*")
        );
    }

    #[test]
    fn responses_get_cors_security_and_custom_headers() {
        let policy = HeadersPolicy {
            cors: Some(cors(&["https://app.test"], false, true)),
            security: vec![
                (
                    HeaderName::from_static("strict-transport-security"),
                    HeaderValue::from_static("max-age=31536000"),
                ),
                (
                    HeaderName::from_static("x-content-type-options"),
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            security_override: false,
            add: vec![(HeaderName::from_static("x-served-by"), HeaderValue::from_static("edge"))],
            remove: vec![HeaderName::from_static("x-powered-by")],
        };
        let mut h = HeaderMap::new();
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        h.insert("x-content-type-options", HeaderValue::from_static("origin-value"));
        h.insert("x-powered-by", HeaderValue::from_static("php"));
        apply(&policy, Some("https://app.test"), &mut h);
        assert_eq!(h["access-control-allow-origin"], "https://app.test", "origin override");
        assert_eq!(h["access-control-expose-headers"], "ETag");
        assert_eq!(h["strict-transport-security"], "max-age=31536000");
        assert_eq!(h["x-content-type-options"], "origin-value", "no security override");
        assert_eq!(h["x-served-by"], "edge");
        assert!(!h.contains_key("x-powered-by"));
        // A disallowed origin: the origin's CORS headers are removed, none added.
        let mut h = HeaderMap::new();
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        apply(&policy, Some("https://evil.test"), &mut h);
        assert!(!h.contains_key("access-control-allow-origin"));
    }
}
