//! What the edge derives from one config generation, and the process-wide cache predictor.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use pingora::cache::predictor::Predictor;

use super::limits::RequestRate;
use crate::cache::DiskCache;
use crate::telemetry::access_log::AccessLogger;
use crate::tls::acme::Challenges;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

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
    /// Background fills of objects a range miss asked for (`edge::fill`).
    pub(crate) fills: Arc<super::fill::Fills>,
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
            fills: Arc::default(),
        }
    }
}

/// Request ids: a per-process random prefix and a counter, 32 hex digits; unique, cheap.
pub(crate) struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
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
