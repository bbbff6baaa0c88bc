//! The pingora `ProxyHttp` implementation. Thin: every decision is made by the pure
//! modules beside this one; the hooks read like the request's way (ARCHITECTURE.md).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, StatusCode};
use pingora::cache::key::HashBinary;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::{CacheKey, CacheMeta, CachePhase, NoCacheReason, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use super::account::{account, Exchange};
use super::admit::{admit, Handoff, Routed};
use super::answer::OwnAnswer;
use super::answer::{failure_answer, failure_status, own_answer, write_to_session};
use super::ctx::{CacheResult, Ctx};
use super::error_pages::ErrorPages;
use super::fill;
use super::route::{declares_body, has_body};
use super::shape::{cache_ttl, encode, origin_response, variance, viewer_headers};
use super::state::{Shared, UNCACHEABLE};
use super::stream;
use super::upstream::origin_request;
use crate::cache::EntryLabel;
use crate::config::model::OriginKind;
use crate::policy::cache_policy;
use crate::telemetry;

/// Collapses concurrent misses for one key into one origin request; a writer that takes
/// longer than this to fill the entry releases the waiting readers to the origin.
static CACHE_LOCK: LazyLock<Box<CacheKeyLockImpl>> = LazyLock::new(|| CacheLock::new_boxed(Duration::from_secs(30)));

pub struct Edge {
    shared: Arc<Shared>,
    /// Custom error pages.
    pages: ErrorPages,
}

impl Edge {
    pub fn new(shared: Arc<Shared>) -> Self {
        Edge {
            shared,
            pages: ErrorPages::new(),
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
        stream::header_received(session.as_downstream().stream());
        // Routed once: by the connection loop, which handed it over with the request (or
        // here, for a request that loop did not parse).
        let from_h2 = session
            .req_header_mut()
            .extensions_mut()
            .remove::<Handoff>()
            .and_then(|h| h.take());
        let req = session.req_header();
        let handed = from_h2
            .or_else(|| stream::take_handoff(session.as_downstream().stream()))
            .filter(|r| r.is_for(req));
        let routed = match handed {
            Some(routed) => routed,
            None => {
                let tls = session.digest().and_then(|d| d.ssl_digest.clone());
                let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
                let declared = declares_body(session.req_header());
                let body = declared || !session.is_body_empty();
                // pingora keeps Transfer-Encoding (and every Content-Length) in the parsed
                // headers, so the raw block is read only for a request with body framing.
                let raw = has_body(session.req_header())
                    .then(|| session.as_downstream().as_http1().map(|h1| h1.get_headers_raw_bytes()))
                    .flatten();
                let req = session.req_header();
                admit(&self.shared, req, peer, body, raw.as_deref(), tls.as_deref())
            }
        };
        let Routed {
            ctx: routed_ctx,
            answer,
            close,
            edited,
            ..
        } = *routed;
        // From here on, pingora serves the request its viewer-request function returned.
        if let Some(changed) = edited {
            *session.req_header_mut() = *changed;
        }
        *ctx = routed_ctx;
        if let Some(state) = &ctx.state {
            session.set_read_timeout(Some(state.config.limits.body_timeout));
        }
        if close {
            session.set_keepalive(None);
        }
        match answer {
            None => Ok(false),
            Some(answer) => {
                let head = session.req_header().method == Method::HEAD;
                let answer = own_answer(&answer, ctx, head)?;
                write_to_session(session, answer).await?;
                Ok(true)
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
        // request can be sent again; and a new one that failed before any answer, on
        // another upstream (`Ctx::retry_elsewhere`).
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else if client_reused {
            e.retry.decide_reuse(true);
        } else {
            let retry = session.response_written().is_none() && ctx.retry_elsewhere(&e);
            e.set_retry(retry);
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
        origin_response(resp, ctx)?;
        if ctx.range_miss && matches!(resp.status, StatusCode::PARTIAL_CONTENT | StatusCode::OK) {
            // The whole object, if the cache can keep it, follows in the background. (An
            // origin that ignores ranges answers the whole object with 200: the viewer gets
            // it, and the fill stores it for the next range.)
            let length = if resp.status == StatusCode::OK {
                resp.headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.trim().parse().ok())
            } else {
                resp.headers
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(fill::complete_length)
            };
            let authority = ctx.canon.as_ref().map_or("", |c| c.authority.as_str());
            if let (Some(storage), Some(key), Some(length)) = (self.shared.cache, &ctx.key, length) {
                if length <= storage.max_object_size() {
                    self.shared.fills.start(session, authority, &key.primary);
                }
            }
        }
        if resp.status == StatusCode::NOT_MODIFIED
            && session.cache.enabled()
            && session.cache.maybe_cache_meta().is_some()
        {
            // A revalidation's 304: its fields update the stored entry
            // (`response_cache_filter`).
            ctx.revalidated = Some(resp.headers.clone());
        }
        Ok(())
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
        let (Some(storage), Some(_)) = (self.shared.cache, &ctx.key) else {
            return Ok(());
        };
        if !matches!(session.req_header().method, Method::GET | Method::HEAD) {
            return Ok(());
        }
        // A range request never waits for another request's fill of the object: on a miss
        // its range goes to the origin (`cache_miss`).
        let lock = (!session.req_header().headers.contains_key(header::RANGE)).then(|| CACHE_LOCK.as_ref());
        session.cache.enable(storage, None, Some(&*UNCACHEABLE), lock, None);
        session
            .cache
            .set_max_file_size_bytes(usize::try_from(storage.max_object_size()).unwrap_or(usize::MAX));
        Ok(())
    }

    /// A GET for a range of an object the cache does not hold: the range goes to the
    /// origin as the viewer asked it, and the object is filled in the background
    /// (`upstream_response_filter`, `edge::fill`), rather than the viewer waiting for the
    /// whole object to arrive up to its range.
    fn cache_miss(&self, session: &mut Session, ctx: &mut Ctx) {
        let req = session.req_header();
        if req.method == Method::GET && req.headers.contains_key(header::RANGE) {
            session.cache.disable(NoCacheReason::Custom("range miss"));
            ctx.range_miss = true;
            return;
        }
        session.cache.cache_miss();
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
        // After a 304, the stored entry as the 304 updates it (pingora's merge updates only
        // its validators and freshness fields), and its freshness read from that.
        let updated = match ctx.revalidated.take() {
            Some(fields) => {
                let mut header = ResponseHeader::build(resp.status, Some(resp.headers.len()))?;
                for (name, value) in &cache_policy::update_from_304(&resp.headers, &fields) {
                    header.append_header(name.clone(), value.clone())?;
                }
                Some(header)
            }
            None => None,
        };
        let resp = updated.as_ref().unwrap_or(resp);
        let Some(ttl) = cache_ttl(ctx, &session.req_header().headers, resp, now) else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::OriginNotCache));
        };
        let mut stored = resp.clone();
        // One viewer's cookie is never replayed to another.
        stored.remove_header(&header::SET_COOKIE);
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        // The entry's age counts from when the response was made, not from when it arrived
        // (RFC 9111 §4.2.3): the `Age` of every answer from it, on either hit path.
        let age = ttl.age;
        let mut meta = CacheMeta::new(
            now + ttl.fresh,
            now,
            secs(ttl.stale_while_revalidate),
            secs(ttl.stale_if_error),
            stored,
        );
        if !age.is_zero() {
            meta.set_epoch_override(now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH));
        }
        Ok(RespCacheable::Cacheable(meta))
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
                CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating => CacheResult::Hit,
                CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => CacheResult::RefreshHit,
                _ => CacheResult::Miss,
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
            if let (Some(cache), Some(canon), Some(state)) = (self.shared.cache, &ctx.canon, &ctx.state) {
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
        viewer_headers(resp, ctx, origin)?;
        // A failed viewer-response function's answer replaces the body.
        if let Some(body) = ctx.replaced_body.take() {
            ctx.error_page = (!head).then_some(body);
            ctx.error_page_active = true;
        }
        Ok(())
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
        if let Some(sent) = session.response_written() {
            // The answer's header is out: the failure cuts the transfer short (HTTP/1.1
            // closes before the body's end, HTTP/2 resets the stream). Writing an answer now
            // would end it as if complete (HTTP/2) or inside the body (HTTP/1.1).
            if e.esource() == &ErrorSource::Upstream {
                let origin = ctx.origin.as_ref().map(|o| o.name.clone()).unwrap_or_default();
                tracing::warn!(request_id = %ctx.request_id, origin = %origin, error = %e, "answer cut short by the origin");
            }
            return FailToProxy {
                error_code: sent.status.as_u16(),
                can_reuse_downstream: false,
            };
        }
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
            // the writer reads the rest first, up to a bound, so that closing the connection
            // does not reset it under the viewer, who is still sending, before it reads the
            // answer.
            let head = session.req_header().method == Method::HEAD;
            if let Ok(answer) = own_answer(&OwnAnswer::Error(err), ctx, head) {
                let _ = write_to_session(session, answer).await;
            }
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
        account(self.shared.access_log.as_deref(), &Exchange::of(session), ctx, stale);
    }
}
