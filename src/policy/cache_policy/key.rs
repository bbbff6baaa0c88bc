//! The cache key of a request (distribution, scheme, host, path, and the query strings,
//! cookies and headers the behavior names) and what is forwarded to the origin.

use http::{HeaderMap, HeaderName};

use super::CachePolicy;
use crate::policy::signed::SIGNING_PARAMS;

/// Request headers the edge manages itself and always sends on (normalized, rewritten or
/// needed to carry the request), whatever the origin request policy says. This list is for
/// a cached GET or HEAD, which has no body: body headers (`Content-Type`, ...) are not on it,
/// so they reach the origin only when keyed or admitted by the policy.
const ALWAYS_FORWARDED: &[&str] = &[
    "host",
    "accept-encoding",
    "authorization",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
    "cookie",
    "x-forwarded-for",
    "via",
];

/// Viewer headers a cached request must not carry to the origin: those neither in the key,
/// nor admitted by the origin request policy, nor managed by the edge. (An origin that sees
/// a header the key ignores could answer differently per viewer, and the cache would replay
/// one viewer's answer to the others.)
pub fn headers_not_forwarded(policy: &CachePolicy, headers: &HeaderMap) -> Vec<HeaderName> {
    let mut drop: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        let kept = ALWAYS_FORWARDED.contains(&n)
            || policy.headers.iter().any(|h| h == name)
            || policy.forward_headers.admits(n);
        if !kept && !drop.contains(name) {
            drop.push(name.clone());
        }
    }
    drop
}

/// What the key is built from.
pub struct KeyInput<'a> {
    pub distribution: &'a str,
    pub scheme: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// All Cookie headers, joined with `; `.
    pub cookies: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The behavior checks signed URLs: their parameters and cookies never enter the key.
    pub signed: bool,
}

/// The cache key of one request and what the origin gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKeyParts {
    /// Unambiguous (length-framed) bytes hashed into the storage key.
    pub primary: String,
    /// Path plus the keyed query string: what invalidation paths match against.
    pub path_and_query: String,
    /// The query string forwarded to the origin (the keyed parameters and those the origin
    /// request policy adds, in viewer order).
    pub forward_query: Option<String>,
    /// The Cookie header forwarded to the origin (keyed cookies and those the origin
    /// request policy adds, sorted by name).
    pub forward_cookies: Option<String>,
}

/// Signed-cookie names: `CloudFront-` plus a signing parameter name.
fn is_signing_cookie(name: &str) -> bool {
    name.strip_prefix("CloudFront-")
        .is_some_and(|rest| SIGNING_PARAMS.contains(&rest))
}

/// Builds the cache key: distribution, scheme and lower-cased host always; the path as
/// sent; query parameters in viewer order, cookies sorted by name and the named headers,
/// each as the policy admits them.
pub fn cache_key(policy: &CachePolicy, input: &KeyInput<'_>) -> CacheKeyParts {
    let mut primary = String::with_capacity(64 + input.path.len());
    let mut frame = |tag: &str, s: &str| {
        primary.push_str(tag);
        primary.push_str(&s.len().to_string());
        primary.push(':');
        primary.push_str(s);
    };
    frame("d", input.distribution);
    frame("s", input.scheme);
    frame("h", &input.host.to_ascii_lowercase());
    frame("p", input.path);

    let mut query_kept: Vec<&str> = Vec::new();
    let mut query_sent: Vec<&str> = Vec::new();
    for pair in input.query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let name = pair.split('=').next().unwrap_or(pair);
        if input.signed && SIGNING_PARAMS.contains(&name) {
            continue;
        }
        let keyed = policy.query_strings.admits(name);
        if keyed {
            query_kept.push(pair);
        }
        if keyed || policy.forward_query_strings.admits(name) {
            query_sent.push(pair);
        }
    }
    let keyed_query = (!query_kept.is_empty()).then(|| query_kept.join("&"));
    frame("q", keyed_query.as_deref().unwrap_or(""));
    let forward_query = (!query_sent.is_empty()).then(|| query_sent.join("&"));

    let mut cookies_kept: Vec<(&str, &str)> = Vec::new();
    let mut cookies_sent: Vec<(&str, &str)> = Vec::new();
    for c in input.cookies.unwrap_or("").split(';') {
        let c = c.trim();
        if c.is_empty() {
            continue;
        }
        let (name, value) = c.split_once('=').unwrap_or((c, ""));
        if input.signed && is_signing_cookie(name) {
            continue;
        }
        let keyed = policy.cookies.admits(name);
        if keyed {
            cookies_kept.push((name, value));
        }
        if keyed || policy.forward_cookies.admits(name) {
            cookies_sent.push((name, value));
        }
    }
    let join = |mut list: Vec<(&str, &str)>| {
        list.sort();
        (!list.is_empty()).then(|| {
            list.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    };
    frame("c", join(cookies_kept).as_deref().unwrap_or(""));
    let forward_cookies = join(cookies_sent);

    for name in &policy.headers {
        let values: Vec<&str> = input
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        frame("n", name.as_str());
        frame("v", &values.join(","));
    }

    let path_and_query = match &keyed_query {
        Some(q) => format!("{}?{q}", input.path),
        None => input.path.to_string(),
    };
    CacheKeyParts {
        primary,
        path_and_query,
        forward_query,
        forward_cookies,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_headers as headers;
    use super::super::KeyList;
    use super::*;

    fn key(p: &CachePolicy, query: Option<&str>, cookies: Option<&str>, h: &[(&str, &str)]) -> CacheKeyParts {
        cache_key(
            p,
            &KeyInput {
                distribution: "d0",
                scheme: "https",
                host: "CDN.example.com",
                path: "/a.jpg",
                query,
                cookies,
                headers: &headers(h),
                signed: true,
            },
        )
    }

    #[test]
    fn key_policies() {
        let mut p = CachePolicy::default();
        let none = key(&p, Some("b=2&a=1"), Some("s=1"), &[]);
        assert_eq!(none.forward_query, None);
        assert_eq!(none.forward_cookies, None);
        assert_eq!(none.path_and_query, "/a.jpg");
        assert_eq!(none, key(&p, None, None, &[]), "nothing but the URL");

        p.query_strings = KeyList::All;
        let all = key(
            &p,
            Some("b=2&a=1&Signature=x&Expires=1&Hash-Algorithm=SHA256"),
            None,
            &[],
        );
        assert_eq!(
            all.forward_query.as_deref(),
            Some("b=2&a=1"),
            "signing params never keyed"
        );
        assert_eq!(all.path_and_query, "/a.jpg?b=2&a=1");
        assert_ne!(
            all.primary,
            key(&p, Some("a=1&b=2"), None, &[]).primary,
            "order matters"
        );

        p.query_strings = KeyList::Whitelist(vec!["a".into()]);
        assert_eq!(
            key(&p, Some("b=2&a=1"), None, &[]).forward_query.as_deref(),
            Some("a=1")
        );
        p.query_strings = KeyList::AllExcept(vec!["a".into()]);
        assert_eq!(
            key(&p, Some("b=2&a=1"), None, &[]).forward_query.as_deref(),
            Some("b=2")
        );

        p.cookies = KeyList::Whitelist(vec!["lang".into()]);
        let k = key(&p, None, Some("z=1; lang=fr; CloudFront-Policy=x"), &[]);
        assert_eq!(k.forward_cookies.as_deref(), Some("lang=fr"));
        p.cookies = KeyList::All;
        let k = key(
            &p,
            None,
            Some("z=1; lang=fr; CloudFront-Signature=x; CloudFront-Hash-Algorithm=SHA256"),
            &[],
        );
        assert_eq!(
            k.forward_cookies.as_deref(),
            Some("lang=fr; z=1"),
            "sorted, signing cookies out"
        );

        p.headers = vec![HeaderName::from_static("origin")];
        let a = key(&p, None, None, &[("origin", "https://a.example")]);
        let b = key(&p, None, None, &[("origin", "https://b.example")]);
        let n = key(&p, None, None, &[]);
        assert_ne!(a.primary, b.primary);
        assert_ne!(a.primary, n.primary);
        let a2 = key(&p, None, None, &[("origin", "https://a.example"), ("x-other", "1")]);
        assert_eq!(a.primary, a2.primary, "unnamed headers stay out");
    }

    #[test]
    fn origin_request_policy_forwards_without_keying() {
        let p = CachePolicy {
            query_strings: KeyList::Whitelist(vec!["v".into()]),
            forward_query_strings: KeyList::All,
            forward_cookies: KeyList::Whitelist(vec!["session".into()]),
            ..CachePolicy::default()
        };
        let a = key(&p, Some("v=1&page=2"), Some("session=abc; other=1"), &[]);
        let b = key(&p, Some("v=1&page=3"), Some("session=xyz"), &[]);
        assert_eq!(a.primary, b.primary, "forwarded-only values stay out of the key");
        assert_eq!(a.path_and_query, "/a.jpg?v=1");
        assert_eq!(a.forward_query.as_deref(), Some("v=1&page=2"));
        assert_eq!(a.forward_cookies.as_deref(), Some("session=abc"));
    }

    #[test]
    fn host_scheme_and_framing_are_in_the_key() {
        let p = CachePolicy::default();
        let h = HeaderMap::new();
        let mk = |dist: &str, scheme: &str, host: &str, path: &str| {
            cache_key(
                &p,
                &KeyInput {
                    distribution: dist,
                    scheme,
                    host,
                    path,
                    query: None,
                    cookies: None,
                    headers: &h,
                    signed: false,
                },
            )
            .primary
        };
        let base = mk("d0", "https", "a.example", "/x");
        assert_eq!(base, mk("d0", "https", "A.EXAMPLE", "/x"), "host is case-insensitive");
        assert_ne!(base, mk("d0", "http", "a.example", "/x"));
        assert_ne!(base, mk("d0", "https", "b.example", "/x"));
        assert_ne!(base, mk("d1", "https", "a.example", "/x"));
        assert_ne!(base, mk("d0", "https", "a.example", "/X"), "path is case-sensitive");
        assert_ne!(mk("d0", "https", "ap", "/x"), mk("d0", "https", "a", "p/x"), "framed");
    }

    #[test]
    fn only_keyed_admitted_and_managed_headers_reach_the_origin() {
        let mut h = HeaderMap::new();
        for k in [
            "host",
            "accept-language",
            "origin",
            "x-debug",
            "user-agent",
            "accept-encoding",
            "if-none-match",
            "content-type",
            "content-length",
        ] {
            h.append(HeaderName::from_static(k), http::HeaderValue::from_static("v"));
        }
        let names = |p: &CachePolicy| {
            let mut v: Vec<String> = headers_not_forwarded(p, &h).iter().map(|n| n.to_string()).collect();
            v.sort();
            v
        };
        let default = CachePolicy::default();
        assert_eq!(
            names(&default),
            [
                "accept-language",
                "content-length",
                "content-type",
                "user-agent",
                "x-debug"
            ]
        );
        let keyed = CachePolicy {
            headers: vec![HeaderName::from_static("accept-language")],
            forward_headers: KeyList::Whitelist(vec!["x-debug".into()]),
            ..CachePolicy::default()
        };
        assert_eq!(
            names(&keyed),
            ["content-length", "content-type", "origin", "user-agent"]
        );
        let all = CachePolicy {
            forward_headers: KeyList::All,
            ..CachePolicy::default()
        };
        assert!(names(&all).is_empty());
        let except = CachePolicy {
            forward_headers: KeyList::AllExcept(vec!["user-agent".into()]),
            ..CachePolicy::default()
        };
        assert_eq!(names(&except), ["user-agent"]);
    }
}
