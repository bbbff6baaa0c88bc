//! Admission: each request is routed once, before any path serves it, and the result
//! (`Routed`) is what the hit path, the pass path and pingora's proxy all take, so nothing is
//! decided, charged or counted twice.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Method;
use pingora::cache::CacheKey;
use pingora::http::RequestHeader;

use super::answer::OwnAnswer;
use super::ctx::Ctx;
use super::limits;
use super::route::{check_head, client_of, decide, declared_length, fast_paths, has_body, Decision, FastPaths};
use super::state::Shared;
use super::viewer;

/// A request routed once, before any path serves it: the hit path, the pass path and
/// pingora's proxy all read this, so nothing is decided, charged or counted twice.
pub(crate) struct Routed {
    /// The request's context: its config generation, request id and limits, and, for a
    /// request that goes on, the plan (`Ctx::follow`).
    pub ctx: Ctx,
    /// The edge answers itself; `None`: the request goes on to the cache and the origin.
    pub answer: Option<OwnAnswer>,
    /// Refused before its body was read: the connection ends with the answer.
    pub close: bool,
    /// The viewer (behind trusted proxies, the one they name).
    pub client: Option<std::net::IpAddr>,
    /// The cache key's primary part, hashed once (`None`: the behavior does not cache).
    pub key: Option<CacheKey>,
    /// The fast paths that may serve it ([`fast_paths`]).
    pub fast: FastPaths,
    /// The request as its viewer-request function changed it: what every path serves
    /// ([`Routed::request`]).
    pub edited: Option<Box<RequestHeader>>,
    /// What it was routed for, to check a hand-off (`Handoff`) against the request pingora
    /// parsed.
    method: Method,
    target: Box<[u8]>,
    fields: usize,
}

impl Routed {
    /// This routing is for `req`: the same method, target and number of header fields (the
    /// connection loop and pingora parse the same bytes; anything else is routed again).
    pub(crate) fn is_for(&self, req: &RequestHeader) -> bool {
        self.method == req.method && *self.target == *req.raw_path() && self.fields == req.headers.len()
    }

    /// The request to serve: `viewer`'s, or what its viewer-request function made of it.
    pub(crate) fn request<'a>(&'a self, viewer: &'a RequestHeader) -> &'a RequestHeader {
        self.edited.as_deref().unwrap_or(viewer)
    }
}

/// Routes a request once: the limits, the per-client rate (a token taken), a request id,
/// then [`decide`]. `body`: the request has a body; `raw`: its HTTP/1.x header block as
/// sent (framing checks), `None` for HTTP/2; `tls`: the connection's TLS digest.
pub(crate) fn admit(
    shared: &Shared,
    req: &RequestHeader,
    peer: Option<SocketAddr>,
    body: bool,
    raw: Option<&[u8]>,
    tls: Option<&pingora::protocols::tls::SslDigest>,
) -> Box<Routed> {
    let state = shared.state.load_full();
    let mut ctx = Ctx::new();
    ctx.request_id = shared.ids.next();
    ctx.body_limit = state.config.limits.max_body_size;
    ctx.state = Some(state.clone());
    let mut routed = Box::new(Routed {
        ctx,
        answer: None,
        close: false,
        client: None,
        key: None,
        fast: FastPaths::NONE,
        edited: None,
        method: req.method.clone(),
        target: req.raw_path().into(),
        fields: req.headers.len(),
    });
    // CloudFront's limits, checked before anything else reads the request. Only a request
    // with body framing can frame it ambiguously.
    let limits = &state.config.limits;
    let refused = check_head(limits, req)
        .and_then(|()| declared_length(req).map_or(Ok(()), |n| limits::check_body(limits, n)))
        .err()
        .or_else(|| raw.filter(|_| has_body(req)).and_then(viewer::framing));
    if let Some(e) = refused {
        // The body (if any) is not read: the connection cannot carry another request.
        routed.close = true;
        routed.answer = Some(OwnAnswer::Error(e));
        return routed;
    }
    // The client: the peer, or the one behind a trusted proxy (rate limits, signed URLs).
    let client = peer.map(|p| client_of(&state, req, p.ip()));
    routed.client = client;
    if let Some(client) = client {
        if let Err(retry_after) = shared.rate.take(&limits.per_client, client, limits::monotonic_ms()) {
            crate::telemetry::limited("requests");
            let mut e = limits::too_many("requests");
            e.retry_after = Some(retry_after);
            routed.answer = Some(OwnAnswer::Error(e));
            return routed;
        }
    }
    let request_id = routed.ctx.request_id.clone();
    let at = match decide(&state, &shared.acme, req, body, tls, client, &request_id) {
        Decision::Forward(mut plan) => {
            routed.edited = plan.edited.take();
            routed.fast = fast_paths(&state, routed.request(req), body, &plan);
            routed.key = plan.key.as_ref().map(|k| {
                use pingora::cache::key::CacheHashKey;
                let mut key = CacheKey::new(k.primary.as_bytes(), String::new());
                let bin = key.primary_bin();
                key.set_primary_bin_override(bin);
                key
            });
            routed.ctx.follow(*plan);
            return routed;
        }
        Decision::Acme(answer) => {
            routed.answer = Some(OwnAnswer::Acme(answer));
            return routed;
        }
        Decision::Deny(at, e) => {
            routed.answer = Some(OwnAnswer::Error(e));
            at
        }
        Decision::Redirect(at, location) => {
            routed.answer = Some(OwnAnswer::Redirect(location));
            at
        }
        Decision::Preflight(at, headers) => {
            routed.answer = Some(OwnAnswer::Preflight(headers));
            at
        }
        Decision::Generated(at, generated) => {
            routed.answer = Some(OwnAnswer::Generated(generated));
            at
        }
    };
    (routed.ctx.dist, routed.ctx.behavior) = at;
    routed
}

/// A routed request handed to pingora's proxy with its HTTP/2 stream (in the request
/// header's extensions; HTTP/1.1 hands it over in the connection's stream,
/// `stream::Guarded`), so that `request_filter` does not route it again.
#[derive(Clone)]
pub(crate) struct Handoff(Arc<std::sync::Mutex<Option<Box<Routed>>>>);

impl Handoff {
    pub(crate) fn new(routed: Box<Routed>) -> Handoff {
        Handoff(Arc::new(std::sync::Mutex::new(Some(routed))))
    }

    pub(crate) fn take(&self) -> Option<Box<Routed>> {
        self.0.lock().ok()?.take()
    }
}
