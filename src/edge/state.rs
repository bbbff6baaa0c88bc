//! What the edge derives from one config generation, and the process-wide cache predictor.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use pingora::cache::predictor::Predictor;

use super::account::RequestIds;
use super::limits::RequestRate;
use crate::cache::DiskCache;
use crate::telemetry::access_log::AccessLogger;
use crate::tls::acme::Challenges;

use super::distribution::Router;
use crate::config::model::{Config, Credential, OriginKind};
use crate::util::Clock;

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

/// Keys whose last answer could not be cached (`no-store`, `private`, a zero TTL, too large),
/// up to 16 × 4096 of them, least recently marked forgotten first: their next request goes
/// straight to the origin, without a lookup or the lock above, so concurrent requests for an
/// uncacheable URL do not wait for each other (Varnish's hit-for-miss). An answer that can
/// be cached again is stored and clears the mark.
pub(crate) static UNCACHEABLE: LazyLock<Predictor<16>> = LazyLock::new(|| Predictor::new(4096, None));

/// What every path serving requests shares for the process's life (config generations
/// come and go in `state`).
pub struct Shared {
    pub(crate) state: Arc<ArcSwap<EdgeState>>,
    pub(crate) ids: RequestIds,
    /// Per-client request rates (`limits.per_client`).
    pub(crate) rate: RequestRate,
    /// ACME HTTP-01 answers being validated right now.
    pub(crate) acme: Arc<Challenges>,
    /// Access logs of the distributions that ask for them.
    pub(crate) access_log: Option<Arc<AccessLogger>>,
    /// The process's cache storage; `None` serves everything from the origin.
    pub(crate) cache: Option<&'static DiskCache>,
}

impl Shared {
    pub fn new(
        state: Arc<ArcSwap<EdgeState>>,
        cache: Option<&'static DiskCache>,
        access_log: Option<Arc<AccessLogger>>,
        acme: Arc<Challenges>,
    ) -> Shared {
        Shared {
            state,
            ids: RequestIds::new(),
            rate: RequestRate::default(),
            acme,
            access_log,
            cache,
        }
    }
}
