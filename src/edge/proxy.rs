//! The pingora `ProxyHttp` implementation. Thin: every decision is made by the pure
//! modules beside this one; the hooks read like the request's way (ARCHITECTURE.md).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method};
use pingora::cache::key::HashBinary;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::{CacheKey, CacheMeta, CachePhase, NoCacheReason, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use super::account::{account, Exchange, RequestIds};
use super::answer::{error_response, failure_answer, failure_status};
use super::cache_policy;
use super::ctx::Ctx;
use super::error_pages::ErrorPages;
use super::errors::EdgeError;
use super::route::{check_head, client_of, decide, declared_length, declares_body, has_body, Decision};
use super::shape::{cache_ttl, decorate, encode, origin_response, variance, viewer_headers};
use super::state::{EdgeState, UNCACHEABLE};
use super::upstream::origin_request;
use super::{limits, viewer};
use crate::cache::{DiskCache, EntryLabel};
use crate::config::model::OriginKind;
use crate::telemetry;
use crate::telemetry::access_log::AccessLogger;

/// Collapses concurrent misses for one key into one origin request; a writer that takes
/// longer than this to fill the entry releases the waiting readers to the origin.
static CACHE_LOCK: LazyLock<Box<CacheKeyLockImpl>> = LazyLock::new(|| CacheLock::new_boxed(Duration::from_secs(30)));

pub struct Edge {
    state: Arc<ArcSwap<EdgeState>>,
    ids: Arc<RequestIds>,
    cache: Option<&'static DiskCache>,
    /// Custom error pages.
    pages: ErrorPages,
    /// Access logs of the distributions that ask for them.
    access_log: Option<Arc<AccessLogger>>,
    /// ACME HTTP-01 answers being validated right now.
    acme: Arc<crate::tls::acme::Challenges>,
    /// Per-client request rates (`limits.per_client`).
    rate: Arc<limits::RequestRate>,
}

/// A request body the edge still reads, when the origin failed before it was sent, before
/// answering with the error and closing (`fail_to_proxy`); and for how long.
const DRAIN_MAX: u64 = 1 << 20;
const DRAIN_FOR: Duration = Duration::from_secs(2);

impl Edge {
    /// `cache`: the process's cache storage; `None` serves everything from the origin.
    pub fn new(
        state: Arc<ArcSwap<EdgeState>>,
        cache: Option<&'static DiskCache>,
        access_log: Option<Arc<AccessLogger>>,
        acme: Arc<crate::tls::acme::Challenges>,
    ) -> Self {
        Edge {
            state,
            ids: Arc::new(RequestIds::new()),
            cache,
            pages: ErrorPages::new(),
            rate: Arc::new(limits::RequestRate::default()),
            access_log,
            acme,
        }
    }
}

impl Edge {
    /// The hit path's share of this proxy (`None` without a cache).
    pub fn hits(&self) -> Option<super::hit::Hits> {
        Some(super::hit::Hits {
            cache: self.cache?,
            ids: self.ids.clone(),
            rate: self.rate.clone(),
            access_log: self.access_log.clone(),
        })
    }

    /// The pass path's share of this proxy.
    pub fn passes(&self) -> super::pass::Passes {
        super::pass::Passes {
            state: self.state.clone(),
            ids: self.ids.clone(),
            rate: self.rate.clone(),
            acme: self.acme.clone(),
            access_log: self.access_log.clone(),
            cached: self.cache.is_some(),
            idle: Default::default(),
        }
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // The request's header is in: its deadline (`limits.header_timeout`) is met.
        super::conn::header_received(session.as_downstream().stream());
        let state = self.state.load_full();
        session.set_read_timeout(Some(state.config.limits.body_timeout));
        ctx.body_limit = state.config.limits.max_body_size;
        ctx.request_id = self.ids.next();
        ctx.state = Some(state.clone());
        let tls = session.digest().and_then(|d| d.ssl_digest.clone());
        let req = session.req_header();
        // CloudFront's limits, checked before anything else reads the request.
        // Only a request with body framing can frame it ambiguously; pingora keeps
        // Transfer-Encoding (and every Content-Length) in the parsed headers, so the raw
        // block is read only then, not on every GET.
        let raw = has_body(req)
            .then(|| session.as_downstream().as_http1().map(|h1| h1.get_headers_raw_bytes()))
            .flatten();
        let limits = &state.config.limits;
        let head = check_head(limits, req);
        let declared = declared_length(req);
        let refused = head
            .and_then(|()| declared.map_or(Ok(()), |n| limits::check_body(limits, n)))
            .err()
            .or_else(|| raw.and_then(|r| viewer::framing(&r)));
        if let Some(e) = refused {
            // The body (if any) is not read: the connection cannot carry another request.
            session.set_keepalive(None);
            return self.deny(session, ctx, e).await;
        }
        // The client: the peer, or the one behind a trusted proxy (rate limits, signed URLs).
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|peer| client_of(&state, req, peer.ip()));
        // Per-client request rate.
        if let Some(client) = client {
            if let Err(retry_after) = self.rate.take(&limits.per_client, client, limits::monotonic_ms()) {
                crate::telemetry::limited("requests");
                let mut e = limits::too_many("requests");
                e.retry_after = Some(retry_after);
                return self.deny(session, ctx, e).await;
            }
        }
        let declared = declares_body(req);
        let body = declared || !session.is_body_empty();
        let req = session.req_header();
        match decide(&state, &self.acme, req, body, tls.as_deref(), client) {
            Decision::Acme(answer) => {
                let mut resp = ResponseHeader::build(200, Some(2))?;
                resp.insert_header(header::CONTENT_TYPE, "text/plain")?;
                resp.insert_header(header::CONTENT_LENGTH, answer.len())?;
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(Bytes::from(answer)), true).await?;
                Ok(true)
            }
            Decision::Deny(at, e) => {
                (ctx.dist, ctx.behavior) = at;
                self.deny(session, ctx, e).await
            }
            Decision::Redirect(at, location) => {
                (ctx.dist, ctx.behavior) = at;
                ctx.cache_result = "Redirect";
                let mut resp = ResponseHeader::build(301, Some(4))?;
                resp.insert_header(header::LOCATION, location)?;
                resp.insert_header(header::CONTENT_LENGTH, "0")?;
                decorate(&mut resp, ctx)?;
                session.write_response_header(Box::new(resp), true).await?;
                Ok(true)
            }
            Decision::Preflight(at, answer) => {
                (ctx.dist, ctx.behavior) = at;
                ctx.cache_result = "Miss";
                let mut resp = ResponseHeader::build(if answer.is_some() { 200 } else { 403 }, Some(8))?;
                for (name, value) in answer.unwrap_or_default() {
                    resp.insert_header(name, value)?;
                }
                resp.insert_header(header::CONTENT_LENGTH, "0")?;
                decorate(&mut resp, ctx)?;
                session.write_response_header(Box::new(resp), true).await?;
                Ok(true)
            }
            Decision::Forward(plan) => {
                ctx.follow(*plan);
                Ok(false)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.next_peer()
    }

    /// A connection to the origin failed: that upstream is marked down, and the request
    /// tries again (another upstream, the same one for a single server) up to the origin's
    /// connection attempts, then the group's secondary.
    fn fail_to_connect(&self, session: &mut Session, _peer: &HttpPeer, ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
        let Some(origin) = ctx.connect_failed(&e) else {
            return e;
        };
        if ctx.attempts < origin.timeouts.attempts {
            e.set_retry(true);
        } else if ctx.fail_over(&session.req_header().method) {
            tracing::warn!(origin = %origin.name, error = %e, "origin group: failing over to the secondary");
            e.set_retry(true);
        }
        e
    }

    /// The origin failed after connecting (timeout, reset): a group fails over to its
    /// secondary if nothing has gone to the viewer yet.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        mut e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        ctx.exchange_failed(&e);
        // The origin that failed (a failover below moves `ctx` on to the secondary).
        let origin = ctx.origin.as_ref().map(|o| o.name.clone()).unwrap_or_default();
        e = e.more_context(format!("peer: {peer}"));
        // As pingora's default: a reused connection that broke may be retried, if the
        // request can be sent again.
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        if session.response_written().is_none() && ctx.fail_over(&session.req_header().method) {
            tracing::warn!(origin = %origin, error = %e, "origin group: failing over to the secondary");
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let cache = session.cache.enabled().then(|| session.cache.maybe_cache_meta());
        let client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let is_https = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        origin_request(upstream, ctx, cache, client_ip, is_https)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // An origin group's primary answering a failover status: the secondary gets the
        // request (GET, HEAD, OPTIONS), this answer never reaches the viewer or the cache.
        let status = resp.status.as_u16();
        let failover_on = match ctx.behavior().map(|b| &b.origin.kind) {
            Some(OriginKind::Group { failover_on, .. }) => failover_on.contains(&status),
            _ => false,
        };
        if failover_on && !ctx.failed_over {
            let primary = ctx.origin.as_ref().map(|o| o.name.clone()).unwrap_or_default();
            let upstream = ctx.upstream_label().to_string();
            if ctx.fail_over(&session.req_header().method) {
                telemetry::ORIGIN_FAILURES
                    .with_label_values(&[primary.as_str(), upstream.as_str(), "status"])
                    .inc();
                tracing::warn!(origin = %primary, status, "origin group: the primary answered {status}, failing over to the secondary");
                let mut e = Error::explain(HTTPStatus(status), format!("origin {primary} answered {status}"));
                e.set_retry(true);
                return Err(e);
            }
        }
        origin_response(resp, ctx)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        encode(body, end_of_stream, ctx)?;
        Ok(None)
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let (Some(storage), Some(_)) = (self.cache, &ctx.key) else {
            return Ok(());
        };
        if !matches!(session.req_header().method, Method::GET | Method::HEAD) {
            return Ok(());
        }
        session
            .cache
            .enable(storage, None, Some(&*UNCACHEABLE), Some(CACHE_LOCK.as_ref()), None);
        session
            .cache
            .set_max_file_size_bytes(usize::try_from(storage.max_object_size()).unwrap_or(usize::MAX));
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        let state = ctx.state.as_ref().ok_or_else(|| Error::new(InternalError))?;
        let key = ctx.key.as_ref().ok_or_else(|| Error::new(InternalError))?;
        let dist = &state.config.distributions[ctx.dist].name;
        let host = ctx.canon.as_ref().map_or("", |c| c.authority.as_str());
        Ok(CacheKey::new(
            key.primary.as_bytes(),
            EntryLabel::tag(dist, host, &key.path_and_query),
        ))
    }

    fn response_cache_filter(&self, session: &Session, resp: &ResponseHeader, ctx: &mut Ctx) -> Result<RespCacheable> {
        let now = SystemTime::now();
        let Some(ttl) = cache_ttl(ctx, &session.req_header().headers, resp, now) else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::OriginNotCache));
        };
        let mut stored = resp.clone();
        // One viewer's cookie is never replayed to another.
        stored.remove_header(&header::SET_COOKIE);
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        Ok(RespCacheable::Cacheable(CacheMeta::new(
            now + ttl.fresh,
            now,
            secs(ttl.stale_while_revalidate),
            secs(ttl.stale_if_error),
            stored,
        )))
    }

    fn cache_vary_filter(&self, meta: &CacheMeta, _ctx: &mut Ctx, req: &RequestHeader) -> Option<HashBinary> {
        variance(meta.headers(), &req.headers)
    }

    fn should_serve_stale(&self, _session: &mut Session, ctx: &mut Ctx, error: Option<&Error>) -> bool {
        match error {
            // stale-while-revalidate: the entry's own window decides.
            None => true,
            Some(e) => {
                let serve = e.esource() == &ErrorSource::Upstream
                    || matches!(e.etype(), HTTPStatus(s) if *s >= 500)
                    || matches!(
                        e.etype(),
                        ConnectTimedout | ConnectRefused | ConnectError | ReadTimedout
                    );
                ctx.stale_on_error |= serve;
                serve
            }
        }
    }

    async fn response_filter(&self, session: &mut Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        if session.cache.enabled() || ctx.key.is_some() {
            ctx.cache_result = match session.cache.phase() {
                CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating => "Hit",
                CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "RefreshHit",
                _ => "Miss",
            };
        }
        ctx.first_byte = Some(Instant::now());
        // RFC 9111 §4.4: a successful unsafe request invalidates the URL's entries, before
        // its answer goes out, so the viewer's next GET cannot still see the old copy.
        let method = &session.req_header().method;
        let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
        if unsafe_method && (200..400).contains(&resp.status.as_u16()) {
            // Only the entries of this distribution and host, for this path and its query
            // variants: a write to one host never evicts another's.
            if let (Some(cache), Some(canon), Some(state)) = (self.cache, &ctx.canon, &ctx.state) {
                let path = &canon.path;
                let paths = [
                    cache_policy::InvalidationPath::Exact(path.to_string()),
                    cache_policy::InvalidationPath::Prefix(format!("{path}?")),
                ];
                let dist = &state.config.distributions[ctx.dist].name;
                cache.invalidate_host(dist, Some(&canon.authority), &paths);
            }
        }
        let head = session.req_header().method == Method::HEAD;
        self.pages.apply(head, resp, ctx).await?;
        let origin = session
            .req_header()
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        viewer_headers(resp, ctx, origin)
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if ctx.error_page_active {
            // The page goes out with the first body chunk; the origin's error body is dropped.
            *body = ctx.error_page.take();
        }
        if session.req_header().method == Method::HEAD {
            // A HEAD miss is fetched from the origin with GET to fill the cache; the body
            // goes to the cache only. Writing it to the viewer's already-ended HTTP/2 stream
            // made pingora reset the stream (curl -I: "HTTP/2 stream was not closed cleanly").
            *body = None;
        }
        Ok(None)
    }

    /// A body without a Content-Length (chunked) is counted as it streams: past
    /// `limits.max_body_size` the request ends with 413 and the origin request is cut off.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(b) = body {
            ctx.body_read += b.len() as u64;
            if ctx.body_read > ctx.body_limit {
                session.set_keepalive(None);
                return Error::e_explain(HTTPStatus(413), "request body over limits.max_body_size");
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        // Both members of an origin group failed: a gateway timeout, as CloudFront.
        let group_exhausted = ctx.failed_over && e.esource() == &ErrorSource::Upstream;
        let status = failure_status(e, group_exhausted);
        if status > 0 {
            let origin = ctx.origin.as_ref().map(|o| o.name.clone()).unwrap_or_default();
            let upstream = ctx.upstream_label();
            tracing::warn!(request_id = %ctx.request_id, origin = %origin, upstream = %upstream, status, error = %e, "request failed");
            let err = failure_answer(status, group_exhausted, ctx.body_limit);
            // The connection is not reused after a failed proxy (below): say so, or an
            // HTTP/1.1 client sends its next request (maybe a POST it must not retry) into a
            // connection that is being closed. pingora's own error responses do the same.
            session.set_keepalive(None);
            // The origin failed before the request's body was read (a refused connection):
            // the body is read first, up to a bound, so that closing the connection does not
            // reset it under the viewer, who is still sending, before it reads the answer.
            let upstream_failed = e.esource() == &ErrorSource::Upstream;
            let declared = declared_length(session.req_header());
            if upstream_failed && declared.is_some_and(|n| n <= DRAIN_MAX) && !session.is_body_done() {
                let _ = tokio::time::timeout(DRAIN_FOR, session.drain_request_body()).await;
            }
            let _ = self.write_error(session, ctx, &err).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// A failure the edge answered itself is logged once, by `fail_to_proxy` (with the
    /// request id, origin and upstream); pingora's own line would repeat it at ERROR level.
    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, _error: &Error) -> bool {
        !ctx.request_id.is_empty()
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        ctx.release_upstream();
        let stale = matches!(session.cache.phase(), CachePhase::Stale | CachePhase::StaleUpdating);
        account(self.access_log.as_deref(), &Exchange::of(session), ctx, stale);
    }
}

impl Edge {
    /// Answers with a CloudFront-style XML error and ends the request.
    async fn deny(&self, session: &mut Session, ctx: &mut Ctx, err: EdgeError) -> Result<bool> {
        self.write_error(session, ctx, &err).await?;
        Ok(true)
    }

    async fn write_error(&self, session: &mut Session, ctx: &mut Ctx, err: &EdgeError) -> Result<()> {
        let (resp, body) = error_response(err, ctx)?;
        let head_only = session.req_header().method == Method::HEAD;
        session.write_response_header(Box::new(resp), head_only).await?;
        if !head_only {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}
