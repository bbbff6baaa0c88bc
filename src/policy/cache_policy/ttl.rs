//! How long a response may be served from the cache: the behavior's min/default/max TTL
//! against Cache-Control and Expires, as CloudFront applies them.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use super::vary::vary_fields;
use super::CachePolicy;

/// The parts of Cache-Control (and Expires/Date) that decide freshness.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Freshness {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub s_maxage: Option<u64>,
    pub max_age: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// Expires minus Date (or minus now without Date); `Some(0)` for an invalid or past date.
    pub expires_in: Option<u64>,
}

impl Freshness {
    /// Reads Cache-Control, Expires and Date from a response.
    pub fn parse(headers: &HeaderMap, now: SystemTime) -> Freshness {
        let mut f = Freshness::default();
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(text) = value.to_str() else { continue };
            for (name, arg) in directives(text) {
                let secs = || arg.and_then(|a| a.trim_matches('"').parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => f.no_store = true,
                    // `no-cache="Set-Cookie"` only withholds those fields; treat it as a full
                    // no-cache, the conservative reading CloudFront also takes.
                    "no-cache" => f.no_cache = true,
                    "private" => f.private = true,
                    "public" => f.public = true,
                    "must-revalidate" | "proxy-revalidate" => f.must_revalidate = true,
                    // A malformed delta makes the response stale (RFC 9111 §4.2.1).
                    "s-maxage" => f.s_maxage = Some(secs().unwrap_or(0)),
                    "max-age" => f.max_age = Some(secs().unwrap_or(0)),
                    "stale-while-revalidate" => f.stale_while_revalidate = secs(),
                    "stale-if-error" => f.stale_if_error = secs(),
                    _ => {}
                }
            }
        }
        let date = |name| {
            let mut all = headers.get_all(name).iter();
            let first = all.next()?;
            let parsed = first
                .to_str()
                .ok()
                .and_then(|s| httpdate::parse_http_date(s.trim()).ok());
            Some(parsed)
        };
        if let Some(expires) = date(http::header::EXPIRES) {
            let base = date(http::header::DATE).flatten().unwrap_or(now);
            f.expires_in = Some(match expires {
                Some(t) => t.duration_since(base).map(|d| d.as_secs()).unwrap_or(0),
                None => 0,
            });
        }
        f
    }
}

/// Splits a Cache-Control value into (directive, argument) pairs, honoring quoted strings.
fn directives(text: &str) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let bytes = text.as_bytes();
    for i in 0..=bytes.len() {
        let end = i == bytes.len();
        if !end && bytes[i] == b'"' {
            quoted = !quoted;
        }
        if end || (bytes[i] == b',' && !quoted) {
            let part = text[start..i].trim();
            if !part.is_empty() {
                match part.split_once('=') {
                    Some((n, a)) => out.push((n.trim(), Some(a.trim()))),
                    None => out.push((part, None)),
                }
            }
            start = i + 1;
        }
    }
    out
}

/// How long a response may be served without asking the origin, and for how long after
/// that it may still be served stale. `None`: do not store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    pub fresh: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

/// Status codes CloudFront caches as errors (with the error caching minimum TTL).
pub fn is_cacheable_error(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        400 | 403 | 404 | 405 | 414 | 416 | 500 | 501 | 502 | 503 | 504
    )
}

/// The TTL of a response to a GET or HEAD.
///
/// CloudFront's rules: `no-store`, `no-cache` or `private` → `min_ttl` only; otherwise
/// `s-maxage`, else `max-age`, else `Expires`, clamped to `[min_ttl, max_ttl]`; nothing said
/// → `default_ttl`. Errors CloudFront caches get `error_ttl` unless the origin said how long.
/// A request that carried `Authorization` is stored only when the response allows a shared
/// cache to (`public`, `s-maxage` or `must-revalidate`; RFC 9111 §3.5). `Vary: *` is never
/// stored. A zero TTL means "do not store".
pub fn ttl(
    policy: &CachePolicy,
    status: StatusCode,
    headers: &HeaderMap,
    authorization: bool,
    error_ttl: Duration,
    now: SystemTime,
) -> Option<Ttl> {
    if policy.caching_disabled() {
        return None;
    }
    let f = Freshness::parse(headers, now);
    if authorization && !(f.public || f.s_maxage.is_some() || f.must_revalidate) {
        return None;
    }
    if vary_fields(headers).any(|n| n == "*") {
        return None;
    }
    let clamp = |secs: u64| Duration::from_secs(secs).clamp(policy.min_ttl, policy.max_ttl);
    let fresh = if f.no_store || f.no_cache || f.private {
        policy.min_ttl
    } else if let Some(s) = f.s_maxage.or(f.max_age).or(f.expires_in) {
        clamp(s)
    } else if is_cacheable_error(status) {
        error_ttl
    } else if matches!(status.as_u16(), 200 | 203 | 204 | 300 | 301 | 308 | 410) {
        policy.default_ttl
    } else {
        // 302, 307, 206 and the rest: only with explicit freshness.
        Duration::ZERO
    };
    if fresh.is_zero() {
        return None;
    }
    // must-revalidate forbids serving stale (RFC 9111 §5.2.2.2).
    let stale = |v: Option<u64>| match (f.must_revalidate, v) {
        (false, Some(s)) => Duration::from_secs(s),
        _ => Duration::ZERO,
    };
    Some(Ttl {
        fresh,
        stale_while_revalidate: stale(f.stale_while_revalidate),
        stale_if_error: stale(f.stale_if_error),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_headers as headers;
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn policy(min: u64, default: u64, max: u64) -> CachePolicy {
        CachePolicy {
            min_ttl: Duration::from_secs(min),
            default_ttl: Duration::from_secs(default),
            max_ttl: Duration::from_secs(max),
            ..CachePolicy::default()
        }
    }

    fn fresh(p: &CachePolicy, status: u16, h: &[(&str, &str)]) -> u64 {
        ttl(
            p,
            StatusCode::from_u16(status).unwrap(),
            &headers(h),
            false,
            Duration::from_secs(10),
            now(),
        )
        .map(|t| t.fresh.as_secs())
        .unwrap_or(0)
    }

    #[test]
    fn ttl_follows_cloudfront_rules() {
        let p = policy(5, 100, 1000);
        assert_eq!(fresh(&p, 200, &[]), 100, "no header: default");
        assert_eq!(fresh(&p, 200, &[("cache-control", "max-age=50")]), 50);
        assert_eq!(
            fresh(&p, 200, &[("cache-control", "max-age=1")]),
            5,
            "clamped up to min"
        );
        assert_eq!(
            fresh(&p, 200, &[("cache-control", "max-age=99999")]),
            1000,
            "down to max"
        );
        assert_eq!(
            fresh(&p, 200, &[("cache-control", "max-age=50, s-maxage=70")]),
            70,
            "s-maxage wins"
        );
        for cc in [
            "no-store",
            "no-cache",
            "private",
            "private, max-age=600",
            "no-cache=\"set-cookie\"",
        ] {
            assert_eq!(fresh(&p, 200, &[("cache-control", cc)]), 5, "{cc}: min_ttl only");
        }
        assert_eq!(fresh(&policy(0, 100, 1000), 200, &[("cache-control", "no-store")]), 0);
        let date = httpdate::fmt_http_date(now());
        let exp = httpdate::fmt_http_date(now() + Duration::from_secs(300));
        assert_eq!(fresh(&p, 200, &[("expires", &exp), ("date", &date)]), 300);
        assert_eq!(fresh(&p, 200, &[("expires", "0")]), 5, "invalid Expires is stale");
        assert_eq!(
            fresh(&p, 200, &[("expires", &exp), ("cache-control", "max-age=60")]),
            60,
            "max-age beats Expires"
        );
        assert_eq!(
            fresh(&p, 200, &[("cache-control", "max-age=abc")]),
            5,
            "malformed is stale"
        );
    }

    #[test]
    fn statuses_errors_vary_and_authorization() {
        let p = policy(0, 100, 1000);
        assert_eq!(fresh(&p, 404, &[]), 10, "error caching min TTL");
        assert_eq!(fresh(&p, 503, &[("cache-control", "max-age=30")]), 30);
        assert_eq!(fresh(&p, 302, &[]), 0, "302 needs explicit freshness");
        assert_eq!(fresh(&p, 302, &[("cache-control", "max-age=30")]), 30);
        assert_eq!(
            fresh(&p, 200, &[("vary", "Accept-Encoding, *")]),
            0,
            "Vary: * is never stored"
        );
        let auth = |h: &[(&str, &str)]| {
            ttl(&p, StatusCode::OK, &headers(h), true, Duration::ZERO, now()).map(|t| t.fresh.as_secs())
        };
        assert_eq!(auth(&[]), None);
        assert_eq!(auth(&[("cache-control", "max-age=60")]), None);
        assert_eq!(auth(&[("cache-control", "public, max-age=60")]), Some(60));
        assert_eq!(auth(&[("cache-control", "s-maxage=60")]), Some(60));
        assert_eq!(
            fresh(&policy(0, 0, 0), 200, &[("cache-control", "max-age=60")]),
            0,
            "disabled"
        );
        let t = ttl(
            &p,
            StatusCode::OK,
            &headers(&[(
                "cache-control",
                "max-age=60, stale-while-revalidate=30, stale-if-error=600",
            )]),
            false,
            Duration::ZERO,
            now(),
        )
        .unwrap();
        assert_eq!(t.stale_while_revalidate.as_secs(), 30);
        assert_eq!(t.stale_if_error.as_secs(), 600);
    }
}
