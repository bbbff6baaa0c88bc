//! Distribution selection by Host (or SNI): exact alternate domain names first, then the
//! most specific `*.` wildcard, then the catch-all `*`. Built once per config generation.

use std::collections::HashMap;

use crate::config::model::Distribution;

/// Host name → distribution index.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, usize>,
    /// Keyed by the suffix after `*.` (`example.com` for `*.example.com`).
    wildcard: HashMap<String, usize>,
    catch_all: Option<usize>,
}

impl Router {
    pub fn new(distributions: &[Distribution]) -> Self {
        let mut r = Router::default();
        for (i, d) in distributions.iter().enumerate() {
            for domain in &d.domains {
                let domain = domain.to_ascii_lowercase();
                if domain == "*" {
                    r.catch_all.get_or_insert(i);
                } else if let Some(suffix) = domain.strip_prefix("*.") {
                    r.wildcard.entry(suffix.to_string()).or_insert(i);
                } else {
                    r.exact.entry(domain).or_insert(i);
                }
            }
        }
        r
    }

    /// The distribution for a Host header value (port, trailing dot and case ignored).
    pub fn route(&self, host: &str) -> Option<usize> {
        let name = normalize_host(host);
        if let Some(&i) = self.exact.get(name.as_ref()) {
            return Some(i);
        }
        // `*.example.com` covers exactly one more label, as in CloudFront and TLS.
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(&i) = self.wildcard.get(parent) {
                return Some(i);
            }
        }
        self.catch_all
    }
}

/// `Cdn.Example.com.:443` → `cdn.example.com`; `[::1]:8443` → `[::1]`.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = without_port.strip_suffix('.').unwrap_or(without_port);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(domains: &[&str]) -> Distribution {
        Distribution {
            name: "d".into(),
            domains: domains.iter().map(|s| s.to_string()).collect(),
            default_root_object: None,
            behaviors: vec![],
            error_responses: vec![],
            access_log: None,
        }
    }

    #[test]
    fn exact_then_wildcard_then_catch_all() {
        let r = Router::new(&[dist(&["*"]), dist(&["*.example.com"]), dist(&["cdn.example.com"])]);
        assert_eq!(r.route("cdn.example.com"), Some(2));
        assert_eq!(r.route("img.example.com"), Some(1));
        assert_eq!(r.route("a.b.example.com"), Some(0));
        assert_eq!(r.route("example.com"), Some(0));
        assert_eq!(r.route("other.test"), Some(0));
    }

    #[test]
    fn no_catch_all_means_none() {
        let r = Router::new(&[dist(&["cdn.example.com"])]);
        assert_eq!(r.route("evil.test"), None);
    }

    #[test]
    fn host_normalization() {
        let r = Router::new(&[dist(&["cdn.example.com"]), dist(&["[::1]", "127.0.0.1"])]);
        assert_eq!(r.route("CDN.Example.COM:8443"), Some(0));
        assert_eq!(r.route("cdn.example.com."), Some(0));
        assert_eq!(r.route("[::1]:8443"), Some(1));
        assert_eq!(r.route("127.0.0.1:80"), Some(1));
    }
}
