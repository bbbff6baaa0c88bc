//! The pass path: a request whose answer the cache will not keep, proxied to an HTTP
//! origin without pingora's proxy.
//!
//! A miss through pingora's proxy costs about 170k instructions, 99k of them in its
//! `proxy_to_upstream` (two tasks joined by a channel per request, and a task spawned per
//! connection returned to its pool to watch it while idle). `edge::conn` offers each
//! HTTP/1.1 request that the hit path did not answer here, and one is served here only when
//! pingora would send it to the origin with nothing else to do:
//!
//! - eligible by `route::fast_paths`, the one rule for both fast paths: a plain GET or HEAD
//!   (no body, no precondition or range), HTTP/1.1, one Host, no hop-by-hop header but
//!   `Connection: keep-alive` or `close`, to a behavior whose origin is an `http` origin
//!   (not a group) with plain-HTTP upstreams, in a distribution without custom error
//!   responses;
//! - not looked up in the cache: the behavior does not cache, or its key's last answer could
//!   not be cached (pingora's predictor, `UNCACHEABLE`, would bypass the cache for it).
//!
//! The origin request is built by the same [`origin_request`] as pingora's hook, sent with
//! pingora's HTTP/1.1 client session on a connection from this path's own keep-alive pool,
//! and the answer goes through the same [`origin_response`] (compression) and
//! [`viewer_headers`], framed as pingora frames it (chunked when the origin gave no
//! length). It is counted and logged by the same [`account`]. An answer that has become
//! cacheable clears the key's mark, so the next request takes the full path and stores it
//! (pingora would have stored this one). A connection that cannot be made sends the request
//! on to pingora with its routing and context (the attempt made counts), which retries,
//! fails over and answers the error as it always does.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{header, Method, Version};
use pingora::cache::predictor::CacheablePredictor;
use pingora::cache::NoCacheReason;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::upstreams::peer::Peer;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::account::{account, Exchange};
use super::admit::Routed;
use super::answer::OwnAnswer;
use super::answer::{failure_answer, failure_status, h1_answer, h1_head, own_answer};
use super::ctx::Ctx;
use super::shape::{cache_ttl, encode, origin_response, viewer_headers};
use super::state::{Shared, UNCACHEABLE};
use super::upstream::origin_request;

/// The pass path: its own keep-alive connections to origins, and what it shares with the
/// other paths.
pub struct Passes {
    shared: Arc<Shared>,
    idle: IdleConnections,
}

/// How a passed request ended for its connection.
pub enum Passed {
    /// Answered; the connection goes on if it was to (`true`), or closes (`false`: the
    /// answer was the edge's error, after which pingora closes too).
    Answered(bool),
    /// The connection broke (the viewer went away, or the origin did mid-body).
    Broken,
}

/// Bodies up to this size (with the header) are gathered into one write.
const GATHER: usize = 16 * 1024;

impl Passes {
    pub fn new(shared: Arc<Shared>) -> Passes {
        Passes {
            shared,
            idle: IdleConnections::default(),
        }
    }

    /// Proxies `req` from `peer`, routed as `routed`, if it is the pass path's to serve,
    /// writing the answer to `down`; `Err`: pingora serves it (nothing was written), with
    /// the routing given back, attempts at the origin included. `keepalive`: the connection
    /// goes on after this answer.
    pub(crate) async fn serve<W: AsyncWrite + Unpin>(
        &self,
        mut routed: Box<Routed>,
        req: &RequestHeader,
        peer: Option<SocketAddr>,
        ssl: Option<Arc<pingora::protocols::tls::SslDigest>>,
        down: &mut W,
        keepalive: bool,
    ) -> Result<Passed, Box<Routed>> {
        if !routed.fast.pass || routed.answer.is_some() {
            return Err(routed);
        }
        // A key the cache may keep goes to pingora's path, which stores the answer.
        let cached = self.shared.cache.is_some();
        if let (true, Some(key)) = (cached, &routed.key) {
            if UNCACHEABLE.cacheable_prediction(key) {
                return Err(routed);
            }
        }
        let is_https = ssl.is_some();
        // The request as its viewer-request function left it (the log records the viewer's).
        let served: std::borrow::Cow<'_, RequestHeader> = match &routed.edited {
            Some(changed) => std::borrow::Cow::Owned((**changed).clone()),
            None => std::borrow::Cow::Borrowed(req),
        };
        let mut up = served.clone().into_owned();
        up.remove_header(&header::CONNECTION);
        if origin_request(&mut up, &mut routed.ctx, None, peer.map(|p| p.ip()), is_https).is_err() {
            return Err(routed);
        }
        let key = routed.key.take();

        let viewer = Viewer { req, peer, ssl };
        let (mut http, addr) = match self.send(&mut routed.ctx, up).await {
            Sent::Answered(http, addr) => (http, addr),
            Sent::Unreachable => {
                routed.ctx.release_upstream();
                routed.key = key;
                return Err(routed);
            }
            Sent::Failed(e) => {
                let status = failure_status(&e, false);
                return Ok(self.fail(&mut routed.ctx, &viewer, down, status, &e).await);
            }
        };
        let mut ctx = routed.ctx;
        let Some(mut resp) = http.resp_header().cloned() else {
            let e = Error::explain(InternalError, "no response header");
            return Ok(self.fail(&mut ctx, &viewer, down, 500, &e).await);
        };
        if let (true, Some(key)) = (cached, &key) {
            // As pingora's bypassed miss: the mark stays while the answers stay uncacheable.
            if cache_ttl(&ctx, &served.headers, &resp, SystemTime::now()).is_some() {
                UNCACHEABLE.mark_cacheable(key);
            } else {
                UNCACHEABLE.mark_uncacheable(key, NoCacheReason::OriginNotCache);
            }
        }
        let head_only = served.method == Method::HEAD;
        let no_body = head_only || matches!(resp.status.as_u16(), 204 | 304);
        let shaped = origin_response(&mut resp, &mut ctx).and_then(|()| {
            ctx.mark_first_byte();
            // As pingora's HTTP/1.1 proxying: a body without a length goes out chunked.
            if !no_body
                && !http.is_body_done()
                && !resp.headers.contains_key(header::TRANSFER_ENCODING)
                && !resp.headers.contains_key(header::CONTENT_LENGTH)
            {
                resp.set_version(Version::HTTP_11);
                resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
            }
            let origin = served.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
            viewer_headers(&mut resp, &ctx, origin)
        });
        let mut out = BytesMut::with_capacity(GATHER);
        if let Err(e) = shaped.and_then(|()| h1_head(&mut resp, keepalive, &mut out)) {
            return Ok(self.fail(&mut ctx, &viewer, down, 500, &e).await);
        }
        let chunked = !no_body && resp.headers.contains_key(header::TRANSFER_ENCODING);
        let (outcome, sent) = match relay(&mut http, &mut ctx, down, &mut out, no_body, chunked).await {
            Ok(sent) => {
                // The origin's answer is all in: its connection is free for the next request
                // before the last of this answer goes out.
                http.respect_keepalive();
                if let Some(stream) = http.reuse().await {
                    self.idle.put(addr, stream, Instant::now());
                }
                if down.write_all(&out).await.is_ok() && down.flush().await.is_ok() {
                    (Passed::Answered(keepalive), sent)
                } else {
                    (Passed::Broken, sent)
                }
            }
            Err(Cut::Broken(sent)) => (Passed::Broken, sent),
            Err(Cut::Unsent(e)) => {
                // Nothing went out: the viewer gets the edge's error, as before a header.
                let status = failure_status(&e, false);
                return Ok(self.fail(&mut ctx, &viewer, down, status, &e).await);
            }
        };
        self.done(&mut ctx, &viewer, Some(&resp), sent);
        Ok(outcome)
    }

    /// Sends the request and reads the answer's header: on a kept-alive connection when
    /// there is one (once more on a new one if the origin had closed it), else on a new one.
    async fn send(&self, ctx: &mut Ctx, up: RequestHeader) -> Sent {
        let mut up = Some(up);
        let mut reuse = true;
        loop {
            let Ok(peer) = ctx.next_peer() else {
                return Sent::Unreachable;
            };
            let Some(addr) = peer.address().as_inet().copied() else {
                return Sent::Unreachable;
            };
            let Some(timeouts) = ctx.origin().map(|o| o.timeouts) else {
                return Sent::Unreachable;
            };
            let kept = if reuse {
                self.idle.take(addr, Instant::now())
            } else {
                None
            };
            let reused = kept.is_some();
            let stream = match kept {
                Some(s) => s,
                None => match connect(addr, timeouts.connect).await {
                    Ok(s) => s,
                    Err(e) => {
                        ctx.connect_failed(&e);
                        return Sent::Unreachable;
                    }
                },
            };
            let mut http = HttpSession::new(stream);
            http.read_timeout = Some(timeouts.response);
            http.write_timeout = Some(timeouts.response);
            // Only a request on a kept-alive connection may need sending again.
            let this = match (reused, &mut up) {
                (true, Some(up)) => up.clone(),
                (false, up) => match up.take() {
                    Some(up) => up,
                    None => return Sent::Unreachable,
                },
                (true, None) => return Sent::Unreachable,
            };
            let result = match http.write_request_header(Box::new(this)).await {
                Ok(_) => read_final_header(&mut http).await,
                Err(e) => Err(e),
            };
            let Err(e) = result else {
                return Sent::Answered(Box::new(http), addr);
            };
            let e = e.into_up();
            ctx.exchange_failed(&e);
            // A new connection that failed before any answer: pingora's path takes the
            // request to another upstream, within the origin's attempts.
            if !reused && ctx.retry_elsewhere(&e) {
                return Sent::Unreachable;
            }
            // Logged once, with the answer (`fail`), as `fail_to_proxy` does.
            if !reused || matches!(e.etype(), ReadTimedout | WriteTimedout) {
                return Sent::Failed(e);
            }
            // A kept-alive connection the origin had closed: as pingora, once more on a new
            // one (GET and HEAD can be sent again).
            reuse = false;
        }
    }

    /// Answers with the edge's error (`status`), as `fail_to_proxy` does, and closes.
    async fn fail<W: AsyncWrite + Unpin>(
        &self,
        ctx: &mut Ctx,
        viewer: &Viewer<'_>,
        down: &mut W,
        status: u16,
        e: &Error,
    ) -> Passed {
        let mut outcome = Passed::Broken;
        let mut written = None;
        let mut sent = 0;
        if status > 0 {
            let err = failure_answer(status, false, u64::MAX);
            let head = viewer.req.method == Method::HEAD;
            if let Ok(answer) = own_answer(&OwnAnswer::Error(err), ctx, head) {
                sent = answer.body.len();
                let mut out = BytesMut::with_capacity(512 + sent);
                let header = answer.header.clone();
                if h1_answer(answer, false, &mut out).is_ok() {
                    if down.write_all(&out).await.is_ok() && down.flush().await.is_ok() {
                        outcome = Passed::Answered(false);
                    }
                    written = Some(header);
                }
            }
            let origin = ctx.origin().map_or("", |o| o.name.as_str());
            tracing::warn!(request_id = %ctx.request_id(), origin = %origin, upstream = %ctx.upstream_label(), status, error = %e, "request failed");
        }
        self.done(ctx, viewer, written.as_ref(), sent);
        outcome
    }

    /// Counts and logs a passed request once it ended (`resp`: as written; `sent`: body
    /// bytes).
    fn done(&self, ctx: &mut Ctx, viewer: &Viewer<'_>, resp: Option<&ResponseHeader>, sent: usize) {
        ctx.release_upstream();
        let ex = Exchange {
            req: viewer.req,
            resp,
            peer: viewer.peer,
            ssl: viewer.ssl.clone(),
            body_sent: sent,
            body_read: 0,
        };
        account(self.shared.access_log.as_deref(), &ex, ctx, false);
        crate::telemetry::PASS_PATH.inc();
    }
}

/// The viewer's side of a passed request.
struct Viewer<'a> {
    req: &'a RequestHeader,
    peer: Option<SocketAddr>,
    ssl: Option<Arc<pingora::protocols::tls::SslDigest>>,
}

enum Sent {
    /// The answer's header is in.
    Answered(Box<HttpSession>, SocketAddr),
    /// No connection could be made (or no upstream picked): pingora takes the request.
    Unreachable,
    /// The origin failed after the connection was made.
    Failed(Box<Error>),
}

/// Reads the origin's answer up to its final header (an informational one is passed over).
async fn read_final_header(http: &mut HttpSession) -> Result<()> {
    loop {
        http.read_response().await?;
        match http.get_status() {
            Some(s) if s.is_informational() && s.as_u16() != 101 => continue,
            _ => return Ok(()),
        }
    }
}

/// A new connection to a plain-HTTP upstream.
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<pingora::protocols::Stream> {
    let tcp = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            let kind = if e.kind() == io::ErrorKind::ConnectionRefused {
                ConnectRefused
            } else {
                ConnectError
            };
            return Err(Error::because(kind, format!("connecting to {addr}"), e));
        }
        Err(_) => return Error::e_explain(ConnectTimedout, format!("connecting to {addr}")),
    };
    let mut stream = pingora::protocols::l4::stream::Stream::from(tcp);
    stream.set_nodelay()?;
    Ok(Box::new(stream))
}

/// How a relay ended early.
enum Cut {
    /// The viewer's side failed, or the origin's once part of the answer had gone out: the
    /// connection cannot carry on (`usize`: the body bytes sent).
    Broken(usize),
    /// The origin failed (or compressing did) before anything went to the viewer, who can
    /// still get the edge's error.
    Unsent(Box<Error>),
}

/// Streams the origin's body to the viewer behind the header already in `out` (compressed
/// if the response has an encoder, chunked if `chunked`), gathering small pieces that are
/// ready into one write, and writing out what it has whenever the origin has nothing more
/// ready ([`next_piece`]); what is left in `out` at the end is the caller's to write.
/// Returns the body bytes sent.
async fn relay<W: AsyncWrite + Unpin>(
    http: &mut HttpSession,
    ctx: &mut Ctx,
    down: &mut W,
    out: &mut BytesMut,
    no_body: bool,
    chunked: bool,
) -> std::result::Result<usize, Cut> {
    let mut sent = 0;
    // Something went to the viewer (a gathered write).
    let mut wrote = false;
    let origin_failed = |ctx: &Ctx, e: Box<Error>, wrote: bool, sent: usize| {
        let e = e.into_up();
        ctx.exchange_failed(&e);
        if wrote {
            Cut::Broken(sent)
        } else {
            Cut::Unsent(e)
        }
    };
    if !no_body {
        let encoding = ctx.encoding();
        loop {
            let read = next_piece(http, down, out, &mut wrote)
                .await
                .map_err(|_| Cut::Broken(sent))?;
            let done = if encoding {
                let mut piece = match read {
                    Ok(p) => p.map(Bytes::copy_from_slice),
                    Err(e) => return Err(origin_failed(ctx, e, wrote, sent)),
                };
                let done = piece.is_none() || http.is_body_done();
                if let Err(e) = encode(&mut piece, done, ctx) {
                    return Err(if wrote { Cut::Broken(sent) } else { Cut::Unsent(e) });
                }
                let data = piece.unwrap_or_default();
                sent += emit(down, out, &data, chunked, &mut wrote)
                    .await
                    .map_err(|_| Cut::Broken(sent))?;
                done
            } else {
                // Straight from the origin session's buffer.
                match read {
                    Ok(Some(data)) => {
                        sent += emit(down, out, data, chunked, &mut wrote)
                            .await
                            .map_err(|_| Cut::Broken(sent))?;
                        http.is_body_done()
                    }
                    Ok(None) => true,
                    Err(e) => return Err(origin_failed(ctx, e, wrote, sent)),
                }
            };
            if done {
                break;
            }
        }
        if chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    Ok(sent)
}

/// The origin's next piece of body. When none is ready yet, what `out` gathered is written
/// out first: an answer that comes slowly (server-sent events, a long poll, a report that
/// streams its lines) reaches the viewer piece by piece as the origin sends it, while the
/// pieces of an answer that is already there still leave in few writes. `Err`: the viewer
/// is gone.
async fn next_piece<'a, W: AsyncWrite + Unpin>(
    http: &'a mut HttpSession,
    down: &mut W,
    out: &mut BytesMut,
    wrote: &mut bool,
) -> io::Result<Result<Option<&'a [u8]>>> {
    let read = http.read_body_ref();
    tokio::pin!(read);
    let ready = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
    Ok(match ready {
        Poll::Ready(piece) => piece,
        Poll::Pending => {
            if !out.is_empty() {
                *wrote = true;
                down.write_all(out).await?;
                down.flush().await?;
                out.clear();
            }
            read.await
        }
    })
}

/// Adds a piece of body behind what `out` holds (as a chunk if `chunked`), writing both out
/// (and setting `wrote`) when together they are over [`GATHER`]; returns the piece's length.
async fn emit<W: AsyncWrite + Unpin>(
    down: &mut W,
    out: &mut BytesMut,
    data: &[u8],
    chunked: bool,
    wrote: &mut bool,
) -> io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    if chunked {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    }
    if out.len() + data.len() <= GATHER {
        out.extend_from_slice(data);
    } else {
        // Both in one `writev` where the stream takes them so.
        *wrote = true;
        super::stream::write_both(down, out, data).await?;
        out.clear();
    }
    if chunked {
        out.extend_from_slice(b"\r\n");
    }
    Ok(data.len())
}

/// Kept-alive connections to plain-HTTP upstreams, by address, most recently used first out.
/// Unlike pingora's pool nothing watches them while idle: one that has gone quiet too long,
/// or (idle for a second or more) that the origin closed or sent something on meanwhile, is
/// found so and dropped when taken; one the origin closed otherwise makes the request go
/// once more on a new connection ([`Passes::send`]).
#[derive(Default)]
pub struct IdleConnections {
    by_addr: Mutex<HashMap<SocketAddr, Vec<(pingora::protocols::Stream, Instant)>>>,
}

/// Idle connections kept per upstream address.
const IDLE_MAX: usize = 128;
/// How long an idle connection is kept (nginx's upstream `keepalive_timeout` default).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// A connection idle for less is taken without looking at its socket first (a `recv` call
/// per request under load): an origin rarely closes one that soon, and if it did, the
/// request goes once more on a new connection.
const RECENT: Duration = Duration::from_secs(1);

impl IdleConnections {
    /// Keeps `stream` from `now` on.
    pub(crate) fn put(&self, addr: SocketAddr, stream: pingora::protocols::Stream, now: Instant) {
        let Ok(mut by_addr) = self.by_addr.lock() else { return };
        let idle = by_addr.entry(addr).or_default();
        if idle.len() < IDLE_MAX {
            idle.push((stream, now));
        }
    }

    /// A kept connection to `addr` that may still be used at `now`.
    pub(crate) fn take(&self, addr: SocketAddr, now: Instant) -> Option<pingora::protocols::Stream> {
        loop {
            let (stream, since) = {
                let mut by_addr = self.by_addr.lock().ok()?;
                by_addr.get_mut(&addr)?.pop()?
            };
            let idle = now.saturating_duration_since(since);
            if idle < RECENT || (idle < IDLE_FOR && quiet(stream.id())) {
                return Some(stream);
            }
        }
    }

    #[cfg(test)]
    fn len(&self, addr: SocketAddr) -> usize {
        self.by_addr.lock().unwrap().get(&addr).map_or(0, |v| v.len())
    }
}

/// An idle connection's socket has nothing to read and is not closed by its peer.
fn quiet(fd: std::os::fd::RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a valid buffer; on a descriptor that is not a socket it
    // only fails, and the connection is dropped.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_idle_connection_the_origin_closed_or_wrote_on_is_not_reused() {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let idle = IdleConnections::default();
        let start = Instant::now();
        let mut accepted = Vec::new();
        let put = |idle: &IdleConnections, s| idle.put(addr, s, start);
        for _ in 0..4 {
            let s = connect(addr, Duration::from_secs(5)).await.unwrap();
            accepted.push(listener.accept().await.unwrap().0);
            put(&idle, s);
        }
        assert_eq!(idle.len(addr), 4);
        // Taken last put first. Just put back, a connection is taken as it is: the origin
        // closed the last one, and that is left to the request to find out.
        drop(accepted.pop());
        accepted[2].write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(idle.take(addr, start).is_some());
        // A second later each is looked at: the origin wrote on the next one (the third),
        // the second is quiet.
        let later = start + RECENT;
        let kept = idle.take(addr, later).expect("the quiet connection");
        assert!(quiet(kept.id()));
        assert_eq!(idle.len(addr), 1, "the one written on was dropped");
        // Past the idle time, none is taken.
        assert!(idle.take(addr, start + IDLE_FOR).is_none());
        assert_eq!(idle.len(addr), 0);
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(idle.take(other, start).is_none());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = connect(addr, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(e.etype(), ConnectRefused), "{e}");
    }
}
