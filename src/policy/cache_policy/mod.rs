//! Cache decisions, as CloudFront makes them: how long a response may be served from the
//! cache (min/default/max TTL against Cache-Control and Expires, `ttl`), what enters the
//! cache key (scheme, host, path, and the query strings, cookies and headers the behavior
//! names) and what is forwarded to the origin (`key`), and which cached entries an
//! invalidation path covers (`invalidation`). Pure functions; the proxy calls them per
//! request. (Response variants, which also read the edge's choice of coding, are keyed in
//! `edge::variance`.)

use std::time::Duration;

use http::HeaderName;

pub mod invalidation;
pub mod key;
pub mod revalidation;
pub mod ttl;
pub mod vary;

pub use invalidation::InvalidationPath;
pub use key::{cache_key, headers_not_forwarded, CacheKeyParts, KeyInput};
pub use revalidation::update_from_304;
pub use ttl::{is_cacheable_error, ttl, Freshness, Ttl, TARGETED};
pub use vary::varies_by;

/// A behavior's cache policy, compiled from `behaviors[].cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// RFC 9111's freshness rules where CloudFront's differ (`freshness: rfc9111`).
    pub rfc9111: bool,
    pub min_ttl: Duration,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    pub query_strings: KeyList,
    pub cookies: KeyList,
    /// Lower-cased request header names in the key (and forwarded).
    pub headers: Vec<HeaderName>,
    /// Origin request policy: query strings, cookies and viewer headers forwarded to the
    /// origin without entering the key (`behaviors[].origin_request`).
    pub forward_query_strings: KeyList,
    pub forward_cookies: KeyList,
    /// Lower-cased names; default: CloudFront's CORS-S3Origin set (Origin and the two
    /// preflight headers).
    pub forward_headers: KeyList,
}

/// The viewer headers CloudFront's CORS-S3Origin policy forwards.
pub const CORS_S3ORIGIN_HEADERS: [&str; 3] = [
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
];

impl Default for CachePolicy {
    /// CloudFront's defaults: 0 / 1 day / 1 year, nothing but the URL in the key.
    fn default() -> Self {
        CachePolicy {
            rfc9111: false,
            min_ttl: Duration::ZERO,
            default_ttl: Duration::from_secs(86_400),
            max_ttl: Duration::from_secs(31_536_000),
            query_strings: KeyList::None,
            cookies: KeyList::None,
            headers: Vec::new(),
            forward_query_strings: KeyList::None,
            forward_cookies: KeyList::None,
            forward_headers: KeyList::Whitelist(CORS_S3ORIGIN_HEADERS.iter().map(|s| s.to_string()).collect()),
        }
    }
}

impl CachePolicy {
    /// `max_ttl: 0` is CloudFront's CachingDisabled: nothing is stored, everything the viewer
    /// sent is forwarded.
    pub fn caching_disabled(&self) -> bool {
        self.max_ttl.is_zero()
    }
}

/// Which query strings or cookies enter the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyList {
    None,
    All,
    Whitelist(Vec<String>),
    AllExcept(Vec<String>),
}

impl KeyList {
    fn admits(&self, name: &str) -> bool {
        match self {
            KeyList::None => false,
            KeyList::All => true,
            KeyList::Whitelist(names) => names.iter().any(|n| n == name),
            KeyList::AllExcept(names) => !names.iter().any(|n| n == name),
        }
    }
}

/// A header map of `(name, value)` pairs, for the tests.
#[cfg(test)]
pub(crate) fn test_headers(list: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (n, v) in list {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}
