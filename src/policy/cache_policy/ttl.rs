//! How long a response may be served from the cache: the behavior's min/default/max TTL
//! against Cache-Control and Expires, as CloudFront applies them, with the parts of RFC 9111
//! CloudFront's rules leave open: the response's age when it arrives (§4.2.3), the three
//! HTTP date formats (§5.3), and the fields RFC 9213 targets at CDNs.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use super::vary::vary_fields;
use super::CachePolicy;

/// The targeted cache-control fields (RFC 9213) this edge follows, most specific first:
/// `Homefront-Cache-Control` for this edge alone, then `CDN-Cache-Control` for any CDN. The
/// first one present with a valid value replaces `Cache-Control` and `Expires` for the
/// edge's cache; neither is sent on to viewers.
pub const TARGETED: [&str; 2] = ["homefront-cache-control", "cdn-cache-control"];

/// The largest age considered (RFC 9111 §1.2.2: 2^31 for a value too large).
const AGE_MAX: u64 = 1 << 31;

/// The parts of Cache-Control (and Expires/Date, and Age) that decide freshness.
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
    /// How old the response already is on arrival (RFC 9111 §4.2.3, the corrected initial
    /// age): the larger of its `Age` and how long ago its `Date` was.
    pub initial_age: u64,
    /// Freshness came from a targeted field (RFC 9213), not from Cache-Control.
    pub targeted: bool,
}

impl Freshness {
    /// Reads the targeted fields, or Cache-Control and Expires, and Date and Age from a
    /// response that arrived at `now`.
    pub fn parse(headers: &HeaderMap, now: SystemTime) -> Freshness {
        let date = first_value(headers, http::header::DATE).and_then(http_date);
        // The first targeted field with a valid, non-empty value (its lines joined).
        let targeted = TARGETED.iter().find_map(|name| {
            let values: Vec<&str> = headers.get_all(*name).iter().filter_map(|v| v.to_str().ok()).collect();
            let text = values.join(",");
            sf_dictionary(&text).is_some_and(|m| !m.is_empty()).then_some(text)
        });
        let mut f = Freshness::default();
        match targeted {
            Some(text) => {
                f.targeted = true;
                for (name, arg) in sf_dictionary(&text).unwrap_or_default() {
                    f.directive(name, arg);
                }
            }
            None => {
                for value in headers.get_all(http::header::CACHE_CONTROL) {
                    let Ok(text) = value.to_str() else { continue };
                    for (name, arg) in directives(text) {
                        f.directive(&name.to_ascii_lowercase(), arg);
                    }
                }
                if headers.contains_key(http::header::EXPIRES) {
                    // An invalid date (`0`, a format outside RFC 9110 §5.6.7) is in the past.
                    let expires = first_value(headers, http::header::EXPIRES).and_then(http_date);
                    let base = date.unwrap_or(now);
                    f.expires_in = Some(match expires {
                        Some(t) => t.duration_since(base).map(|d| d.as_secs()).unwrap_or(0),
                        None => 0,
                    });
                }
            }
        }
        f.initial_age = initial_age(headers, date, now);
        f
    }

    fn directive(&mut self, name: &str, arg: Option<&str>) {
        let secs = || arg.and_then(|a| a.trim_matches('"').parse::<u64>().ok());
        match name {
            "no-store" => self.no_store = true,
            // `no-cache="Set-Cookie"` only withholds those fields; treat it as a full
            // no-cache, the conservative reading CloudFront also takes.
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
            // A malformed delta makes the response stale (RFC 9111 §4.2.1).
            "s-maxage" => self.s_maxage = Some(secs().unwrap_or(0)),
            "max-age" => self.max_age = Some(secs().unwrap_or(0)),
            "stale-while-revalidate" => self.stale_while_revalidate = secs(),
            "stale-if-error" => self.stale_if_error = secs(),
            _ => {}
        }
    }
}

/// How old a response that arrived at `now` already was (RFC 9111 §4.2.3, the corrected
/// initial age): the larger of its `Age` and how long before `now` its `Date` was.
fn initial_age(headers: &HeaderMap, date: Option<SystemTime>, now: SystemTime) -> u64 {
    let apparent = date.and_then(|d| now.duration_since(d).ok()).map_or(0, |d| d.as_secs());
    age_value(headers).max(apparent).min(AGE_MAX)
}

/// The first field line of `name`, as text.
fn first_value(headers: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    headers.get_all(name).iter().next()?.to_str().ok()
}

/// The response's `Age` (RFC 9111 §5.1): the first member of the first field line, a
/// non-negative decimal integer (too large: 2^31); anything else is ignored (0).
fn age_value(headers: &HeaderMap) -> u64 {
    let Some(first) = first_value(headers, http::header::AGE) else {
        return 0;
    };
    let v = first.split(',').next().unwrap_or("").trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    v.parse::<u64>().unwrap_or(AGE_MAX).min(AGE_MAX)
}

/// An HTTP date in any of the three formats RFC 9110 §5.6.7 has recipients accept
/// (IMF-fixdate, RFC 850, asctime), with day and month names in any letter case.
pub fn http_date(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(t) = httpdate::parse_http_date(text) {
        return Some(t);
    }
    // Names as the formats spell them: `Mon`, `Monday`, `Jan`, `GMT`.
    let mut fixed = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, fixed: &mut String| {
        if word.eq_ignore_ascii_case("gmt") {
            fixed.push_str("GMT");
        } else {
            let mut chars = word.chars();
            if let Some(c) = chars.next() {
                fixed.push(c.to_ascii_uppercase());
                fixed.extend(chars.map(|c| c.to_ascii_lowercase()));
            }
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
        } else {
            flush(&mut word, &mut fixed);
            fixed.push(c);
        }
    }
    flush(&mut word, &mut fixed);
    httpdate::parse_http_date(&fixed).ok()
}

/// A Structured Field Dictionary (RFC 8941 §3.2), as targeted cache-control fields are
/// written: `max-age=60, must-revalidate`. Members with an integer, token or string value,
/// or none (true); parameters are ignored. `None`: not a valid dictionary (then the field
/// is not used, RFC 9213 §2.1).
fn sf_dictionary(text: &str) -> Option<Vec<(&str, Option<&str>)>> {
    let members = directives(text);
    // No empty member (`a,,b`, a trailing comma): one more member than top-level commas.
    let mut quoted = false;
    let commas = text
        .bytes()
        .filter(|&b| {
            if b == b'"' {
                quoted = !quoted;
            }
            b == b',' && !quoted
        })
        .count();
    if members.len() != commas + 1 {
        return None;
    }
    let mut out = Vec::new();
    for member in members {
        let (key, value) = member;
        // A bare member's parameters (`must-revalidate;x=1`) follow its key.
        let key = key.split(';').next().unwrap_or("").trim();
        let key_ok = key.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
        if !key_ok {
            return None;
        }
        // A member's parameters (`;a=b`) follow its value.
        let value = value.map(|v| v.split(';').next().unwrap_or("").trim());
        let value_ok = match value {
            None => true,
            Some(v) if v.starts_with('"') => v.len() >= 2 && v.ends_with('"'),
            Some(v) => {
                let integer = v.strip_prefix('-').unwrap_or(v);
                (!integer.is_empty() && integer.len() <= 15 && integer.bytes().all(|b| b.is_ascii_digit()))
                    || v.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'*')
            }
        };
        if !value_ok {
            return None;
        }
        out.push((key, value));
    }
    Some(out)
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
    /// How old the response already was when it arrived (`Freshness::initial_age`): a
    /// stored copy's age is this plus the time it has been stored.
    pub age: Duration,
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
/// `s-maxage`, else `max-age`, else `Expires`, less the response's age on arrival, clamped
/// to `[min_ttl, max_ttl]` (from a targeted field when there is one); nothing said
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
    if policy.rfc9111 {
        return rfc9111_ttl(policy, status, headers, &f, error_ttl, now);
    }
    let clamp = |secs: u64| Duration::from_secs(secs).clamp(policy.min_ttl, policy.max_ttl);
    let fresh = if f.no_store || f.no_cache || f.private {
        policy.min_ttl
    } else if let Some(s) = f.s_maxage.or(f.max_age).or(f.expires_in) {
        // What is left of the origin's freshness lifetime once the response's age is
        // counted (RFC 9111 §4.2.3).
        clamp(s.saturating_sub(f.initial_age))
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
        age: Duration::from_secs(f.initial_age),
    })
}

/// Statuses RFC 9110 §15.1 makes heuristically cacheable.
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// `freshness: rfc9111`: RFC 9111's rules where CloudFront's differ. `no-store` and
/// `private` are not stored (a shared cache). `no-cache`, or an explicit lifetime already
/// spent on a response with a validator, is stored and revalidated before each use (a zero
/// TTL that is still stored). Without explicit freshness, a heuristically cacheable status
/// with `Last-Modified` is fresh for a tenth of its age at `Date` (§4.2.2), and nothing else
/// is stored: no `default_ttl`, no error caching but what a custom error response sets
/// (`error_ttl` of an error listed there). `max_ttl` still caps every lifetime, `min_ttl`
/// applies to explicit ones.
fn rfc9111_ttl(
    policy: &CachePolicy,
    status: StatusCode,
    headers: &HeaderMap,
    f: &Freshness,
    error_ttl: Duration,
    now: SystemTime,
) -> Option<Ttl> {
    if f.no_store || f.private {
        return None;
    }
    let validator = headers.contains_key(http::header::ETAG) || headers.contains_key(http::header::LAST_MODIFIED);
    let revalidate_each_time = Ttl {
        fresh: Duration::ZERO,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        age: Duration::from_secs(f.initial_age),
    };
    if f.no_cache {
        return Some(revalidate_each_time);
    }
    let stale = |v: Option<u64>| match (f.must_revalidate, v) {
        (false, Some(s)) => Duration::from_secs(s),
        _ => Duration::ZERO,
    };
    let fresh = if let Some(lifetime) = f.s_maxage.or(f.max_age).or(f.expires_in) {
        let left = lifetime.saturating_sub(f.initial_age);
        if left == 0 {
            return validator.then_some(revalidate_each_time);
        }
        Duration::from_secs(left).clamp(policy.min_ttl, policy.max_ttl)
    } else if is_cacheable_error(status) && !error_ttl.is_zero() && !heuristically_cacheable(status) {
        // Only what the distribution's custom error responses set.
        error_ttl
    } else if heuristically_cacheable(status) {
        let last_modified = first_value(headers, http::header::LAST_MODIFIED).and_then(http_date)?;
        let date = first_value(headers, http::header::DATE)
            .and_then(http_date)
            .unwrap_or(now);
        let age = date.duration_since(last_modified).ok()?.as_secs();
        Duration::from_secs((age / 10).saturating_sub(f.initial_age)).min(policy.max_ttl)
    } else {
        return None;
    };
    (!fresh.is_zero()).then_some(Ttl {
        fresh,
        stale_while_revalidate: stale(f.stale_while_revalidate),
        stale_if_error: stale(f.stale_if_error),
        age: Duration::from_secs(f.initial_age),
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

    #[test]
    fn a_response_that_arrives_old_has_less_freshness_left() {
        let p = policy(0, 100, 100_000);
        let cc = ("cache-control", "max-age=100");
        assert_eq!(fresh(&p, 200, &[cc, ("age", "30")]), 70);
        assert_eq!(fresh(&p, 200, &[cc, ("age", "100")]), 0, "already stale: not stored");
        // RFC 9111 §5.1: the first member of the first line; anything else is ignored.
        assert_eq!(fresh(&p, 200, &[cc, ("age", "10"), ("age", "50")]), 90);
        assert_eq!(fresh(&p, 200, &[cc, ("age", "10, 50")]), 90);
        for ignored in ["abc", "-5", "+5", "1.5", "", "0x10"] {
            assert_eq!(fresh(&p, 200, &[cc, ("age", ignored)]), 100, "{ignored:?}");
        }
        assert_eq!(fresh(&p, 200, &[cc, ("age", "99999999999999999999999")]), 0, "huge");
        // A Date in the past counts as age (apparent age), the larger of the two wins.
        let date = httpdate::fmt_http_date(now() - Duration::from_secs(40));
        assert_eq!(fresh(&p, 200, &[cc, ("date", &date)]), 60);
        assert_eq!(fresh(&p, 200, &[cc, ("date", &date), ("age", "70")]), 30);
        // Expires against a Date that is behind the edge's clock: Expires - Date is the
        // lifetime, and the skew is counted as age.
        let exp = httpdate::fmt_http_date(now() + Duration::from_secs(260));
        assert_eq!(fresh(&p, 200, &[("expires", &exp), ("date", &date)]), 260);
        // The default TTL is the edge's own: the origin's age does not shorten it.
        assert_eq!(fresh(&p, 200, &[("age", "30")]), 100);
    }

    #[test]
    fn dates_in_every_format_and_letter_case() {
        // NOW + 300 s is Tue, 14 Nov 2023 22:18:20 GMT.
        let p = policy(0, 100, 100_000);
        for exp in [
            "Tue, 14 Nov 2023 22:18:20 GMT",
            "Tuesday, 14-Nov-23 22:18:20 GMT",
            "Tue Nov 14 22:18:20 2023",
            "tue, 14 nov 2023 22:18:20 gmt",
            "TUE, 14 NOV 2023 22:18:20 GMT",
        ] {
            assert_eq!(fresh(&p, 200, &[("expires", exp)]), 300, "{exp}");
        }
        for invalid in ["0", "-1", "tomorrow", "Tue, 32 Nov 2023 22:18:20 GMT"] {
            assert_eq!(fresh(&p, 200, &[("expires", invalid)]), 0, "{invalid}: already expired");
        }
    }

    #[test]
    fn targeted_fields_speak_to_the_edge_before_cache_control() {
        let p = policy(0, 100, 100_000);
        let cc = ("cache-control", "max-age=60");
        assert_eq!(fresh(&p, 200, &[cc, ("cdn-cache-control", "max-age=600")]), 600);
        assert_eq!(
            fresh(
                &p,
                200,
                &[
                    cc,
                    ("cdn-cache-control", "max-age=600"),
                    ("homefront-cache-control", "max-age=30")
                ]
            ),
            30,
            "the edge's own field first"
        );
        assert_eq!(
            fresh(
                &p,
                200,
                &[("cache-control", "no-store"), ("cdn-cache-control", "max-age=600")]
            ),
            600
        );
        assert_eq!(fresh(&p, 200, &[cc, ("cdn-cache-control", "no-store")]), 0);
        assert_eq!(
            fresh(&p, 200, &[cc, ("cdn-cache-control", "must-revalidate;x=1, max-age=90")]),
            90
        );
        // Not a valid Structured Field dictionary: ignored, Cache-Control decides.
        for invalid in ["Max-Age=600", "max-age=600,,", "max-age=6.5.5", "max-age=\"600"] {
            assert_eq!(fresh(&p, 200, &[cc, ("cdn-cache-control", invalid)]), 60, "{invalid}");
        }
        // A targeted field replaces Expires too; max_ttl still clamps it.
        let exp = httpdate::fmt_http_date(now() + Duration::from_secs(300));
        assert_eq!(
            fresh(&p, 200, &[("expires", &exp), ("cdn-cache-control", "public")]),
            100
        );
        assert_eq!(
            fresh(&policy(0, 100, 200), 200, &[("cdn-cache-control", "max-age=600")]),
            200
        );
    }

    #[test]
    fn rfc9111_freshness_where_cloudfront_differs() {
        let p = CachePolicy {
            rfc9111: true,
            ..policy(0, 100, 100_000)
        };
        let t = |status: u16, h: &[(&str, &str)]| {
            ttl(
                &p,
                StatusCode::from_u16(status).unwrap(),
                &headers(h),
                false,
                Duration::ZERO,
                now(),
            )
            .map(|t| t.fresh.as_secs())
        };
        // no-cache: stored, revalidated before each use.
        assert_eq!(t(200, &[("cache-control", "no-cache"), ("etag", "\"a\"")]), Some(0));
        assert_eq!(t(200, &[("cache-control", "max-age=0"), ("etag", "\"a\"")]), Some(0));
        assert_eq!(
            t(200, &[("cache-control", "max-age=0")]),
            None,
            "nothing to revalidate with"
        );
        assert_eq!(t(200, &[("cache-control", "no-store")]), None);
        assert_eq!(t(200, &[("cache-control", "private, max-age=60")]), None);
        assert_eq!(t(200, &[("cache-control", "max-age=60")]), Some(60));
        // Heuristic freshness: a tenth of the time since Last-Modified; without it, nothing.
        let lm = httpdate::fmt_http_date(now() - Duration::from_secs(10_000));
        assert_eq!(t(200, &[("last-modified", &lm)]), Some(1_000));
        assert_eq!(t(404, &[("last-modified", &lm)]), Some(1_000));
        assert_eq!(t(200, &[]), None, "no default_ttl");
        assert_eq!(t(302, &[("last-modified", &lm)]), None, "not heuristically cacheable");
        // Errors: no error caching without the origin's word or a custom error response.
        assert_eq!(t(503, &[]), None);
        assert_eq!(
            ttl(
                &p,
                StatusCode::SERVICE_UNAVAILABLE,
                &headers(&[]),
                false,
                Duration::from_secs(30),
                now()
            )
            .map(|t| t.fresh.as_secs()),
            Some(30)
        );
    }
}
