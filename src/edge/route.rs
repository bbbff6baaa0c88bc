//! Routing: the one decision of what the edge does with a request (`decide`), from its
//! canonical form, and the plan of a request that goes on to the cache and the origin.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{header, Method};
use pingora::cache::CacheKey;
use pingora::http::RequestHeader;

use super::cache_policy::{self, CacheKeyParts};
use super::canonical;
use super::ctx::Ctx;
use super::errors::EdgeError;
use super::state::EdgeState;
use super::upstream::target_for;
use super::viewer::{self, ViewerOutcome};
use super::{behavior, ip, limits, signed};
use crate::config::model::{Origin, OriginKind};

/// Where in the config a request landed: its distribution and behavior (`usize::MAX` until
/// known), for the metrics and the access log.
pub(crate) type At = (usize, usize);

/// What the edge does with a request, decided from the request alone: steps 0–6 of the
/// request's way (DESIGN.md). Both drivers use it: `request_filter` (pingora's proxy) and
/// the hit path in `edge::hit`, so a request is judged the same way whichever serves it.
pub(crate) enum Decision {
    /// An ACME HTTP-01 validation: the key authorization to answer with.
    Acme(String),
    Deny(At, EdgeError),
    /// A viewer-protocol redirect to this location.
    Redirect(At, String),
    /// A CORS preflight answered at the edge: the headers, or `None` for 403.
    Preflight(At, Option<Vec<(&'static str, String)>>),
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

/// A request the fast paths (`edge::hit`, then `edge::pass`) may serve, routed once for
/// both: a plain GET or HEAD within the limits that `decide` forwards.
pub(crate) struct Routed {
    pub state: Arc<EdgeState>,
    pub plan: Box<Plan>,
    /// The viewer (behind trusted proxies, the one they name).
    pub client: Option<std::net::IpAddr>,
    /// The cache key's primary part, hashed once (`None`: the behavior does not cache).
    pub key: Option<CacheKey>,
}

/// Routes `req` for the fast paths, or `None`: pingora's proxy serves it (and decides it
/// again from the start).
pub(crate) fn route(
    state: &ArcSwap<EdgeState>,
    acme: &crate::tls::acme::Challenges,
    req: &RequestHeader,
    peer: Option<SocketAddr>,
    body: bool,
    tls: Option<&pingora::protocols::tls::SslDigest>,
) -> Option<Routed> {
    if body || !super::hit::plain(req) {
        return None;
    }
    let state = state.load_full();
    check_head(&state.config.limits, req).ok()?;
    let client = peer.map(|p| client_of(&state, req, p.ip()));
    let Decision::Forward(plan) = decide(&state, acme, req, false, tls, client) else {
        return None;
    };
    let key = plan.key.as_ref().map(|k| {
        use pingora::cache::key::CacheHashKey;
        let mut key = CacheKey::new(k.primary.as_bytes(), String::new());
        let bin = key.primary_bin();
        key.set_primary_bin_override(bin);
        key
    });
    Some(Routed {
        state,
        plan,
        client,
        key,
    })
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
) -> Decision {
    let is_https = tls.is_some();
    let nowhere = (usize::MAX, usize::MAX);
    // The one canonical form of host, path and query every step below reads.
    let canon = match canonical::canonicalize(&canonical::Raw::of(req, is_https)) {
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
    let cookies = cookie_header(req);
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

    // 6 origin request target (a group starts with its primary)
    let origin = match &behavior.origin.kind {
        OriginKind::Group { primary, .. } => primary.clone(),
        _ => behavior.origin.clone(),
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
    match decide(state, &acme, req, false, https.then_some(&digest), None) {
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
    }
}

/// All Cookie headers joined with `; ` (HTTP/2 clients send one header per cookie).
pub(crate) fn cookie_header(req: &RequestHeader) -> Option<String> {
    let mut values = req
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    let mut joined = first.to_string();
    for v in values {
        joined.push_str("; ");
        joined.push_str(v);
    }
    Some(joined)
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
        } = plan;
        (self.dist, self.behavior) = (dist, behavior);
        self.compress = compress;
        self.key = key;
        self.upstream_target = target;
        self.object_path = object_path;
        self.http_query = http_query;
        self.origin = Some(origin);
        self.canon = Some(canon);
    }

    /// The context of a request the hit path serves from the memory tier: what
    /// `request_filter` would have set, and the `Hit` result.
    pub(crate) fn for_hit(state: Arc<EdgeState>, plan: Plan, request_id: String) -> Ctx {
        let mut ctx = Ctx::new();
        ctx.state = Some(state);
        ctx.follow(plan);
        ctx.request_id = request_id;
        ctx.cache_result = "Hit";
        ctx.first_byte = Some(std::time::Instant::now());
        ctx
    }

    /// The context of a request the pass path sends to the origin: what `request_filter`
    /// would have set, and the `Miss` result.
    pub(crate) fn for_pass(state: Arc<EdgeState>, plan: Plan, request_id: String) -> Ctx {
        let mut ctx = Ctx::new();
        ctx.state = Some(state);
        ctx.follow(plan);
        ctx.request_id = request_id;
        ctx
    }
}
