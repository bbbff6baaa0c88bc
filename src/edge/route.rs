//! Routing: the one decision of what the edge does with a request (`decide`), from its
//! canonical form, and the plan of a request that goes on to the cache and the origin.

use std::sync::Arc;

use http::{header, Method};
use pingora::http::RequestHeader;

use super::canonical;
use super::ctx::Ctx;
use super::errors::EdgeError;
use super::functions::{self, Viewed};
use super::state::EdgeState;
use super::upstream::target_for;
use super::viewer::{self, ViewerOutcome};
use super::{behavior, limits};
use crate::config::model::{Origin, OriginKind};
use crate::policy::cache_policy::{self, CacheKeyParts};
use crate::policy::{ip, signed};

/// Where in the config a request landed: its distribution and behavior (`usize::MAX` until
/// known), for the metrics and the access log.
pub(crate) type At = (usize, usize);

/// What the edge does with a request, decided from the request alone: steps 0–6 of the
/// request's way (ARCHITECTURE.md). `admit` runs it once per request, for whichever path
/// serves it.
pub(crate) enum Decision {
    /// An ACME HTTP-01 validation: the key authorization to answer with.
    Acme(String),
    Deny(At, EdgeError),
    /// A viewer-protocol redirect to this location.
    Redirect(At, String),
    /// A CORS preflight answered at the edge: the headers, or `None` for 403.
    Preflight(At, Option<Vec<(&'static str, String)>>),
    /// A response a viewer-request function generated.
    Generated(At, crate::functions::event::Generated),
    /// To the cache, then the origin.
    Forward(Box<Plan>),
}

/// A request that goes to the cache and the origin.
pub(crate) struct Plan {
    pub dist: usize,
    pub behavior: usize,
    /// The coding this viewer gets if the response is compressible.
    pub compress: Option<super::compress::Coding>,
    /// The cache key; `None` when the behavior does not cache.
    pub key: Option<CacheKeyParts>,
    /// The origin (a group's primary).
    pub origin: Arc<Origin>,
    pub object_path: String,
    /// The query string the origin gets.
    pub http_query: Option<String>,
    /// Path and query to request from the origin.
    pub target: String,
    /// The request's canonical host, path and query.
    pub canon: canonical::Canonical,
    /// The request as a viewer-request function changed it: what every path serves (`None`:
    /// the viewer's request as it is).
    pub edited: Option<Box<RequestHeader>>,
    /// The request part of the viewer-response function's event, when the behavior has one.
    pub viewer_event: Option<Box<super::functions::ViewerEvent>>,
}

/// The request's Content-Length, if it has a valid one.
pub(crate) fn declared_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
}

/// The request declares a body (Content-Length or Transfer-Encoding).
pub(crate) fn has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(header::CONTENT_LENGTH) || req.headers.contains_key(header::TRANSFER_ENCODING)
}

/// CloudFront's URL and header limits (`limits`), for a parsed request.
pub(crate) fn check_head(limits: &crate::config::model::Limits, req: &RequestHeader) -> Result<(), EdgeError> {
    let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    limits::check_head(
        limits,
        target,
        req.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
    )
}

/// The viewer's address: `peer`, or the client a trusted proxy names in X-Forwarded-For
/// (rate limits, signed URLs).
pub(crate) fn client_of(state: &EdgeState, req: &RequestHeader, peer: std::net::IpAddr) -> std::net::IpAddr {
    let xff = req.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    ip::client_ip(peer, xff, &state.config.trusted_proxies)
}

/// Which fast path may serve a request that goes on to the cache and the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FastPaths {
    /// `edge::hit`: a fresh 200 entry, sent as it is stored.
    pub hit: bool,
    /// `edge::pass`: straight to a plain-HTTP upstream, when the cache will not keep it.
    pub pass: bool,
}

impl FastPaths {
    pub(crate) const NONE: FastPaths = FastPaths {
        hit: false,
        pass: false,
    };
}

/// Request headers that make pingora do more than send a stored response as it is, or the
/// viewer's request as it is: a body, a precondition (304/412), a range (206), an upgrade.
const NOT_PLAIN: [header::HeaderName; 10] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::EXPECT,
    header::UPGRADE,
];

/// Request headers that are hop-by-hop (pingora strips them, and some change what it
/// sends), besides `Connection`.
const HOP_BY_HOP: [&str; 9] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// The one rule of which fast path may serve a request `decide` forwards, written as what
/// each cannot do; anything else is pingora's. Every field of the plan, the behavior and
/// the distribution is named here (no `..`): a field added to them does not compile until
/// it is decided for the fast paths. What depends on the cache's content (a fresh 200
/// entry, the variance, the predictor) is checked by the paths themselves.
pub(crate) fn fast_paths(state: &EdgeState, req: &RequestHeader, body: bool, plan: &Plan) -> FastPaths {
    let Plan {
        dist,
        behavior,
        // Both paths compress as pingora's does (`shape::origin_response`, stored variants).
        compress: _,
        key,
        origin,
        // The origin request is built by `upstream::origin_request` on every path.
        object_path: _,
        http_query: _,
        target: _,
        canon: _,
        // `admit` hands the changed request to every path; the viewer-response function runs
        // in `viewer_headers`.
        edited: _,
        viewer_event: _,
    } = plan;
    let Some(d) = state.config.distributions.get(*dist) else {
        return FastPaths::NONE;
    };
    let crate::config::model::Distribution {
        name: _,
        domains: _,
        default_root_object: _,
        behaviors,
        // Custom error pages are fetched and swapped in by pingora's path only.
        error_responses,
        // Every path logs through `account::account`.
        access_log: _,
    } = d;
    let Some(b) = behaviors.get(*behavior) else {
        return FastPaths::NONE;
    };
    let crate::config::model::Behavior {
        path_pattern_text: _,
        path_pattern: _,
        // A group fails over on the primary's status: pingora's path only.
        origin: behavior_origin,
        // Viewer rules, methods and signed access are `decide`'s, before any path.
        viewer_protocol_policy: _,
        allowed_methods: _,
        trusted_keys: _,
        // The key is in the plan; forwarding is `origin_request`'s.
        cache: _,
        // Applied by `shape::viewer_headers` on every path.
        headers: _,
        inject_origin: _,
        compress: _,
        // Viewer-request: in `decide`, before any path. Viewer-response: in `viewer_headers`
        // on every path; a failed call replaces the body, which the pass path (streaming the
        // origin's) cannot.
        functions,
    } = b;
    // A plain GET or HEAD: no body, no precondition, range or upgrade; an origin-form
    // UTF-8 target; at most one Host (pingora refuses an ambiguous authority).
    let target = req.raw_path();
    let plain = !body
        && matches!(req.method, Method::GET | Method::HEAD)
        && target.first() == Some(&b'/')
        && std::str::from_utf8(target).is_ok()
        && req.headers.get_all(header::HOST).iter().count() <= 1
        && !NOT_PLAIN.iter().any(|h| req.headers.contains_key(h));
    if !plain {
        return FastPaths::NONE;
    }
    // The hit path: a caching behavior whose 200s are not replaced by an error page.
    let hit = key.is_some() && d.error_response(200).is_none();
    // The pass path: HTTP/1.1 with one Host and no hop-by-hop header but `Connection:
    // keep-alive`/`close`, to an `http` origin (not a group) with plain-HTTP upstreams, in
    // a distribution without custom error responses.
    let pass = req.version == http::Version::HTTP_11
        && req.headers.get_all(header::HOST).iter().count() == 1
        && req.headers.iter().all(|(name, value)| {
            if name == header::CONNECTION {
                value.as_bytes().split(|b| *b == b',').all(|t| {
                    let t = t.trim_ascii();
                    t.eq_ignore_ascii_case(b"keep-alive") || t.eq_ignore_ascii_case(b"close")
                })
            } else {
                !HOP_BY_HOP.contains(&name.as_str())
            }
        })
        && !matches!(behavior_origin.kind, OriginKind::Group { .. })
        && matches!(&origin.kind, OriginKind::Http { upstreams, .. } if upstreams.iter().all(|u| !u.tls))
        && error_responses.is_empty()
        && functions.viewer_response.is_none();
    FastPaths { hit, pass }
}

/// The server name a TLS connection was made for (SNI), if any.
pub(crate) fn server_name(tls: Option<&pingora::protocols::tls::SslDigest>) -> Option<&str> {
    tls?.extension.get::<crate::tls::ServerName>().map(|n| n.0.as_str())
}

/// Steps 0–6 for one request. `body`: the request has a body (HTTP/1.1 framing, or an
/// HTTP/2 stream the HEADERS frame did not end); `tls`: the connection's TLS digest
/// (`None`: plain HTTP); `client`: the viewer's address (behind trusted proxies, the one
/// they name), for signed-URL IP conditions.
pub(crate) fn decide(
    state: &EdgeState,
    acme: &crate::tls::acme::Challenges,
    req: &RequestHeader,
    body: bool,
    tls: Option<&pingora::protocols::tls::SslDigest>,
    client: Option<std::net::IpAddr>,
    request_id: &str,
) -> Decision {
    let is_https = tls.is_some();
    let nowhere = (usize::MAX, usize::MAX);
    // The one canonical form of host, path and query every step below reads.
    let mut canon = match canonical::canonicalize(&canonical::Raw::of(req, is_https)) {
        Ok(c) => c,
        Err(e) => return Decision::Deny(nowhere, e),
    };

    // 0 an ACME HTTP-01 validation of a certificate being obtained (any host: the CA asks
    // for the names it is about to certify).
    if let Some(token) = canon.path.strip_prefix("/.well-known/acme-challenge/") {
        if let Some(answer) = acme.http01(token) {
            return Decision::Acme(answer);
        }
    }

    // 1 distribution, which must be the one the TLS connection was made for
    let Some(dist_idx) = state.router.route(&canon.host) else {
        return Decision::Deny(nowhere, EdgeError::unknown_host());
    };
    if let Some(sni) = server_name(tls) {
        if sni != canon.host && state.router.route(sni) != Some(dist_idx) {
            return Decision::Deny((dist_idx, usize::MAX), EdgeError::misdirected());
        }
    }
    let dist = &state.config.distributions[dist_idx];

    // 2 behavior, matched on the path as an origin reads it (every escape decoded once)
    let Some((b_idx, behavior)) = behavior::select(dist, canon.decoded_path()) else {
        return Decision::Deny((dist_idx, usize::MAX), EdgeError::unknown_host());
    };
    let at = (dist_idx, b_idx);
    // A GET or HEAD with a body: refused as CloudFront refuses it (nothing outside the key
    // may reach a cacheable request's origin).
    if matches!(req.method, Method::GET | Method::HEAD) && body {
        return Decision::Deny(at, EdgeError::body_not_allowed());
    }
    let compress = (behavior.compress && matches!(req.method, Method::GET | Method::HEAD))
        .then(|| super::compress::for_request(&req.headers))
        .flatten();

    // 3 viewer rules
    let path_and_query = canon.path_and_query();
    match viewer::check(
        behavior,
        &req.method,
        is_https,
        &canon.host,
        &path_and_query,
        state.https_port,
    ) {
        ViewerOutcome::Continue => {}
        ViewerOutcome::Redirect(location) => return Decision::Redirect(at, location),
        ViewerOutcome::Deny(e) => return Decision::Deny(at, e),
    }
    // The viewer-request function: what it returns is the request from here on (its
    // canonical form, its fields), or the answer.
    let functions = &behavior.functions;
    let mut edited: Option<Box<RequestHeader>> = None;
    let mut chosen_origin = None;
    let mut viewer_event = None;
    if functions.viewer_request.is_some() || functions.viewer_response.is_some() {
        let event = functions::viewer_event(req, &canon, client, &dist.name);
        if let Some(f) = &functions.viewer_request {
            match functions::viewer_request(state, f, req, &event, is_https, request_id) {
                Viewed::Same => {}
                Viewed::Changed {
                    header,
                    canon: c,
                    origin,
                } => {
                    edited = Some(header);
                    canon = c;
                    chosen_origin = origin;
                }
                Viewed::Answer(g) => return Decision::Generated(at, g),
                Viewed::Failed(e) => return Decision::Deny(at, e),
            }
        }
        if functions.viewer_response.is_some() {
            viewer_event = Some(Box::new(match &edited {
                Some(changed) => functions::viewer_event(changed, &canon, client, &dist.name),
                None => event,
            }));
        }
    }
    let req: &RequestHeader = edited.as_deref().unwrap_or(req);
    // CORS preflight answered at the edge when the behavior's response headers policy has
    // CORS (before the signature check: browsers send preflights without cookies).
    if let (Some(cors), true) = (
        behavior.headers.as_ref().and_then(|h| h.cors.as_ref()),
        req.method == Method::OPTIONS,
    ) {
        let text = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
        if let (Some(origin), Some(method)) = (text("origin"), text("access-control-request-method")) {
            return Decision::Preflight(
                at,
                cors.preflight(origin, method, text("access-control-request-headers")),
            );
        }
    }
    // 4 access: signed URL or cookies against the behavior's trusted key groups.
    let cookies = canonical::cookie_header(req);
    if let Some(keys) = &behavior.trusted_keys {
        let viewer_req = signed::ViewerRequest {
            scheme: if is_https { "https" } else { "http" },
            host: &canon.authority,
            path: &canon.path,
            query: canon.query.as_deref(),
            cookies: cookies.as_deref(),
            client_ip: client.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            now: state.clock.now(),
        };
        if let Err(e) = signed::verify(keys, &viewer_req) {
            return Decision::Deny(at, EdgeError::new(403, e.code(), e.message()));
        }
    }
    let object_path = viewer::object_path(&canon.path, dist.default_root_object.as_deref());

    // 5 cache key (and, for a caching behavior, what is forwarded)
    let signed_behavior = behavior.trusted_keys.is_some();
    let key = (!behavior.cache.caching_disabled()).then(|| {
        cache_policy::cache_key(
            &behavior.cache,
            &cache_policy::KeyInput {
                distribution: &dist.name,
                scheme: if is_https { "https" } else { "http" },
                host: &canon.authority,
                path: &canon.path,
                query: canon.query.as_deref(),
                cookies: cookies.as_deref(),
                headers: &req.headers,
                signed: signed_behavior,
            },
        )
    });

    // 6 origin request target (a group starts with its primary); a viewer-request function
    // may have chosen another configured origin.
    let chosen = chosen_origin.unwrap_or_else(|| behavior.origin.clone());
    let origin = match &chosen.kind {
        OriginKind::Group { primary, .. } => primary.clone(),
        _ => chosen.clone(),
    };
    let denied = || Decision::Deny(at, EdgeError::new(403, "AccessDenied", "Access Denied"));
    if matches!(origin.kind, OriginKind::Bucket { .. } | OriginKind::S3 { .. })
        && !matches!(req.method, Method::GET | Method::HEAD)
    {
        // The edge only reads buckets: its credential must never carry a viewer's write.
        return denied();
    }
    // A caching behavior forwards the keyed query string only (anything else could change
    // the answer without changing the key); signing parameters never reach the origin.
    // Bucket origins get none (it would select other S3 operations).
    let http_query = match (&key, canon.query.as_deref()) {
        (Some(k), _) => k.forward_query.clone(),
        (None, Some(q)) if signed_behavior && signed::has_signing_params(q) => signed::strip_signing_params(q),
        (None, other) => other.map(str::to_string),
    };
    let Some(target) = target_for(&origin, &object_path, http_query.as_deref()) else {
        return denied();
    };
    Decision::Forward(Box::new(Plan {
        dist: dist_idx,
        behavior: b_idx,
        compress,
        key,
        origin,
        object_path: object_path.into_owned(),
        http_query,
        target,
        canon,
        edited,
        viewer_event,
    }))
}

/// An HTTP/1.1 request declares a body: a Content-Length other than 0, or a
/// Transfer-Encoding.
pub(crate) fn declares_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(header::TRANSFER_ENCODING)
        || req
            .headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes().trim_ascii() != b"0")
}

/// What [`decide`] made of a request that goes on to an origin, for the `request` fuzz
/// target (`fuzz/`): where it landed, its canonical form, and the target the origin gets.
#[doc(hidden)]
pub struct Forwarded {
    pub dist: usize,
    pub behavior: usize,
    pub canon: canonical::Canonical,
    pub origin: Arc<Origin>,
    pub target: String,
}

/// [`decide`] on a plain-HTTP or HTTPS (no SNI) request without a body, for the fuzz
/// targets: `Ok` for a request that goes to an origin, else the status of the edge's own
/// answer (a redirect is 301).
#[doc(hidden)]
pub fn decide_for_fuzz(state: &EdgeState, req: &RequestHeader, https: bool) -> Result<Forwarded, u16> {
    let digest = pingora::protocols::tls::SslDigest::new("fuzz", "TLSv1.3", None, None, Vec::new());
    let acme = crate::tls::acme::Challenges::default();
    match decide(state, &acme, req, false, https.then_some(&digest), None, "fuzz") {
        Decision::Forward(plan) => Ok(Forwarded {
            dist: plan.dist,
            behavior: plan.behavior,
            canon: plan.canon,
            origin: plan.origin,
            target: plan.target,
        }),
        Decision::Deny(_, e) => Err(e.status),
        Decision::Redirect(..) => Err(301),
        Decision::Acme(_) | Decision::Preflight(..) => Err(200),
        Decision::Generated(_, g) => Err(g.status),
    }
}

impl Ctx {
    /// Takes on what `decide` planned for a request that goes to the cache and the origin.
    pub(crate) fn follow(&mut self, plan: Plan) {
        let Plan {
            dist,
            behavior,
            compress,
            key,
            origin,
            object_path,
            http_query,
            target,
            canon,
            edited: _,
            viewer_event,
        } = plan;
        (self.dist, self.behavior) = (dist, behavior);
        self.viewer_event = viewer_event;
        self.compress = compress;
        self.key = key;
        self.upstream_target = target;
        self.object_path = object_path;
        self.http_query = http_query;
        self.origin = Some(origin);
        self.canon = Some(canon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::Clock;

    const CONFIG: &str = r#"
origins:
  site: { bucket: site }
  app: { http: "127.0.0.1:9001" }
  api: { http: "127.0.0.1:9002" }
  secure: { http: "https://127.0.0.1:9003" }
  both: { group: { primary: api, secondary: app, failover_on: [503] } }
distributions:
  - domains: ["pages.example"]
    custom_error_responses:
      - { error_code: 404, response_page_path: /404.html, response_code: 404 }
    behaviors:
      - { path_pattern: "*", origin: app }
  - domains: ["*"]
    behaviors:
      - { path_pattern: "/cached/*", origin: app }
      - { path_pattern: "/live/*", origin: app, cache: { max_ttl: 0 }, allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE] }
      - { path_pattern: "/group/*", origin: both }
      - { path_pattern: "/tls/*", origin: secure }
      - { path_pattern: "/secure/*", origin: app, viewer_protocol_policy: https-only }
      - { path_pattern: "/moved/*", origin: app, viewer_protocol_policy: redirect-to-https }
      - { path_pattern: "/fn/*", origin: app, function_associations: { viewer_request: rewrite } }
      - { path_pattern: "/fnr/*", origin: app, function_associations: { viewer_response: headers } }
      - { path_pattern: "*", origin: site }
functions:
  rewrite: { file: rewrite.js }
  headers: { file: headers.js }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:9000"
  credentials: [ { access_key_id: k, secret_access_key_file: origin.key } ]
"#;

    fn state() -> EdgeState {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("origin.key"), "secret").unwrap();
        // Rewrites /fn/a to /fn/b?via=fn with a header; anything else answers 418 itself.
        std::fs::write(
            dir.path().join("rewrite.js"),
            "function handler(e) { var r = e.request; if (r.uri !== '/fn/a') return {statusCode: 418}; r.uri = '/fn/b'; r.querystring = 'via=fn'; r.headers['x-fn'] = {value: '1'}; return r; }",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("headers.js"),
            "function handler(e) { return e.response; }",
        )
        .unwrap();
        let loaded = crate::config::load_str("t.yaml", CONFIG, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        EdgeState::new(Arc::new(loaded.config), Clock::Fixed(1_800_000_000))
    }

    fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    /// What `decide` did, in a form a table can hold.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        /// Forwarded to (distribution, behavior) with this origin target.
        Forward(usize, usize, String),
        Deny(u16),
        Redirect(String),
        Preflight,
        Acme,
    }

    fn outcome(state: &EdgeState, r: &RequestHeader, body: bool) -> Outcome {
        let acme = crate::tls::acme::Challenges::default();
        match decide(state, &acme, r, body, None, None, "t") {
            Decision::Forward(p) => Outcome::Forward(p.dist, p.behavior, p.target),
            Decision::Deny(_, e) => Outcome::Deny(e.status),
            Decision::Redirect(_, l) => Outcome::Redirect(l),
            Decision::Preflight(..) => Outcome::Preflight,
            Decision::Acme(_) => Outcome::Acme,
            Decision::Generated(_, g) => Outcome::Deny(g.status),
        }
    }

    #[test]
    fn decide_routes_each_request_once_from_its_canonical_form() {
        let state = state();
        let h = |host: &str| vec![("host", host.to_string())];
        // (method, target, headers, body, outcome)
        type Row<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, bool, Outcome);
        let rows: Vec<Row> = vec![
            (
                "GET",
                "/a.html",
                h("pages.example"),
                false,
                Outcome::Forward(0, 0, "/a.html".into()),
            ),
            (
                "GET",
                "/a.html",
                h("PAGES.example."),
                false,
                Outcome::Forward(0, 0, "/a.html".into()),
            ),
            (
                "GET",
                "/cached/x?b=1",
                h("other"),
                false,
                Outcome::Forward(1, 0, "/cached/x".into()),
            ),
            (
                "GET",
                "/live/x?b=1",
                h("other"),
                false,
                Outcome::Forward(1, 1, "/live/x?b=1".into()),
            ),
            // Escapes of unreserved characters are decoded before the behavior is matched.
            (
                "GET",
                "/%63ached/x",
                h("other"),
                false,
                Outcome::Forward(1, 0, "/cached/x".into()),
            ),
            (
                "GET",
                "/x.png",
                h("other"),
                false,
                Outcome::Forward(1, 8, "/site/x.png".into()),
            ),
            ("GET", "/secure/x", h("other"), false, Outcome::Deny(403)),
            (
                "GET",
                "/moved/x",
                h("other"),
                false,
                Outcome::Redirect("https://other:8443/moved/x".into()),
            ),
            // A GET with a body, a write to a bucket, a bad path, a bad host.
            ("GET", "/cached/x", h("other"), true, Outcome::Deny(403)),
            ("PUT", "/x.png", h("other"), false, Outcome::Deny(403)),
            ("GET", "/a/../b", h("other"), false, Outcome::Deny(400)),
            ("GET", "/a%2Fb", h("other"), false, Outcome::Deny(400)),
            ("GET", "/a", h("a/b"), false, Outcome::Deny(400)),
            ("GET", "/a", vec![], false, Outcome::Deny(400)),
        ];
        for (method, target, headers, body, want) in rows {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let r = req(method, target, &headers);
            assert_eq!(
                outcome(&state, &r, body),
                want,
                "{method} {target} {headers:?} body={body}"
            );
        }
    }

    /// The fast paths `admit` would allow for `r` (`None`: `decide` does not forward it).
    fn paths(state: &EdgeState, r: &RequestHeader, body: bool) -> Option<FastPaths> {
        let acme = crate::tls::acme::Challenges::default();
        match decide(state, &acme, r, body, None, None, "t") {
            Decision::Forward(plan) => Some(fast_paths(state, r, body, &plan)),
            _ => None,
        }
    }

    const BOTH: FastPaths = FastPaths { hit: true, pass: true };
    const HIT_ONLY: FastPaths = FastPaths { hit: true, pass: false };

    #[test]
    fn a_viewer_request_function_changes_what_every_later_step_reads() {
        let state = state();
        let acme = crate::tls::acme::Challenges::default();
        let r = req("GET", "/fn/a", &[("host", "x")]);
        let Decision::Forward(plan) = decide(&state, &acme, &r, false, None, None, "t") else {
            panic!("forwarded")
        };
        // The canonical form, the cache key and the origin target are the function's.
        assert_eq!(plan.canon.path, "/fn/b");
        assert_eq!(plan.canon.query.as_deref(), Some("via=fn"));
        assert_eq!(plan.target, "/fn/b");
        assert!(plan.key.as_ref().unwrap().primary.contains("/fn/b"));
        let edited = plan.edited.as_ref().expect("the changed request travels with the plan");
        assert_eq!(edited.raw_path(), b"/fn/b?via=fn");
        assert_eq!(edited.headers["x-fn"], "1");
        // The fast paths judge the changed request.
        assert_eq!(fast_paths(&state, edited, false, &plan), BOTH);
        // A generated answer.
        let r = req("GET", "/fn/other", &[("host", "x")]);
        assert_eq!(outcome(&state, &r, false), Outcome::Deny(418));
    }

    #[test]
    fn a_viewer_response_function_keeps_the_pass_path_off() {
        let state = state();
        let r = req("GET", "/fnr/a", &[("host", "x")]);
        assert_eq!(paths(&state, &r, false), Some(HIT_ONLY));
    }

    #[test]
    fn a_plain_get_or_head_may_take_a_fast_path() {
        let state = state();
        for method in ["GET", "HEAD"] {
            let r = req(method, "/cached/x", &[("host", "x"), ("accept-encoding", "gzip")]);
            assert_eq!(paths(&state, &r, false), Some(BOTH), "{method}");
        }
        // Persistence tokens alone are not hop-by-hop for the pass path.
        let r = req(
            "GET",
            "/cached/x",
            &[("host", "x"), ("connection", "Keep-Alive, close")],
        );
        assert_eq!(paths(&state, &r, false), Some(BOTH));
    }

    #[test]
    fn bodies_preconditions_ranges_upgrades_and_other_methods_take_the_full_path() {
        let state = state();
        for h in [
            ("content-length", "0"),
            ("transfer-encoding", "chunked"),
            ("range", "bytes=0-1"),
            ("if-none-match", "\"x\""),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("if-match", "*"),
            ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("if-range", "\"x\""),
            ("expect", "100-continue"),
            ("upgrade", "websocket"),
        ] {
            let r = req("GET", "/live/x", &[("host", "x"), h]);
            assert_eq!(paths(&state, &r, false), Some(FastPaths::NONE), "{h:?}");
        }
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            let r = req(method, "/live/x", &[("host", "x")]);
            assert_eq!(paths(&state, &r, false), Some(FastPaths::NONE), "{method}");
        }
        // An HTTP/2 stream that the HEADERS frame did not end has a body.
        let r = req("POST", "/live/x", &[("host", "x")]);
        assert_eq!(paths(&state, &r, true), Some(FastPaths::NONE));
    }

    #[test]
    fn an_ambiguous_authority_takes_the_full_path() {
        let state = state();
        let r = req("GET", "http://x/cached/a", &[("host", "x")]);
        assert_eq!(paths(&state, &r, false), Some(FastPaths::NONE));
        let r = req("GET", "/cached/a", &[("host", "x"), ("host", "x")]);
        assert_eq!(paths(&state, &r, false).unwrap_or(FastPaths::NONE), FastPaths::NONE);
    }

    #[test]
    fn hop_by_hop_headers_and_other_versions_keep_the_hit_path_only() {
        let state = state();
        for h in HOP_BY_HOP
            .iter()
            .filter(|h| !["transfer-encoding", "upgrade"].contains(h))
        {
            let r = req("GET", "/cached/x", &[("host", "x"), (h, "1")]);
            assert_eq!(paths(&state, &r, false), Some(HIT_ONLY), "{h}");
        }
        for token in ["x-secret", "keep-alive, upgrade"] {
            let r = req("GET", "/cached/x", &[("host", "x"), ("connection", token)]);
            assert_eq!(paths(&state, &r, false), Some(HIT_ONLY), "{token}");
        }
        let mut old = req("GET", "/cached/x", &[("host", "x")]);
        old.set_version(http::Version::HTTP_10);
        assert_eq!(paths(&state, &old, false), Some(HIT_ONLY));
    }

    #[test]
    fn the_pass_path_takes_plain_http_origins_only_and_the_hit_path_caching_behaviors_only() {
        let state = state();
        let get = |host: &str, path: &str| paths(&state, &req("GET", path, &[("host", host)]), false);
        // Not caching: nothing to hit.
        assert_eq!(get("x", "/live/x"), Some(FastPaths { hit: false, pass: true }));
        // A group fails over on the primary's status; a TLS upstream; a bucket.
        assert_eq!(get("x", "/group/x"), Some(HIT_ONLY));
        assert_eq!(get("x", "/tls/x"), Some(HIT_ONLY));
        assert_eq!(get("x", "/x.png"), Some(HIT_ONLY));
        // Custom error pages are swapped in by pingora's path.
        assert_eq!(get("pages.example", "/a"), Some(HIT_ONLY));
    }
}
