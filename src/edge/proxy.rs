//! The pingora `ProxyHttp` implementation. Thin: every decision is made by the pure
//! modules beside this one; the hooks read like the request's way through DESIGN.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Uri};
use pingora::cache::key::HashBinary;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::predictor::Predictor;
use pingora::cache::{CacheKey, CacheMeta, CachePhase, NoCacheReason, RespCacheable};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use super::behavior;
use super::canonical;
use super::distribution::Router;
use super::errors::EdgeError;
use super::viewer::{self, ViewerOutcome};
use super::{limits, variance};
use crate::cache::{DiskCache, EntryLabel};
use crate::config::model::{Config, Credential, Origin, OriginKind, Signing};
use crate::policy::cache_policy::{self, CacheKeyParts};
use crate::policy::{headers_policy, ip, signed, sigv4};
use crate::telemetry;
use crate::telemetry::access_log::{AccessLogger, Record};
use crate::util::Clock;

/// `Via` value the edge adds to origin requests and viewer responses.
const VIA: &str = "1.1 homefront";
/// Name in `X-Cache: <result> from homefront`.
pub const EDGE_NAME: &str = "homefront";
/// Per-request id header, on the origin request and on the response.
pub const REQUEST_ID_HEADER: &str = "x-amz-cf-id";

/// Everything the edge derives from one config generation.
pub struct EdgeState {
    pub config: Arc<Config>,
    pub router: Router,
    /// Port of the HTTPS listener, for redirects.
    pub https_port: u16,
    /// Where the built-in bucket store listens and the credential the edge signs with.
    pub bucket_store: Option<(SocketAddr, Credential)>,
    /// The time signed URLs are checked against.
    pub clock: Clock,
    /// Upstream health and load of each `http` origin, by origin name.
    pub pools: HashMap<String, Arc<super::pool::Pool>>,
}

impl EdgeState {
    pub fn new(config: Arc<Config>, clock: Clock) -> Self {
        let router = Router::new(&config.distributions);
        let https_port = config.listen.https.map(|a| a.port()).unwrap_or(443);
        let bucket_store = config
            .origin_server
            .as_ref()
            .and_then(|s| s.credentials.first().map(|c| (s.listen, c.clone())));
        let pools = config
            .origins
            .iter()
            .filter_map(|o| match &o.kind {
                OriginKind::Http {
                    upstreams,
                    balance,
                    health_check,
                } => Some((
                    o.name.clone(),
                    Arc::new(super::pool::Pool::new(
                        &o.name,
                        upstreams.clone(),
                        *balance,
                        health_check.clone(),
                    )),
                )),
                _ => None,
            })
            .collect();
        EdgeState {
            config,
            router,
            https_port,
            bucket_store,
            clock,
            pools,
        }
    }
}

/// Collapses concurrent misses for one key into one origin request; a writer that takes
/// longer than this to fill the entry releases the waiting readers to the origin.
static CACHE_LOCK: LazyLock<Box<CacheKeyLockImpl>> = LazyLock::new(|| CacheLock::new_boxed(Duration::from_secs(30)));

/// Keys whose last answer could not be cached (`no-store`, `private`, a zero TTL, too large),
/// up to 16 × 4096 of them, least recently marked forgotten first: their next request goes
/// straight to the origin, without a lookup or the lock above, so concurrent requests for an
/// uncacheable URL do not wait for each other (Varnish's hit-for-miss). An answer that can
/// be cached again is stored and clears the mark.
pub(crate) static UNCACHEABLE: LazyLock<Predictor<16>> = LazyLock::new(|| Predictor::new(4096, None));

pub struct Edge {
    state: Arc<ArcSwap<EdgeState>>,
    ids: Arc<RequestIds>,
    cache: Option<&'static DiskCache>,
    /// Fetches custom error pages from origins.
    connector: Connector,
    /// Recently fetched error pages by (distribution, path); `None`: the page is missing.
    pages: Mutex<HashMap<(String, String), FetchedPage>>,
    /// Access logs of the distributions that ask for them.
    access_log: Option<Arc<AccessLogger>>,
    /// ACME HTTP-01 answers being validated right now.
    acme: Arc<crate::tls::acme::Challenges>,
    /// Per-client request rates (`limits.per_client`).
    rate: Arc<limits::RequestRate>,
}

/// Milliseconds on a monotonic clock, for rate limits.
pub(crate) fn monotonic_ms() -> u64 {
    static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

/// When a page was fetched, and what came back.
type FetchedPage = (Instant, Option<ErrorPage>);

/// A custom error page's content.
#[derive(Clone)]
struct ErrorPage {
    content_type: String,
    body: Bytes,
}

/// How long a fetched error page is reused before it is fetched again.
const ERROR_PAGE_TTL: Duration = Duration::from_secs(10);
/// A request body the edge still reads, when the origin failed before it was sent, before
/// answering with the error and closing (`fail_to_proxy`); and for how long.
const DRAIN_MAX: u64 = 1 << 20;
const DRAIN_FOR: Duration = Duration::from_secs(2);
/// Largest error page served.
const ERROR_PAGE_MAX: usize = 1 << 20;

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
            connector: Connector::new(None),
            pages: Mutex::new(HashMap::new()),
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

/// Per-request state shared across the hooks.
pub struct Ctx {
    state: Option<Arc<EdgeState>>,
    dist: usize,
    behavior: usize,
    request_id: String,
    /// Path (and query, for HTTP origins) to request from the origin.
    upstream_target: String,
    /// `Hit`, `RefreshHit`, `Miss`, `Error`, `Redirect`: the `X-Cache` result.
    cache_result: &'static str,
    origin_started: Option<Instant>,
    /// The request's cache key and what the origin gets; `None` when the behavior does not
    /// cache.
    key: Option<CacheKeyParts>,
    /// A stale entry was served because the origin failed.
    stale_on_error: bool,
    /// A custom error page replaces the response body: sent once, then nothing.
    error_page: Option<Bytes>,
    error_page_active: bool,
    /// When the request arrived, for the access log.
    started: Instant,
    started_at: u64,
    first_byte: Option<Instant>,
    /// The coding this viewer gets if the response is compressible (`behaviors[].compress`).
    compress: Option<super::compress::Coding>,
    /// Compressing the origin's body on its way to the cache and the viewer.
    encoder: Option<super::compress::Encoder>,
    /// The origin requests go to now: the behavior's, or a member of its group.
    origin: Option<Arc<Origin>>,
    /// The object path and the query an HTTP origin gets, to build the target again after a
    /// failover.
    object_path: String,
    http_query: Option<String>,
    /// Upstreams of the current origin that failed to connect; attempts made to it.
    tried: Vec<usize>,
    attempts: u8,
    /// The pool upstream in use (its in-flight count is held until the exchange ends).
    upstream: Option<(Arc<super::pool::Pool>, usize)>,
    /// The group's secondary is in use.
    failed_over: bool,
    /// The access key id the edge signed this origin request with, if it signed it.
    signed_as: Option<String>,
    /// `limits.max_body_size`, and the body bytes read so far.
    body_limit: u64,
    body_read: u64,
    /// The request's canonical host, path and query, once `decide` has computed them.
    canon: Option<canonical::Canonical>,
}

impl Ctx {
    pub(crate) fn release_upstream(&mut self) {
        if let Some((pool, i)) = self.upstream.take() {
            pool.release(i);
        }
    }

    pub(crate) fn upstream_label(&self) -> &str {
        self.upstream
            .as_ref()
            .and_then(|(p, i)| p.labels.get(*i))
            .map_or("-", |l| l.as_str())
    }

    /// Switches a group's requests to its secondary, once: GET, HEAD and OPTIONS only.
    fn fail_over(&mut self, method: &Method) -> bool {
        if self.failed_over || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return false;
        }
        let Some(OriginKind::Group { secondary, .. }) = self.behavior().map(|b| b.origin.kind.clone()) else {
            return false;
        };
        let Some(target) = target_for(&secondary, &self.object_path, self.http_query.as_deref()) else {
            return false;
        };
        self.release_upstream();
        self.failed_over = true;
        self.signed_as = None;
        self.origin = Some(secondary);
        self.tried.clear();
        self.attempts = 0;
        self.upstream_target = target;
        true
    }
}

impl Ctx {
    /// The peer for the next origin request: the upstream its origin's pool picks (held
    /// in flight until released), counted as an origin request.
    pub(crate) fn next_peer(&mut self) -> Result<Box<HttpPeer>> {
        let state = self.state.clone().ok_or_else(|| Error::new(InternalError))?;
        let origin = self.origin.clone().ok_or_else(|| Error::new(InternalError))?;
        self.release_upstream();
        let (peer, upstream) = origin_peer(&state, &origin, self.object_path.as_bytes(), &self.tried)?;
        if let Some((pool, i)) = upstream {
            pool.acquire(i);
            self.upstream = Some((pool, i));
        }
        self.attempts += 1;
        telemetry::ORIGIN_REQUESTS
            .with_label_values(&[origin.name.as_str(), self.upstream_label()])
            .inc();
        self.origin_started.get_or_insert_with(Instant::now);
        Ok(peer)
    }

    /// A connection to the upstream in use failed: counted, and the upstream marked down
    /// when its origin has a health check (which alone can bring it back; without one,
    /// only this request moves on to another upstream). Returns the origin.
    pub(crate) fn connect_failed(&mut self, e: &Error) -> Option<Arc<Origin>> {
        let upstream = self.upstream_label().to_string();
        if let Some((pool, i)) = self.upstream.take() {
            pool.release(i);
            if pool.health_check.is_some() && pool.set_healthy(i, false) {
                tracing::warn!(origin = %pool.origin, upstream = %upstream, error = %e, "upstream marked down: it refused a connection");
                telemetry::ORIGIN_HEALTHY
                    .with_label_values(&[pool.origin.as_str(), upstream.as_str()])
                    .set(0);
            }
            self.tried.push(i);
        }
        let origin = self.origin.clone()?;
        let reason = if matches!(e.etype(), ConnectTimedout) {
            "timeout"
        } else {
            "connect"
        };
        telemetry::ORIGIN_FAILURES
            .with_label_values(&[origin.name.as_str(), upstream.as_str(), reason])
            .inc();
        Some(origin)
    }

    fn new() -> Ctx {
        Ctx {
            state: None,
            dist: usize::MAX,
            behavior: usize::MAX,
            request_id: String::new(),
            upstream_target: String::new(),
            cache_result: "Miss",
            origin_started: None,
            key: None,
            stale_on_error: false,
            error_page: None,
            error_page_active: false,
            started: Instant::now(),
            started_at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            first_byte: None,
            compress: None,
            encoder: None,
            origin: None,
            object_path: String::new(),
            http_query: None,
            tried: Vec::new(),
            attempts: 0,
            upstream: None,
            failed_over: false,
            signed_as: None,
            body_limit: u64::MAX,
            body_read: 0,
            canon: None,
        }
    }
    /// The context of a request the hit path serves from the memory tier: what
    /// `request_filter` would have set, and the `Hit` result.
    pub(crate) fn for_hit(state: Arc<EdgeState>, plan: Plan, request_id: String) -> Ctx {
        let mut ctx = Ctx::new();
        ctx.state = Some(state);
        ctx.follow(plan);
        ctx.request_id = request_id;
        ctx.cache_result = "Hit";
        ctx.first_byte = Some(Instant::now());
        ctx
    }

    /// An exchange with the upstream in use failed after connecting (`timeout` or `error`
    /// in `homefront_origin_failures_total`).
    pub(crate) fn exchange_failed(&self, e: &Error) {
        let reason = if matches!(e.etype(), ReadTimedout | WriteTimedout) {
            "timeout"
        } else {
            "error"
        };
        let origin = self.origin.as_ref().map_or("", |o| o.name.as_str());
        telemetry::ORIGIN_FAILURES
            .with_label_values(&[origin, self.upstream_label(), reason])
            .inc();
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

    pub(crate) fn origin(&self) -> Option<&Arc<Origin>> {
        self.origin.as_ref()
    }

    /// The response's body is being compressed (`origin_response` started an encoder).
    pub(crate) fn encoding(&self) -> bool {
        self.encoder.is_some()
    }

    pub(crate) fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The answer's header is ready to go to the viewer (the access log's time to first
    /// byte).
    pub(crate) fn mark_first_byte(&mut self) {
        self.first_byte = Some(Instant::now());
    }

    /// Takes on what `decide` planned for a request that goes to the cache and the origin.
    fn follow(&mut self, plan: Plan) {
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

    fn behavior(&self) -> Option<&crate::config::model::Behavior> {
        let state = self.state.as_ref()?;
        state.config.distributions.get(self.dist)?.behaviors.get(self.behavior)
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
            if let Err(retry_after) = self.rate.take(&limits.per_client, client, monotonic_ms()) {
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
        self.apply_error_page(session, resp, ctx).await?;
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

/// The origin request policy and the edge's own headers, applied to the request header that
/// goes to the origin (a copy of the viewer's). `cache`: the cache is in use (with the stored
/// entry being revalidated, if any); `client_ip`: the viewer's peer address.
pub(crate) fn origin_request(
    upstream: &mut RequestHeader,
    ctx: &mut Ctx,
    cache: Option<Option<&CacheMeta>>,
    client_ip: Option<std::net::IpAddr>,
    is_https: bool,
) -> Result<()> {
    let state = ctx.state.clone().ok_or_else(|| Error::new(InternalError))?;
    // Borrowed from this generation's config, not from `ctx` (which changes below).
    let behavior = state
        .config
        .distributions
        .get(ctx.dist)
        .and_then(|d| d.behaviors.get(ctx.behavior))
        .ok_or_else(|| Error::new(InternalError))?;
    let origin = ctx.origin.clone().ok_or_else(|| Error::new(InternalError))?;
    let uri: Uri = ctx
        .upstream_target
        .parse()
        .map_err(|_| Error::explain(InternalError, "origin request target is not a valid URI"))?;
    upstream.set_uri(uri);
    if ctx.key.is_some() && matches!(upstream.method, Method::GET | Method::HEAD) {
        // The origin request policy: viewer headers outside the key and the policy stay
        // at the edge.
        for name in cache_policy::headers_not_forwarded(&behavior.cache, &upstream.headers) {
            upstream.remove_header(&name);
        }
    }
    if let Some(meta) = cache {
        // Full GETs only, with the stored entry's validators when revalidating.
        pingora::cache::filters::upstream::request_filter(upstream, meta);
        if let Some(ae) = upstream.headers.get(header::ACCEPT_ENCODING) {
            let normalized = variance::normalize_accept_encoding(ae.to_str().unwrap_or(""));
            upstream.insert_header(header::ACCEPT_ENCODING, normalized)?;
        }
    }
    if let Some(origin) = &behavior.inject_origin {
        if upstream.headers.get(header::ORIGIN).is_none() {
            upstream.insert_header(header::ORIGIN, origin.clone())?;
        }
    }
    if let Some(k) = &ctx.key {
        // Only keyed cookies (and those the origin request policy adds) reach the
        // origin of a caching behavior.
        upstream.remove_header(&header::COOKIE);
        if let Some(c) = &k.forward_cookies {
            upstream.insert_header(header::COOKIE, c.as_str())?;
        }
    }

    // Always sent, as CloudFront does: X-Forwarded-For, Via and the request id.
    if let Some(ip) = client_ip.map(|ip| ip.to_string()) {
        let xff = match upstream.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.is_empty() => format!("{prev}, {ip}"),
            _ => ip,
        };
        upstream.insert_header("x-forwarded-for", xff)?;
    }
    let via = match upstream.headers.get(header::VIA).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev}, {VIA}"),
        _ => VIA.to_string(),
    };
    upstream.insert_header(header::VIA, via)?;
    upstream.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
    for (name, value) in &origin.custom_headers {
        upstream.insert_header(name.clone(), value.clone())?;
    }

    match &origin.kind {
        OriginKind::Bucket { .. } | OriginKind::S3 { .. } => {
            // Viewer credentials and S3 control headers never reach the bucket, unless
            // the origin's signing is no-override and the viewer signed the request.
            let keep_viewer =
                origin.signing == Signing::NoOverride && upstream.headers.contains_key(header::AUTHORIZATION);
            upstream.remove_header(&header::COOKIE);
            if !keep_viewer {
                upstream.remove_header(&header::AUTHORIZATION);
                let amz: Vec<_> = upstream
                    .headers
                    .keys()
                    .filter(|n| n.as_str().starts_with("x-amz-"))
                    .cloned()
                    .collect();
                for name in amz {
                    upstream.remove_header(&name);
                }
            }
            if keep_viewer {
                // The viewer's signature cannot cover the edge's request id, and a strict
                // S3 server refuses an unsigned x-amz-* header.
                upstream.remove_header(REQUEST_ID_HEADER);
            } else {
                upstream.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
            }
            let sign = !keep_viewer && origin.signing != Signing::Never;
            ctx.signed_as = sign_for_origin(upstream, &origin, &state, sign)?;
        }
        OriginKind::Http { .. } => {
            // TLS offload: the app sees the viewer's host (canonical, as the edge routed
            // it) and learns the scheme here.
            let proto = if is_https { "https" } else { "http" };
            upstream.insert_header("x-forwarded-proto", proto)?;
            match ctx.canon.as_ref().map(|c| c.authority.as_str()) {
                Some(host) if !host.is_empty() => upstream.insert_header(header::HOST, host)?,
                _ => {
                    upstream.remove_header(&header::HOST);
                }
            }
        }
        OriginKind::Group { .. } => return Err(Error::explain(InternalError, "a group is not reached directly")),
    }
    Ok(())
}

/// An origin's answer as the edge takes it, before the cache and the viewer: a bucket's
/// 403 to the edge's own signature is logged, and a compressible body gets `Vary:
/// Accept-Encoding` and, when this viewer takes a coding, an encoder (`ctx.encoder`).
pub(crate) fn origin_response(resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
    use super::compress;
    if resp.status.as_u16() == 403 {
        // A bucket refusing the edge's own signature is a configuration error: say so
        // where the operator looks (the viewer gets the bucket's 403 as it is).
        if let (Some(origin), Some(key_id)) = (&ctx.origin, &ctx.signed_as) {
            tracing::warn!(
                "origin {} answered 403 to a request the edge signed as {key_id}: check that credential's secret and the bucket's policy (request {})",
                origin.name,
                ctx.request_id
            );
        }
    }
    if !ctx.behavior().is_some_and(|b| b.compress) {
        return Ok(());
    }
    let status = resp.status.as_u16();
    if status == 304 {
        // A revalidation of a compressed variant: its stored ETag stays weak.
        if ctx.compress.is_some() {
            if let Some(etag) = resp.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
                let weak = compress::weak_etag(etag);
                resp.insert_header(header::ETAG, weak)?;
            }
        }
        return Ok(());
    }
    if !compress::compressible(status, &resp.headers) {
        return Ok(());
    }
    // Compressible for some viewer: every copy varies by Accept-Encoding.
    if !cache_policy::varies_by(&resp.headers, "accept-encoding") {
        resp.append_header(header::VARY, "Accept-Encoding")?;
    }
    let Some(coding) = ctx.compress else {
        return Ok(());
    };
    let encoder = super::compress::Encoder::new(coding)
        .map_err(|e| Error::explain(InternalError, format!("cannot start {}: {e}", coding.token())))?;
    ctx.encoder = Some(encoder);
    resp.insert_header(header::CONTENT_ENCODING, coding.token())?;
    resp.remove_header(&header::CONTENT_LENGTH);
    if let Some(etag) = resp.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        let weak = compress::weak_etag(etag);
        resp.insert_header(header::ETAG, weak)?;
    }
    Ok(())
}

/// Compresses a chunk of the origin's body with the response's encoder, if it has one
/// (`end_of_stream`: the last, which ends the encoding).
pub(crate) fn encode(body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut Ctx) -> Result<()> {
    if let Some(encoder) = ctx.encoder.as_mut() {
        let input = body.as_deref().unwrap_or(&[]);
        if !input.is_empty() || end_of_stream {
            let out = encoder
                .encode(input, end_of_stream)
                .map_err(|e| Error::explain(InternalError, format!("compressing the response: {e}")))?;
            *body = Some(out);
        }
        if end_of_stream {
            // Finished: the encoder's trailer is out; nothing may follow it.
            ctx.encoder = None;
        }
    }
    Ok(())
}

/// The edge's own error answer (a CloudFront-style XML body) and its header.
pub(crate) fn error_response(err: &EdgeError, ctx: &mut Ctx) -> Result<(ResponseHeader, Bytes)> {
    ctx.cache_result = "Error";
    let body = err.body();
    let mut resp = ResponseHeader::build(err.status, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, "text/xml")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    if let Some(s) = err.retry_after {
        resp.insert_header(header::RETRY_AFTER, s.to_string())?;
    }
    decorate(&mut resp, ctx)?;
    Ok((resp, body))
}

/// The answer to a request the edge could not complete (`status`, from [`failure_status`]).
pub(crate) fn failure_answer(status: u16, group_exhausted: bool, body_limit: u64) -> EdgeError {
    match status {
        502 => EdgeError::new(
            502,
            "BadGateway",
            "The edge could not connect to the origin or the origin sent an invalid response.",
        ),
        504 if group_exhausted => EdgeError::new(
            504,
            "GatewayTimeout",
            "Neither origin of the group could answer the request.",
        ),
        504 => EdgeError::new(504, "GatewayTimeout", "The origin did not answer in time."),
        400 => EdgeError::new(400, "BadRequest", "The request could not be parsed."),
        408 => EdgeError::new(408, "RequestTimeout", "The request body did not arrive in time."),
        413 => limits::body_too_large(body_limit),
        s => EdgeError::new(s, "InternalError", "The edge could not complete the request."),
    }
}

/// The status of a failed request (0: none, the viewer is gone).
pub(crate) fn failure_status(e: &Error, group_exhausted: bool) -> u16 {
    match e.etype() {
        _ if group_exhausted => 504,
        HTTPStatus(code) => *code,
        // The viewer stopped sending its body (`limits.body_timeout`).
        ReadTimedout if e.esource() == &ErrorSource::Downstream => 408,
        ConnectTimedout | ReadTimedout | WriteTimedout => 504,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// How long the behavior's cache keeps an origin's answer to a request with `req_headers`,
/// or `None`: it does not.
pub(crate) fn cache_ttl(
    ctx: &Ctx,
    req_headers: &http::HeaderMap,
    resp: &ResponseHeader,
    now: SystemTime,
) -> Option<cache_policy::Ttl> {
    let (state, behavior) = (ctx.state.as_ref()?, ctx.behavior()?);
    let origin = ctx.origin.as_ref()?;
    let authorization = req_headers.contains_key(header::AUTHORIZATION);
    // A bucket answers the viewer's own credentials only under `signing: no-override`
    // (`origin_request`): what they unlocked is never stored for other viewers, whatever
    // the object's Cache-Control says (object metadata speaks of the object, not of who
    // may read it).
    if authorization && origin.signing == Signing::NoOverride && !matches!(origin.kind, OriginKind::Http { .. }) {
        return None;
    }
    // Otherwise the bucket store never sees the viewer's Authorization (the edge signs), so
    // only HTTP origins answer authorized requests (RFC 9111 §3.5).
    let authorization = authorization && matches!(origin.kind, OriginKind::Http { .. });
    let dist = &state.config.distributions[ctx.dist];
    cache_policy::ttl(
        &behavior.cache,
        resp.status,
        &resp.headers,
        authorization,
        dist.error_ttl(resp.status.as_u16()),
        now,
    )
}

/// The metrics and the access log line of one finished exchange. `stale`: a stale entry
/// was served.
pub(crate) fn account(access_log: Option<&AccessLogger>, ex: &Exchange, ctx: &Ctx, stale: bool) {
    let status = ex.resp.map(|r| r.status.as_u16()).unwrap_or(0);
    let origin = ctx.origin.as_ref().map(|o| o.name.as_str());
    let (dist, behavior, origin) = match (ctx.state.as_ref(), ctx.behavior()) {
        (Some(s), Some(b)) => (
            s.config.distributions[ctx.dist].name.as_str(),
            b.path_pattern_text.as_str(),
            origin,
        ),
        (Some(s), None) if ctx.dist < s.config.distributions.len() => {
            (s.config.distributions[ctx.dist].name.as_str(), "-", None)
        }
        _ => ("-", "-", None),
    };
    telemetry::REQUESTS
        .with_label_values(&[dist, behavior, telemetry::status_class(status), ctx.cache_result])
        .inc();
    telemetry::RESPONSE_BYTES
        .with_label_values(&[dist])
        .inc_by(ex.body_sent as u64);
    if ctx.key.is_some() {
        let source = match ctx.cache_result {
            "Hit" | "RefreshHit" => "cache",
            _ => "origin",
        };
        telemetry::CACHE_BYTES
            .with_label_values(&[dist, behavior, source])
            .inc_by(ex.body_sent as u64);
        if stale {
            let reason = if ctx.stale_on_error {
                "origin_error"
            } else {
                "revalidating"
            };
            telemetry::CACHE_STALE
                .with_label_values(&[dist, behavior, reason])
                .inc();
        }
    }
    if let (Some(logger), Some(state)) = (access_log, &ctx.state) {
        if let Some(format) = state.config.distributions.get(ctx.dist).and_then(|d| d.access_log) {
            logger.log(format, access_record(ex, ctx, dist, status));
        }
    }
    if let (Some(started), Some(origin)) = (ctx.origin_started, origin) {
        telemetry::ORIGIN_DURATION
            .with_label_values(&[origin])
            .observe(started.elapsed().as_secs_f64());
    }
}

impl Edge {
    /// CloudFront's custom error responses: the origin's error (fresh or from the cache) is
    /// answered with the configured page and status. Without the page (missing, not 200,
    /// too large, origin down), or when the origin's error has an empty body, the origin's
    /// error goes out unchanged.
    async fn apply_error_page(&self, session: &Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        let Some(state) = ctx.state.clone() else { return Ok(()) };
        let Some(dist) = state.config.distributions.get(ctx.dist) else {
            return Ok(());
        };
        let Some(er) = dist.error_response(resp.status.as_u16()) else {
            return Ok(());
        };
        let Some(page_path) = er.page_path.as_deref() else {
            return Ok(());
        };
        // pingora ends a header-only response with its header, leaving no body to replace:
        // an origin error with an empty body goes out as it is.
        let empty = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(());
        }
        let host = ctx.canon.as_ref().map_or("", |c| c.authority.as_str()).to_string();
        let Some(page) = self.error_page(&state, ctx.dist, &host, page_path).await else {
            return Ok(());
        };
        resp.set_status(er.response_code.unwrap_or(resp.status.as_u16()))?;
        for h in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CONTENT_RANGE,
            header::CONTENT_ENCODING,
            header::ACCEPT_RANGES,
        ] {
            resp.remove_header(&h);
        }
        resp.insert_header(header::CONTENT_TYPE, page.content_type.as_str())?;
        resp.insert_header(header::CONTENT_LENGTH, page.body.len().to_string())?;
        ctx.error_page_active = true;
        ctx.error_page = (session.req_header().method != Method::HEAD).then_some(page.body);
        Ok(())
    }

    /// The error page at `path`, fetched through the behavior that matches it (reused for
    /// [`ERROR_PAGE_TTL`]).
    async fn error_page(&self, state: &EdgeState, dist_idx: usize, host: &str, path: &str) -> Option<ErrorPage> {
        let dist = state.config.distributions.get(dist_idx)?;
        let memo_key = (dist.name.clone(), path.to_string());
        if let Some((at, page)) = self.pages.lock().ok()?.get(&memo_key) {
            if at.elapsed() < ERROR_PAGE_TTL {
                return page.clone();
            }
        }
        let fetched = tokio::time::timeout(Duration::from_secs(5), self.fetch_page(state, dist_idx, host, path))
            .await
            .ok()
            .flatten();
        if fetched.is_none() {
            tracing::warn!(distribution = %dist.name, path, "custom error page unavailable; sending the origin's error");
        }
        self.pages
            .lock()
            .ok()?
            .insert(memo_key, (Instant::now(), fetched.clone()));
        fetched
    }

    async fn fetch_page(&self, state: &EdgeState, dist_idx: usize, host: &str, path: &str) -> Option<ErrorPage> {
        let dist = state.config.distributions.get(dist_idx)?;
        let (_, behavior) = behavior::select(dist, path)?;
        let origin = match &behavior.origin.kind {
            OriginKind::Group { primary, .. } => primary,
            _ => &behavior.origin,
        };
        let target = origin_target(origin, path)?;
        let (peer, _) = origin_peer(state, origin, path.as_bytes(), &[]).ok()?;
        let mut req = RequestHeader::build(Method::GET, target.as_bytes(), None).ok()?;
        req.insert_header(header::VIA, VIA).ok()?;
        for (name, value) in &origin.custom_headers {
            req.insert_header(name.clone(), value.clone()).ok()?;
        }
        match &origin.kind {
            OriginKind::Bucket { .. } | OriginKind::S3 { .. } => {
                let sign = origin.signing != Signing::Never;
                sign_for_origin(&mut req, origin, state, sign).ok()?;
            }
            OriginKind::Http { .. } | OriginKind::Group { .. } => req.insert_header(header::HOST, host).ok()?,
        }
        let (mut http, _) = self.connector.get_http_session(&*peer).await.ok()?;
        http.write_request_header(Box::new(req)).await.ok()?;
        http.finish_request_body().await.ok()?;
        http.read_response_header().await.ok()?;
        let resp = http.response_header()?;
        if resp.status != 200 {
            return None;
        }
        let content_type = resp
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/html")
            .to_string();
        let mut body = Vec::new();
        while let Some(chunk) = http.read_response_body().await.ok()? {
            body.extend_from_slice(&chunk);
            if body.len() > ERROR_PAGE_MAX {
                return None;
            }
        }
        Some(ErrorPage {
            content_type,
            body: Bytes::from(body),
        })
    }

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

/// What the access log records of one finished request.
/// The variance of a stored response (`stored`: its headers) for a request: pingora keeps
/// one entry per variance under the same primary key.
pub(crate) fn variance(stored: &http::HeaderMap, req: &http::HeaderMap) -> Option<HashBinary> {
    Some(variance::variance_key(stored, req))
}

/// The edge's own response headers: `X-Cache`, `Via` and the request id.
fn decorate(resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
    use http::{HeaderName, HeaderValue};
    // Static names and values where they are known (this runs on every response).
    const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
    const ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    let x_cache = match ctx.cache_result {
        "Hit" => HeaderValue::from_static("Hit from homefront"),
        "Miss" => HeaderValue::from_static("Miss from homefront"),
        "RefreshHit" => HeaderValue::from_static("RefreshHit from homefront"),
        "Error" => HeaderValue::from_static("Error from homefront"),
        "Redirect" => HeaderValue::from_static("Redirect from homefront"),
        other => HeaderValue::try_from(format!("{other} from {EDGE_NAME}"))
            .map_err(|e| Error::because(InternalError, "x-cache", e))?,
    };
    resp.insert_header(X_CACHE, x_cache)?;
    resp.append_header(header::VIA, HeaderValue::from_static(VIA))?;
    resp.insert_header(
        ID,
        HeaderValue::try_from(ctx.request_id.as_str()).map_err(|e| Error::because(InternalError, "request id", e))?,
    )?;
    Ok(())
}

/// The last changes to a response for the viewer, from the cache or the origin: the
/// behavior's response headers policy (`origin`: the request's Origin, for CORS), `Vary:
/// Origin` on a cached behavior, and the edge's own headers.
pub(crate) fn viewer_headers(resp: &mut ResponseHeader, ctx: &Ctx, origin: Option<&str>) -> Result<()> {
    if let Some(policy) = ctx.behavior().and_then(|b| b.headers.as_ref()) {
        for change in headers_policy::changes(policy, origin, &resp.headers) {
            match change {
                headers_policy::Change::Set(n, v) => resp.insert_header(n, v)?,
                headers_policy::Change::Remove(n) => {
                    resp.remove_header(&n);
                }
            }
        }
    }
    if ctx.key.is_some() {
        // Tell browser caches too: without it, a copy cached for an <img> is reused for a
        // later fetch() with CORS, and the browser blocks it.
        if !cache_policy::varies_by(&resp.headers, "origin") {
            resp.append_header(header::VARY, "Origin")?;
        }
    }
    decorate(resp, ctx)
}

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
fn declared_length(req: &RequestHeader) -> Option<u64> {
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

/// One finished exchange as the metrics and the access log see it, whichever path served it.
pub(crate) struct Exchange<'a> {
    pub req: &'a RequestHeader,
    pub resp: Option<&'a ResponseHeader>,
    pub peer: Option<SocketAddr>,
    pub ssl: Option<Arc<pingora::protocols::tls::SslDigest>>,
    pub body_sent: usize,
    pub body_read: usize,
}

impl<'a> Exchange<'a> {
    fn of(session: &'a Session) -> Exchange<'a> {
        Exchange {
            req: session.req_header(),
            resp: session.response_written(),
            peer: session.client_addr().and_then(|a| a.as_inet()).copied(),
            ssl: session.digest().and_then(|d| d.ssl_digest.clone()),
            body_sent: session.body_bytes_sent(),
            body_read: session.body_bytes_read(),
        }
    }
}

fn access_record(ex: &Exchange, ctx: &Ctx, dist: &str, status: u16) -> Record {
    let req = ex.req;
    let h = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let rh = |name: &str| {
        ex.resp
            .and_then(|r| r.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let peer = ex.peer;
    let ssl = ex.ssl.as_ref();
    let canon = ctx.canon.as_ref();
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req.uri.to_string().len()
        + 16;
    let range = rh("content-range").and_then(|r| {
        let (span, _) = r.strip_prefix("bytes ")?.split_once('/')?;
        let (a, b) = span.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    });
    Record {
        distribution: dist.to_string(),
        time: ctx.started_at,
        sc_bytes: ex.body_sent as u64,
        c_ip: peer.map(|a| a.ip().to_string()).unwrap_or_default(),
        c_port: peer.map(|a| a.port()).unwrap_or(0),
        method: req.method.as_str().to_string(),
        host: dist.to_string(),
        uri_stem: canon.map_or_else(
            || String::from_utf8_lossy(req.raw_path()).into_owned(),
            |c| c.path.clone(),
        ),
        status,
        referer: h("referer"),
        user_agent: h("user-agent"),
        query: match canon {
            Some(c) => c.query.clone(),
            None => req.uri.query().map(str::to_string),
        },
        cookie: cookie_header(req),
        result: ctx.cache_result.to_string(),
        request_id: ctx.request_id.clone(),
        host_header: match canon {
            Some(c) => Some(c.authority.clone()),
            None => req
                .headers
                .get(header::HOST)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        },
        protocol: if ssl.is_some() { "https" } else { "http" },
        cs_bytes: (header_bytes + ex.body_read) as u64,
        time_taken: ctx.started.elapsed().as_secs_f64(),
        forwarded_for: h("x-forwarded-for"),
        ssl_protocol: ssl.map(|s| s.version.to_string()),
        ssl_cipher: ssl.map(|s| s.cipher.to_string()),
        protocol_version: match req.version {
            http::Version::HTTP_2 => "HTTP/2.0".into(),
            http::Version::HTTP_10 => "HTTP/1.0".into(),
            _ => "HTTP/1.1".into(),
        },
        time_to_first_byte: ctx.first_byte.map(|t| t.duration_since(ctx.started).as_secs_f64()),
        content_type: rh("content-type"),
        content_len: rh("content-length").and_then(|v| v.parse().ok()),
        range,
    }
}

/// The origin request path for an object path through `origin` (no query string); `None`
/// when it would name no object (an empty bucket key would list the bucket).
fn origin_target(origin: &Origin, object_path: &str) -> Option<String> {
    let key = format!("{}{}", origin.origin_path, object_path);
    match &origin.kind {
        OriginKind::Bucket { bucket } => (key.len() > 1).then(|| format!("/{bucket}{key}")),
        OriginKind::S3 {
            bucket, virtual_host, ..
        } => (key.len() > 1).then(|| if *virtual_host { key } else { format!("/{bucket}{key}") }),
        OriginKind::Http { .. } => Some(key),
        OriginKind::Group { .. } => None,
    }
}

/// The request target for `origin`: the object path under its origin path, plus the query
/// string for HTTP origins (bucket origins get none: it would select other S3 operations).
fn target_for(origin: &Origin, object_path: &str, http_query: Option<&str>) -> Option<String> {
    let mut t = origin_target(origin, object_path)?;
    if let (OriginKind::Http { .. }, Some(q)) = (&origin.kind, http_query) {
        t.push('?');
        t.push_str(q);
    }
    Some(t)
}

/// Where a request to `origin` goes: the bucket store, the s3 endpoint, or the upstream of
/// an http origin its pool picks for `key` among those not `tried` (any upstream again when
/// all were), with the origin's timeouts.
#[allow(clippy::type_complexity)]
fn origin_peer(
    state: &EdgeState,
    origin: &Origin,
    key: &[u8],
    tried: &[usize],
) -> Result<(Box<HttpPeer>, Option<(Arc<super::pool::Pool>, usize)>)> {
    let mut upstream = None;
    let mut peer = match &origin.kind {
        OriginKind::Bucket { .. } => {
            let (addr, _) = state
                .bucket_store
                .as_ref()
                .ok_or_else(|| Error::explain(InternalError, "bucket origin without a bucket store"))?;
            HttpPeer::new(*addr, false, String::new())
        }
        OriginKind::S3 { address, tls, sni, .. } => HttpPeer::new(*address, *tls, sni.clone()),
        OriginKind::Http { .. } => {
            let pool = state
                .pools
                .get(&origin.name)
                .ok_or_else(|| Error::explain(InternalError, "http origin without its pool"))?;
            let i = pool
                .pick(key, tried)
                .or_else(|| pool.pick(key, &[]))
                .ok_or_else(|| Error::explain(InternalError, "http origin without upstreams"))?;
            let u = &pool.upstreams[i];
            upstream = Some((pool.clone(), i));
            HttpPeer::new(u.address, u.tls, u.sni.clone())
        }
        OriginKind::Group { .. } => {
            return Err(Error::explain(InternalError, "a group is not reached directly"));
        }
    };
    peer.options.connection_timeout = Some(origin.timeouts.connect);
    peer.options.total_connection_timeout = Some(origin.timeouts.connect);
    peer.options.read_timeout = Some(origin.timeouts.response);
    Ok((Box::new(peer), upstream))
}

/// Signs a request to the built-in bucket store with SigV4 (the edge's own credential).
/// Sets the Host an S3-style origin expects and, when `sign`, signs the request with SigV4
/// (the built-in store with the first `origin_server` credential, an `s3` origin with its own).
/// Returns the access key id it signed with.
fn sign_for_origin(req: &mut RequestHeader, origin: &Origin, state: &EdgeState, sign: bool) -> Result<Option<String>> {
    let (host, region, cred) = match &origin.kind {
        OriginKind::Bucket { .. } => {
            let (addr, cred) = state.bucket_store.as_ref().ok_or_else(|| Error::new(InternalError))?;
            (addr.to_string(), "us-east-1", Some(cred))
        }
        OriginKind::S3 {
            host,
            region,
            credential,
            ..
        } => (host.clone(), region.as_str(), credential.as_ref()),
        OriginKind::Http { .. } | OriginKind::Group { .. } => return Ok(None),
    };
    req.insert_header(header::HOST, host.as_str())?;
    let Some(cred) = cred.filter(|_| sign) else {
        return Ok(None);
    };
    // Every x-amz-* header the request carries is signed (strict S3 servers refuse an
    // unsigned one), the request id included; the signer adds its own two.
    let amz: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| {
            n.as_str().starts_with("x-amz-") && !matches!(n.as_str(), "x-amz-date" | "x-amz-content-sha256")
        })
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let sig = sigv4::sign(
        &sigv4::SignInput {
            method: req.method.as_str(),
            path: req.uri.path(),
            query: req.uri.query(),
            host: &host,
            extra_headers: &amz,
            payload_hash: sigv4::UNSIGNED_PAYLOAD,
            region,
            service: "s3",
        },
        &cred.access_key_id,
        &cred.secret_access_key,
        SystemTime::now(),
    );
    req.insert_header("x-amz-date", sig.amz_date)?;
    req.insert_header("x-amz-content-sha256", sigv4::UNSIGNED_PAYLOAD)?;
    req.insert_header(header::AUTHORIZATION, sig.authorization)?;
    Ok(Some(cred.access_key_id.clone()))
}

/// All Cookie headers joined with `; ` (HTTP/2 clients send one header per cookie).
fn cookie_header(req: &RequestHeader) -> Option<String> {
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

/// Request ids: a per-process random prefix and a counter, 32 hex digits; unique, cheap.
pub(crate) struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let mut buf = [0u8; 8];
        // Falls back to the time if the OS RNG is unavailable; ids only need to be unique.
        if openssl::rand::rand_bytes(&mut buf).is_err() {
            let t = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            buf = (t.as_nanos() as u64).to_le_bytes();
        }
        RequestIds {
            prefix: u64::from_le_bytes(buf),
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> String {
        // 32 hex digits, written directly (`format!` was most of this function's cost).
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; 32];
        for (i, v) in [self.prefix, n].into_iter().enumerate() {
            for j in 0..16 {
                out[i * 16 + j] = HEX[((v >> (60 - 4 * j)) & 0xf) as usize];
            }
        }
        out.iter().map(|&b| b as char).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_response_says_its_result_via_and_request_id() {
        for result in ["Hit", "Miss", "RefreshHit", "Error", "Redirect", "Other"] {
            let mut ctx = Ctx::new();
            ctx.cache_result = result;
            ctx.request_id = "0123456789abcdef0123456789abcdef".into();
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.append_header("via", "1.1 upstream").unwrap();
            decorate(&mut resp, &ctx).unwrap();
            assert_eq!(resp.headers["x-cache"], format!("{result} from homefront"));
            let via: Vec<_> = resp.headers.get_all("via").iter().collect();
            assert_eq!(via, ["1.1 upstream", "1.1 homefront"]);
            assert_eq!(resp.headers["x-amz-cf-id"], "0123456789abcdef0123456789abcdef");
        }
    }

    #[test]
    fn what_a_viewers_own_credentials_unlock_at_a_bucket_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("origin.key"), "secret").unwrap();
        let text = r#"
origins:
  site: { bucket: site, signing: no-override }
  app: { http: "127.0.0.1:9999" }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "/app/*", origin: app }
      - { path_pattern: "*", origin: site }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:9000"
  credentials: [ { access_key_id: k, secret_access_key_file: origin.key } ]
"#;
        let loaded = crate::config::load_str("t.yaml", text, dir.path()).unwrap();
        let state = Arc::new(EdgeState::new(Arc::new(loaded.config), Clock::System));
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("cache-control", "public, max-age=60").unwrap();
        let mut authorized = http::HeaderMap::new();
        authorized.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=viewer/...".parse().unwrap(),
        );
        let ttl = |behavior: usize, headers: &http::HeaderMap| {
            let mut ctx = Ctx::new();
            ctx.state = Some(state.clone());
            (ctx.dist, ctx.behavior) = (0, behavior);
            ctx.origin = Some(state.config.distributions[0].behaviors[behavior].origin.clone());
            cache_ttl(&ctx, headers, &resp, SystemTime::now()).map(|t| t.fresh)
        };
        // The bucket: stored for the edge's own signature, never for a viewer's.
        assert_eq!(ttl(1, &http::HeaderMap::new()), Some(Duration::from_secs(60)));
        assert_eq!(ttl(1, &authorized), None);
        // An app saying `public` for an authorized request may be stored (RFC 9111 §3.5).
        assert_eq!(ttl(0, &authorized), Some(Duration::from_secs(60)));
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_distinct() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 32);
            let (prefix, n) = id.split_at(16);
            assert_eq!(u64::from_str_radix(prefix, 16).unwrap(), ids.prefix);
            assert!(u64::from_str_radix(n, 16).is_ok());
        }
        assert_eq!(
            u64::from_str_radix(&b[16..], 16).unwrap(),
            u64::from_str_radix(&a[16..], 16).unwrap() + 1
        );
    }
}
