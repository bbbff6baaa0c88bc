//! The hit path: a fresh cache hit answered without pingora's proxy.
//!
//! pingora's proxy costs about 50k instructions per request before and after our hooks (its
//! request session, the cache state machine, a boxed future per request); for a small hit
//! that is most of the work. `edge::conn` parses each HTTP/1.1 request itself, and takes
//! each HTTP/2 stream from pingora's connection handling, and offers it here first. A
//! request is served here only when pingora would have served it from the same entry with
//! nothing else to do: GET or HEAD, no body, no conditional or range header, within the
//! limits, routed once by `proxy::route` (the same `decide` as `request_filter`, signed
//! URLs included) to a caching behavior, with a fresh 200 entry in the primary slot whose
//! variance matches. The entry is in the memory tier, or (plain-TCP HTTP/1.1 only, where
//! the body goes out with `sendfile`) on disk with a verified body file. Everything else,
//! including a refusal, goes to the pass path (`edge::pass`) or to pingora, which decides
//! it again from the start. The response is built by the
//! same functions as `response_filter`'s, and the request is counted and logged by the same
//! [`account`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, Method};
use pingora::cache::key::CacheHashKey;
use pingora::http::{RequestHeader, ResponseHeader};

use super::limits;
use super::proxy::{account, viewer_headers, Ctx, Exchange, RequestIds, Routed};
use super::variance;
use crate::cache::{DiskCache, Loaded, MemoryEntry, FILE_BODY_MIN};
use crate::telemetry::access_log::AccessLogger;

/// What the hit path shares with the proxy (`Edge::hits`).
pub struct Hits {
    pub(crate) cache: &'static DiskCache,
    pub(crate) ids: Arc<RequestIds>,
    pub(crate) rate: Arc<limits::RequestRate>,
    pub(crate) access_log: Option<Arc<AccessLogger>>,
}

/// A hit ready to go out: the response header (without the connection's own `Date` and
/// `Connection`), the body (`None` for HEAD), and the request's context for [`Hits::done`].
pub struct Served {
    pub header: ResponseHeader,
    pub body: Option<HitBody>,
    pub ctx: Ctx,
}

/// A hit's body: from memory, or (`sendfile`) the cache file and its length.
pub enum HitBody {
    Bytes(Bytes),
    File(Arc<std::fs::File>, u64),
}

/// A cached entry as the checks need it, from either tier.
struct Found {
    fresh: bool,
    age: u64,
    variance: Option<pingora::cache::key::HashBinary>,
    header: ResponseHeader,
    body: Source,
}

/// Where a found entry's body is.
enum Source {
    /// The memory tier: sent from memory, or from the entry's file with `sendfile`.
    Memory(MemoryEntry),
    /// The disk tier.
    Disk(HitBody),
}

/// Request headers that make pingora do more than send the stored response as it is:
/// a body, a precondition (304/412), a range (206), an upgrade.
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

/// Whether the hit path may answer this request at all (the rest of the checks need the
/// config and the cache).
/// Also left to pingora: a target that is not a plain origin-form path (absolute-form, not
/// UTF-8) and several Host fields (pingora refuses an ambiguous authority).
pub fn plain(req: &RequestHeader) -> bool {
    let target = req.raw_path();
    matches!(req.method, Method::GET | Method::HEAD)
        && target.first() == Some(&b'/')
        && std::str::from_utf8(target).is_ok()
        && req.headers.get_all(header::HOST).iter().count() <= 1
        && !NOT_PLAIN.iter().any(|h| req.headers.contains_key(h))
}

impl Hits {
    /// The hit for `req`, routed as `routed`, or `Err`: another path serves it, the pass
    /// path if `routed` comes back, else pingora's proxy. `sendfile`: the connection can
    /// take a large body straight from its cache file (plain TCP); without it only the
    /// memory tier is looked at.
    pub(crate) async fn serve(
        &self,
        routed: Routed,
        req: &RequestHeader,
        sendfile: bool,
    ) -> Result<Served, Option<Routed>> {
        let Some((mut header, body)) = self.find(&routed, req, sendfile).await else {
            return Err(Some(routed));
        };
        let Routed { state, plan, .. } = routed;
        let ctx = Ctx::for_hit(state, *plan, self.ids.next());
        let origin = req.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        // A header the policy cannot set: pingora serves the entry (and decides it again).
        viewer_headers(&mut header, &ctx, origin).map_err(|_| None)?;
        Ok(Served { header, body, ctx })
    }

    /// The fresh entry for a routed request, with its response header as pingora's hit
    /// would send it (before the viewer's headers), and the body (`None` for HEAD).
    async fn find(
        &self,
        routed: &Routed,
        req: &RequestHeader,
        sendfile: bool,
    ) -> Option<(ResponseHeader, Option<HitBody>)> {
        let Routed {
            state,
            plan,
            client,
            key,
            ..
        } = routed;
        let limits = &state.config.limits;
        let primary = key.as_ref()?.primary_bin();
        let now = SystemTime::now();
        let found = match self.cache.memory_entry(&primary) {
            Some(e) => Found {
                fresh: e.is_fresh(now),
                age: e.age(now),
                variance: e.variance(),
                header: e.header().clone(),
                body: Source::Memory(e),
            },
            None if sendfile => {
                let (meta, loaded) = self.cache.load(primary, true).await.ok()??;
                let body = match loaded {
                    Loaded::Whole(b) => HitBody::Bytes(b),
                    // A file not yet checked against its CRC is checked as pingora streams it.
                    Loaded::File { verified: false, .. } => return None,
                    Loaded::File { file, len, .. } => HitBody::File(file, len),
                };
                Found {
                    fresh: meta.is_fresh(now),
                    age: meta.age().as_secs(),
                    variance: meta.variance(),
                    header: meta.response_header_copy(),
                    body: Source::Disk(body),
                }
            }
            None => return None,
        };
        let dist = &state.config.distributions[plan.dist];
        let mut header = found.header;
        if !found.fresh || header.status.as_u16() != 200 || dist.error_response(200).is_some() {
            return None;
        }
        let mut input = Vec::with_capacity(variance::VARIANCE_INPUT);
        variance::variance_input(&header.headers, &req.headers, &mut input);
        let memory = match &found.body {
            Source::Memory(e) => Some(e),
            Source::Disk(_) => None,
        };
        if !memory.is_some_and(|e| e.knows_variant(&input)) {
            if found.variance != Some(variance::variance_hash(&input)) {
                return None;
            }
            if let Some(e) = memory {
                e.remember_variant(&input);
            }
        }
        // The request rate counts served requests; over it, pingora answers 429 (and
        // counts the request again, which changes nothing once the bucket is empty).
        if let Some(client) = client {
            self.rate
                .take(&limits.per_client, *client, super::proxy::monotonic_ms())
                .ok()?;
        }
        // As pingora's hit: RFC 9111 §4 Age, and HTTP/1.1 whatever the origin spoke.
        header.insert_header(header::AGE, found.age).ok()?;
        header.set_version(http::Version::HTTP_11);
        // pingora's range filter on a seekable hit (here: no Range, so it only adds
        // `Accept-Ranges: bytes` to a 200 with a length), with its default limit.
        if !matches!(
            pingora::proxy::range_header_filter(req, &mut header, Some(200)),
            pingora::proxy::RangeType::None
        ) {
            return None;
        }
        if req.method == Method::HEAD {
            return Some((header, None));
        }
        let body = match found.body {
            Source::Memory(e) if sendfile && e.body.len() >= FILE_BODY_MIN => {
                match self.cache.body_file(&primary, &e) {
                    Some(file) => HitBody::File(file, e.body.len() as u64),
                    None => HitBody::Bytes(e.body),
                }
            }
            Source::Memory(e) => HitBody::Bytes(e.body),
            Source::Disk(body) => body,
        };
        Some((header, Some(body)))
    }

    /// Counts and logs a hit once it went out (`resp`: as written; `sent`: body bytes).
    pub fn done(
        &self,
        ctx: &Ctx,
        resp: &ResponseHeader,
        req: &RequestHeader,
        peer: Option<SocketAddr>,
        ssl: Option<Arc<pingora::protocols::tls::SslDigest>>,
        sent: usize,
    ) {
        let ex = Exchange {
            req,
            resp: Some(resp),
            peer,
            ssl,
            body_sent: sent,
            body_read: 0,
        };
        account(self.access_log.as_deref(), &ex, ctx, false);
        crate::telemetry::HIT_PATH.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn plain_gets_and_heads_only() {
        assert!(plain(&req("GET", "/a", &[("host", "x"), ("accept-encoding", "gzip")])));
        assert!(plain(&req("HEAD", "/a", &[("host", "x")])));
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            assert!(!plain(&req(method, "/a", &[("host", "x")])), "{method}");
        }
    }

    #[test]
    fn bodies_preconditions_ranges_and_upgrades_take_the_full_path() {
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
            assert!(!plain(&req("GET", "/a", &[("host", "x"), h])), "{h:?}");
        }
    }

    #[test]
    fn an_ambiguous_authority_takes_the_full_path() {
        assert!(!plain(&req("GET", "http://x/a", &[("host", "x")])));
        assert!(!plain(&req("GET", "*", &[("host", "x")])));
        assert!(!plain(&req("GET", "/a", &[("host", "x"), ("host", "y")])));
    }
}
