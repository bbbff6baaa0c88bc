//! Cache decisions, as CloudFront makes them: how long a response may be served from the
//! cache (min/default/max TTL against Cache-Control and Expires), what enters the cache key
//! (scheme, host, path, and the query strings, cookies and headers the behavior names), and
//! what is forwarded to the origin. Pure functions; the proxy calls them per request.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, StatusCode};

/// A behavior's cache policy, compiled from `behaviors[].cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
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

impl Default for CachePolicy {
    /// CloudFront's defaults: 0 / 1 day / 1 year, nothing but the URL in the key.
    fn default() -> Self {
        CachePolicy {
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

/// Whether a response's `Vary` names `name` (lowercase) or `*`; on every response, so
/// without building the list.
pub fn varies_by(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(http::header::VARY)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .any(|t| t == b"*" || t.eq_ignore_ascii_case(name.as_bytes()))
}

/// The field names the response's Vary headers list, lower-cased (borrowed when they are
/// already), in order, repeats included.
fn vary_fields(headers: &HeaderMap) -> impl Iterator<Item = Cow<'_, str>> {
    headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| match n.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(n.to_ascii_lowercase()),
            false => Cow::Borrowed(n),
        })
}

/// What a request's variant is keyed by: the request's values of the fields the stored
/// response's `Vary` names, plus `Origin` always, so a response made for a plain request
/// (no CORS headers) is never replayed to a CORS request, nor one made for one site's
/// Origin to another's. Fields the request does not carry are left out, so variants whose
/// responses name different fields (S3 adds `Vary: Origin, Access-Control-Request-*` only
/// when an Origin was sent) still agree on the key of a request; a fixed marker makes the
/// key never empty, so every entry is a variant and a plain request never takes another
/// variant's place. Accept-Encoding is normalized.
///
/// Hashed as pingora's `VarianceBuilder` hashes a list of names and values (each name and
/// value, in name order, followed by a zero byte, into a 128-bit BLAKE2b), without building
/// the list: every cache hit computes it, and the list's strings were a sixth of a hit's
/// instructions (7.7k of 48k under callgrind). The tests keep the list as the reference.
pub fn variance_key(stored: &HeaderMap, req: &HeaderMap) -> [u8; 16] {
    let mut input = Vec::with_capacity(VARIANCE_INPUT);
    variance_input(stored, req, &mut input);
    variance_hash(&input)
}

/// Room for a usual [`variance_input`]: the marker, `origin`, `accept-encoding`.
pub const VARIANCE_INPUT: usize = 128;

/// The bytes [`variance_key`] hashes, into `out`. The same bytes give the same key, which
/// the hit path uses to skip the hash for a request like one it already matched.
pub fn variance_input(stored: &HeaderMap, req: &HeaderMap, out: &mut Vec<u8>) {
    const MARKER: &str = "homefront-variance";
    let mut names: Vec<Cow<'_, str>> = Vec::with_capacity(4);
    names.extend(vary_fields(stored));
    // The marker's value is the request's only when the response's Vary names it too.
    let marker_varies = names.iter().any(|n| n == MARKER);
    for always in ["origin", MARKER] {
        if !names.iter().any(|n| n == always) {
            names.push(Cow::Borrowed(always));
        }
    }
    names.sort_unstable();
    names.dedup();
    for name in &names {
        let start = out.len();
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        // The request's values, joined with commas.
        let value_at = out.len();
        for (i, v) in req
            .get_all(name.as_ref())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(v.as_bytes());
        }
        if name == "accept-encoding" {
            // What the origin saw, and the coding the edge gives this viewer (a Range
            // request gets identity): one variant per pair.
            let coding = super::compress::for_request(req).map_or("identity", |c| c.token());
            let normalized = std::str::from_utf8(&out[value_at..]).map_or("identity", normalize_accept_encoding);
            out.truncate(value_at);
            out.extend_from_slice(normalized.as_bytes());
            out.push(b'|');
            out.extend_from_slice(coding.as_bytes());
        } else if name == MARKER && (!marker_varies || out.len() == value_at) {
            out.truncate(value_at);
            out.push(b'1');
        } else if out.len() == value_at {
            // Fields the request does not carry are left out.
            out.truncate(start);
            continue;
        }
        out.push(0);
    }
}

/// The key of a [`variance_input`]: pingora's variance hash.
pub fn variance_hash(input: &[u8]) -> [u8; 16] {
    use blake2::Digest;
    blake2::Blake2b::<blake2::digest::consts::U16>::digest(input).into()
}

/// Accept-Encoding as CloudFront normalizes it: `br,gzip`, `gzip`, `br` or `identity`,
/// so that the key (via Vary) and the origin see one of four values instead of every
/// browser's spelling.
pub fn normalize_accept_encoding(value: &str) -> &'static str {
    let mut gzip = false;
    let mut br = false;
    for part in value.split(',') {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        let refused = it.any(|p| {
            let p = p.trim();
            let p: Cow<'_, str> = match p.contains(' ') {
                true => p.replace(' ', "").into(),
                false => p.into(),
            };
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        if refused {
            continue;
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = true;
        } else if coding.eq_ignore_ascii_case("br") {
            br = true;
        }
    }
    match (br, gzip) {
        (true, true) => "br,gzip",
        (false, true) => "gzip",
        (true, false) => "br",
        (false, false) => "identity",
    }
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

use super::signed::SIGNING_PARAMS;

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

/// An invalidation path: `/images/*` (a prefix; `*` only at the end) or an exact
/// `/a.jpg` (that object without a query string; `/a.jpg*` covers its query variants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidationPath {
    Exact(String),
    Prefix(String),
}

impl InvalidationPath {
    /// Parses an invalidation path and puts it in the canonical form cached entries are
    /// labelled with (`edge::canonical`), so `/%7Euser/*` covers what `/~user/a` stored.
    pub fn parse(text: &str) -> Result<InvalidationPath, String> {
        if !text.starts_with('/') {
            return Err(format!("invalidation path '{text}' must start with '/'"));
        }
        let (body, prefix) = match text.find('*') {
            None => (text, false),
            Some(i) if i == text.len() - 1 => (&text[..i], true),
            Some(_) => return Err(format!("invalidation path '{text}': '*' is allowed only at the end")),
        };
        let (path, query) = match body.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (body, None),
        };
        let refused = |e: super::errors::EdgeError| format!("invalidation path '{text}': {}", e.message);
        let mut canonical = if prefix && query.is_none() {
            // A prefix may end inside a segment (`/.*`, `/a/..*`): canonical as the start
            // of a longer path.
            let mut longer = path.as_bytes().to_vec();
            longer.push(b'x');
            let mut c = super::canonical::canonical_path(&longer).map_err(refused)?;
            c.pop();
            c
        } else {
            super::canonical::canonical_path(path.as_bytes()).map_err(refused)?
        };
        if let Some(q) = query {
            canonical.push('?');
            canonical.push_str(&super::canonical::canonical_query(q.as_bytes()));
        }
        Ok(if prefix {
            InvalidationPath::Prefix(canonical)
        } else {
            InvalidationPath::Exact(canonical)
        })
    }

    /// Whether a cached entry's path (with its keyed query string) is covered.
    pub fn covers(&self, path_and_query: &str) -> bool {
        match self {
            InvalidationPath::Exact(p) => path_and_query == p,
            InvalidationPath::Prefix(p) => path_and_query.starts_with(p.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn varies_by_finds_a_name_in_any_vary_field_or_a_star() {
        let mut h = HeaderMap::new();
        assert!(!super::varies_by(&h, "origin"));
        h.append("vary", "Accept-Encoding , X-Thing".parse().unwrap());
        assert!(super::varies_by(&h, "accept-encoding"));
        assert!(!super::varies_by(&h, "origin"));
        h.append("vary", "ORIGIN".parse().unwrap());
        assert!(super::varies_by(&h, "origin"));
        let mut star = HeaderMap::new();
        star.insert("vary", "*".parse().unwrap());
        assert!(super::varies_by(&star, "origin"));
    }

    use super::*;
    use http::HeaderValue;

    const NOW: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in list {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
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
    fn variants_are_keyed_by_request_values_and_origin() {
        let plain_resp = headers(&[]);
        let cors_resp = headers(&[(
            "vary",
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        )]);
        let admin = headers(&[("origin", "https://admin.example")]);
        let none = headers(&[]);
        // Either stored response gives a request the same key.
        assert_eq!(
            variance_inputs(&plain_resp, &admin),
            variance_inputs(&cors_resp, &admin)
        );
        assert_eq!(variance_inputs(&plain_resp, &none), variance_inputs(&cors_resp, &none));
        assert_ne!(
            variance_inputs(&plain_resp, &admin),
            variance_inputs(&plain_resp, &none)
        );
        assert_eq!(variance_inputs(&plain_resp, &none).len(), 1, "never empty");
        let ae = headers(&[("vary", "accept-encoding")]);
        assert_eq!(
            variance_inputs(&ae, &headers(&[("accept-encoding", "gzip, deflate, br")])),
            variance_inputs(&ae, &headers(&[("accept-encoding", "br;q=1, gzip")])),
        );
    }

    /// Lower-cased field names listed in the response's Vary headers, sorted, once each.
    fn vary_names(headers: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = vary_fields(headers).map(Cow::into_owned).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The reference for [`variance_key`]: the names and values it hashes, as the list the
    /// edge built before it (the semantics tests below are stated on it).
    fn variance_inputs(stored: &HeaderMap, req: &HeaderMap) -> Vec<(String, String)> {
        let mut names = vary_names(stored);
        if !names.iter().any(|n| n == "origin") {
            names.push("origin".into());
        }
        let mut out = vec![("homefront-variance".to_string(), "1".to_string())];
        for name in names {
            let values: Vec<&str> = req
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let mut value = values.join(",");
            if name == "accept-encoding" {
                // What the origin saw, and the coding the edge gives this viewer (a Range
                // request gets identity): one variant per pair.
                let coding = crate::edge::compress::for_request(req).map_or("identity", |c| c.token());
                value = format!("{}|{coding}", normalize_accept_encoding(&value));
            }
            if !value.is_empty() {
                out.push((name, value));
            }
        }
        out
    }

    /// The variance key as pingora's builder makes it from [`variance_inputs`].
    fn reference_variance(stored: &HeaderMap, req: &HeaderMap) -> Option<[u8; 16]> {
        let mut b = pingora::cache::VarianceBuilder::new();
        for (name, value) in variance_inputs(stored, req) {
            b.add_owned_name_value(name, value.into_bytes());
        }
        b.finalize()
    }

    #[test]
    fn the_variance_key_is_pingoras_hash_of_the_variance_inputs() {
        let varies = [
            vec![],
            vec![("vary", "Accept-Encoding")],
            vec![("vary", "Origin, Accept-Encoding"), ("vary", "accept-encoding")],
            vec![("vary", "X-Variant, origin"), ("vary", " , ")],
            vec![("vary", "homefront-variance")],
            vec![("vary", "Access-Control-Request-Method,Access-Control-Request-Headers")],
            vec![("vary", "not a name, X-Variant")],
        ];
        let requests = [
            vec![],
            vec![("accept-encoding", "gzip, deflate, br")],
            vec![("accept-encoding", "br;q=0"), ("accept-encoding", "GZIP")],
            vec![("origin", "https://a.example"), ("x-variant", "1")],
            vec![("x-variant", ""), ("x-variant", "")],
            vec![("x-variant", "a"), ("x-variant", "b"), ("x-variant", "c")],
            vec![("homefront-variance", "2")],
            vec![("homefront-variance", "")],
            vec![("range", "bytes=0-1"), ("accept-encoding", "gzip")],
            vec![
                ("access-control-request-method", "PUT"),
                ("origin", "https://b.example"),
            ],
        ];
        let mut keys = std::collections::HashSet::new();
        for vary in &varies {
            for req in &requests {
                let (stored, req) = (headers(vary), headers(req));
                let key = Some(variance_key(&stored, &req));
                assert_eq!(key, reference_variance(&stored, &req), "{vary:?} {req:?}");
                keys.insert(key);
            }
        }
        assert!(keys.len() > 10, "the inputs make different keys: {}", keys.len());
    }

    #[test]
    fn accept_encoding_normalization() {
        assert_eq!(normalize_accept_encoding("gzip, deflate, br, zstd"), "br,gzip");
        assert_eq!(normalize_accept_encoding("gzip;q=1.0, identity; q=0.5"), "gzip");
        assert_eq!(normalize_accept_encoding("br;q=0, gzip"), "gzip");
        assert_eq!(normalize_accept_encoding("deflate"), "identity");
        assert_eq!(normalize_accept_encoding(""), "identity");
        assert_eq!(normalize_accept_encoding("BR"), "br");
        assert_eq!(normalize_accept_encoding("X-Gzip, br; q = 0"), "gzip");
        assert_eq!(normalize_accept_encoding("gzip;q=0.0,br;q=0.001"), "br");
    }

    #[test]
    fn invalidation_paths() {
        let star = InvalidationPath::parse("/images/*").unwrap();
        assert!(star.covers("/images/a.jpg"));
        assert!(star.covers("/images/x/y.png?v=2"));
        assert!(!star.covers("/img/a.jpg"));
        let exact = InvalidationPath::parse("/a.jpg").unwrap();
        assert!(exact.covers("/a.jpg"));
        assert!(!exact.covers("/a.jpg?v=1"));
        assert!(InvalidationPath::parse("/a.jpg*").unwrap().covers("/a.jpg?v=1"));
        assert!(InvalidationPath::parse("/*").unwrap().covers("/anything"));
        assert!(InvalidationPath::parse("images/*").is_err());
        assert!(InvalidationPath::parse("/a*/b").is_err());
        // Canonical, as entries are labelled.
        assert_eq!(
            InvalidationPath::parse("/%7euser/a%2bb*"),
            Ok(InvalidationPath::Prefix("/~user/a%2Bb".into()))
        );
        assert_eq!(
            InvalidationPath::parse("/.*"),
            Ok(InvalidationPath::Prefix("/.".into()))
        );
        assert!(InvalidationPath::parse("/a/../b").is_err());
        assert!(InvalidationPath::parse("/a%2Fb").is_err());
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
