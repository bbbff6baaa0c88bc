//! The hit path: a fresh cache hit answered without pingora's proxy.
//!
//! pingora's proxy costs about 50k instructions per request before and after our hooks (its
//! request session, the cache state machine, a boxed future per request); for a small hit
//! that is most of the work. `edge::conn` parses each HTTP/1.1 request itself, and takes
//! each HTTP/2 stream from pingora's connection handling, and offers it here first. A
//! request is served here only when pingora would have served it from the same entry with
//! nothing else to do: routed once by `route::admit` (limits, rate, `decide` with signed
//! URLs), eligible by `route::fast_paths` (the one rule for both fast paths), with a fresh
//! 200 entry in the primary slot whose variance matches. The entry is in the memory tier,
//! or (plain-TCP HTTP/1.1 only, where the body goes out with `sendfile`) on disk with a
//! verified body file. Anything else goes, with its routing, to the pass path
//! (`edge::pass`) or to pingora. The response is built by the same functions as
//! `response_filter`'s, and the request is counted and logged by the same [`account`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, Method};
use pingora::cache::key::CacheHashKey;
use pingora::http::{RequestHeader, ResponseHeader};

use super::account::{account, Exchange};
use super::admit::Routed;
use super::ctx::{CacheResult, Ctx};
use super::shape::viewer_headers;
use super::state::Shared;
use crate::cache::{DiskCache, Loaded, MemoryEntry, FILE_BODY_MIN};

/// The hit path: the cache it reads, and what it shares with the other paths.
pub struct Hits {
    shared: Arc<Shared>,
    cache: &'static DiskCache,
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

impl Hits {
    /// The hit path of an edge with a cache (`None` without one).
    pub fn new(shared: Arc<Shared>) -> Option<Hits> {
        Some(Hits {
            cache: shared.cache?,
            shared,
        })
    }

    /// The hit for `req`, routed as `routed`, or `Err`: another path serves it (the pass
    /// path, else pingora's proxy), with the routing given back. `sendfile`: the connection
    /// can take a large body straight from its cache file (plain TCP); without it only the
    /// memory tier is looked at.
    pub(crate) async fn serve(
        &self,
        mut routed: Box<Routed>,
        req: &RequestHeader,
        sendfile: bool,
    ) -> Result<Served, Box<Routed>> {
        if !routed.fast.hit || routed.answer.is_some() {
            return Err(routed);
        }
        // The request as its viewer-request function left it.
        let edited = routed.edited.take();
        let req = edited.as_deref().unwrap_or(req);
        let Some((mut header, mut body)) = self.find(&routed, req, sendfile).await else {
            routed.edited = edited;
            return Err(routed);
        };
        let origin = req.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        routed.ctx.cache_result = CacheResult::Hit;
        // A header the policy cannot set: pingora serves the entry (and fails the same way).
        if viewer_headers(&mut header, &routed.ctx, origin).is_err() {
            routed.ctx.cache_result = CacheResult::Miss;
            routed.edited = edited;
            return Err(routed);
        }
        // A failed viewer-response function's answer goes out instead of the entry.
        if let Some(replaced) = routed.ctx.replaced_body.get() {
            body = (req.method != Method::HEAD).then(|| HitBody::Bytes(replaced.clone()));
        }
        let mut ctx = routed.ctx;
        ctx.mark_first_byte();
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
        let primary = routed.key.as_ref()?.primary_bin();
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
        let mut header = found.header;
        if !found.fresh || header.status.as_u16() != 200 {
            return None;
        }
        let mut input = Vec::with_capacity(super::variance::VARIANCE_INPUT);
        super::variance::variance_input(&header.headers, &req.headers, &mut input);
        let memory = match &found.body {
            Source::Memory(e) => Some(e),
            Source::Disk(_) => None,
        };
        if !memory.is_some_and(|e| e.knows_variant(&input)) {
            if found.variance != Some(super::variance::variance_hash(&input)) {
                return None;
            }
            if let Some(e) = memory {
                e.remember_variant(&input);
            }
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
        account(self.shared.access_log.as_deref(), &ex, ctx, false);
        crate::telemetry::HIT_PATH.inc();
    }
}
