//! The per-request context every stage reads and writes: where the request landed, what
//! goes to the origin, what came back, and what the access log records.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::canonical;
use super::state::EdgeState;
use crate::config::model::Origin;
use crate::policy::cache_policy::CacheKeyParts;

/// What the edge did with a request, as `X-Cache: <result> from homefront` and the access
/// log's `x-edge-result-type` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    RefreshHit,
    Miss,
    /// The edge's own error answer.
    Error,
    /// A viewer-protocol redirect.
    Redirect,
    /// A response a viewer-request function generated.
    FunctionGenerated,
}

impl CacheResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "Hit",
            CacheResult::RefreshHit => "RefreshHit",
            CacheResult::Miss => "Miss",
            CacheResult::Error => "Error",
            CacheResult::Redirect => "Redirect",
            CacheResult::FunctionGenerated => "FunctionGeneratedResponse",
        }
    }

    /// The answer came from the cache.
    pub fn from_cache(self) -> bool {
        matches!(self, CacheResult::Hit | CacheResult::RefreshHit)
    }

    /// The `X-Cache` value.
    pub(crate) fn x_cache(self) -> http::HeaderValue {
        http::HeaderValue::from_static(match self {
            CacheResult::Hit => "Hit from homefront",
            CacheResult::RefreshHit => "RefreshHit from homefront",
            CacheResult::Miss => "Miss from homefront",
            CacheResult::Error => "Error from homefront",
            CacheResult::Redirect => "Redirect from homefront",
            CacheResult::FunctionGenerated => "FunctionGeneratedResponse from homefront",
        })
    }
}

/// Per-request state shared across the hooks.
pub struct Ctx {
    pub(crate) state: Option<Arc<EdgeState>>,
    pub(crate) dist: usize,
    pub(crate) behavior: usize,
    pub(crate) request_id: String,
    /// Path (and query, for HTTP origins) to request from the origin.
    pub(crate) upstream_target: String,
    /// `Hit`, `RefreshHit`, `Miss`, `Error`, `Redirect`: the `X-Cache` result.
    pub(crate) cache_result: CacheResult,
    pub(crate) origin_started: Option<Instant>,
    /// The request's cache key and what the origin gets; `None` when the behavior does not
    /// cache.
    pub(crate) key: Option<CacheKeyParts>,
    /// A stale entry was served because the origin failed.
    pub(crate) stale_on_error: bool,
    /// A custom error page replaces the response body: sent once, then nothing.
    pub(crate) error_page: Option<Bytes>,
    pub(crate) error_page_active: bool,
    /// When the request arrived, for the access log.
    pub(crate) started: Instant,
    pub(crate) started_at: u64,
    pub(crate) first_byte: Option<Instant>,
    /// The coding this viewer gets if the response is compressible (`behaviors[].compress`).
    pub(crate) compress: Option<super::compress::Coding>,
    /// Compressing the origin's body on its way to the cache and the viewer.
    pub(crate) encoder: Option<super::compress::Encoder>,
    /// The origin requests go to now: the behavior's, or a member of its group.
    pub(crate) origin: Option<Arc<Origin>>,
    /// The object path and the query an HTTP origin gets, to build the target again after a
    /// failover.
    pub(crate) object_path: String,
    pub(crate) http_query: Option<String>,
    /// Upstreams of the current origin that failed to connect; attempts made to it.
    pub(crate) tried: Vec<usize>,
    pub(crate) attempts: u8,
    /// The pool upstream in use (its in-flight count is held until the exchange ends).
    pub(crate) upstream: Option<(Arc<super::pool::Pool>, usize)>,
    /// The group's secondary is in use.
    pub(crate) failed_over: bool,
    /// The access key id the edge signed this origin request with, if it signed it.
    pub(crate) signed_as: Option<String>,
    /// `limits.max_body_size`, and the body bytes read so far.
    pub(crate) body_limit: u64,
    pub(crate) body_read: u64,
    /// The request's canonical host, path and query, once `decide` has computed them.
    pub(crate) canon: Option<canonical::Canonical>,
    /// The fields of the origin's 304 to a revalidation, for the stored entry's update.
    pub(crate) revalidated: Option<http::HeaderMap>,
    /// A range the cache did not hold, sent to the origin as asked (`edge::fill`).
    pub(crate) range_miss: bool,
    /// The request part of the viewer-response function's event (the behavior has one).
    pub(crate) viewer_event: Option<Box<super::functions::ViewerEvent>>,
    /// A failed viewer-response function's answer replaces the body: this one.
    pub(crate) replaced_body: std::sync::OnceLock<Bytes>,
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

    pub(crate) fn new() -> Ctx {
        Ctx {
            state: None,
            dist: usize::MAX,
            behavior: usize::MAX,
            request_id: String::new(),
            upstream_target: String::new(),
            cache_result: CacheResult::Miss,
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
            revalidated: None,
            range_miss: false,
            viewer_event: None,
            replaced_body: std::sync::OnceLock::new(),
        }
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

    pub(crate) fn behavior(&self) -> Option<&crate::config::model::Behavior> {
        let state = self.state.as_ref()?;
        state.config.distributions.get(self.dist)?.behaviors.get(self.behavior)
    }
}
