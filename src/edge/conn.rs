//! The edge's connections, before pingora's HTTP handling: the per-client connection limit,
//! the keep-alive idle timeout, and the request-header deadline against slow senders
//! (slowloris). [`Guard`] is the service's app: it takes each accepted (and, on the HTTPS
//! port, handshaken) connection, refuses it when its client already has too many open, and
//! otherwise runs pingora's HTTP/1.1 request loop itself, on a [`Guarded`] stream, so that
//! the limits from the live config apply. That loop reads each request header first and
//! offers it to the hit path (`edge::hit`), then to the pass path (`edge::pass`). HTTP/2
//! connections run pingora's accept loop, rebuilt here ([`Guard::serve_h2`]) so that each
//! stream is offered to the hit path on the connection's own task, and the answers to one
//! read leave in one write.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::http::RequestHeader;
use pingora::protocols::http::v2::server as h2;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Digest, GetSocketDigest, Shutdown, SocketDigest, Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::admit::{admit, Handoff};
use super::answer::OwnAnswer;
use super::answer::{h1_answer, h1_head, own_answer};
use super::ctx::Ctx;
use super::hit::{HitBody, Hits, Served};
use super::limits::{too_many, Connections};
use super::pass::{Passed, Passes};
use super::proxy::Edge;
use super::proxy_protocol;
use super::route::{declares_body, has_body};
use super::state::Shared;
use super::stream::{write_both, Guarded};

/// The edge service's app: connection limits and timeouts around pingora's proxy.
pub struct Guard {
    proxy: Arc<HttpProxy<Edge>>,
    shared: Arc<Shared>,
    connections: Arc<Connections>,
    /// Fresh hits answered without pingora's proxy (`None` without a cache).
    hits: Option<Arc<Hits>>,
    /// Requests the cache does not keep, proxied to HTTP origins without pingora's proxy.
    passes: Passes,
    /// The plain listener expects a PROXY protocol header (fixed at start, as the
    /// listeners; `BeforeTls` does the HTTPS listener's).
    plain_proxy_protocol: bool,
}

impl Guard {
    pub fn new(proxy: HttpProxy<Edge>, shared: Arc<Shared>) -> Guard {
        let proxy = Arc::new(proxy);
        // Range misses fill the cache through the proxy itself (`edge::fill`).
        let app: Arc<dyn pingora::proxy::Subrequest + Send + Sync> = proxy.clone();
        shared.fills.set_proxy(Arc::downgrade(&app));
        Guard {
            proxy,
            plain_proxy_protocol: shared.state.load().config.listen.proxy_protocol.http,
            hits: Hits::new(shared.clone()).map(Arc::new),
            passes: Passes::new(shared.clone()),
            connections: Arc::new(Connections::default()),
            shared,
        }
    }
}

fn peer_addr(stream: &Stream) -> Option<SocketAddr> {
    let digest = stream.get_socket_digest()?;
    digest.peer_addr()?.as_inet().copied()
}

/// Takes the PROXY protocol header off a new connection on a listener that expects one
/// (`edge::proxy_protocol`). The peer must be in `trusted_proxies`; the client the header
/// names then stands for the peer in the connection's socket digest, which every later
/// stage reads (limits, routing, signed URLs, logs, the forwarded fields). `fd`: the
/// connection's socket. `Err`: why the connection is dropped.
pub(crate) async fn take_proxy_header<S>(stream: &mut S, fd: RawFd, shared: &Shared) -> Result<(), String>
where
    S: tokio::io::AsyncRead + Unpin + GetSocketDigest + ?Sized,
{
    let (trusted, deadline) = {
        let state = shared.state.load();
        (state.config.trusted_proxies.clone(), state.config.limits.header_timeout)
    };
    let digest = stream.get_socket_digest();
    let peer = digest.as_ref().and_then(|d| d.peer_addr()?.as_inet().copied());
    let Some(peer) = peer else {
        return Err("a connection without a peer address".to_string());
    };
    if !trusted.iter().any(|c| c.contains(peer.ip())) {
        return Err(format!(
            "{peer} is not in trusted_proxies, so it may not send a PROXY protocol header"
        ));
    }
    match proxy_protocol::read(stream, deadline).await {
        Ok(proxy_protocol::Header::Local) => Ok(()),
        Ok(proxy_protocol::Header::Proxied(client)) => {
            let named = SocketDigest::from_raw_fd(fd);
            let _ = named.peer_addr.set(Some(client.into()));
            stream.set_socket_digest(named);
            Ok(())
        }
        Err(e) => Err(format!("{peer}: {e}")),
    }
}

/// A connection refused by [`take_proxy_header`]: counted, and logged below ERROR (the peer
/// is a client or a misconfigured proxy, not a fault of the edge).
fn proxy_header_refused(why: &str) {
    crate::telemetry::limited("proxy_protocol");
    tracing::info!("connection dropped: {why}");
}

/// The HTTPS listener's work before each TLS handshake: the PROXY protocol header when the
/// listener expects one, then the handshake pacer's turn.
pub struct BeforeTls {
    pub shared: Arc<Shared>,
    pub proxy_protocol: bool,
    pub pacer: crate::tls::HandshakePacer,
}

#[async_trait]
impl pingora::listeners::PreTlsProcess for BeforeTls {
    async fn process(&self, stream: &mut pingora::protocols::l4::stream::Stream) -> pingora::Result<()> {
        use std::os::fd::AsRawFd;
        if self.proxy_protocol {
            let fd = stream.as_raw_fd();
            if let Err(why) = take_proxy_header(stream, fd, &self.shared).await {
                proxy_header_refused(&why);
                return Err(pingora::Error::explain(pingora::ErrorType::AcceptError, why));
            }
        }
        self.pacer.turn().await;
        Ok(())
    }
}

#[async_trait]
impl ServerApp for Guard {
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        // The plain listener's PROXY protocol header (the HTTPS listener's was read before
        // the handshake, `BeforeTls`).
        if self.plain_proxy_protocol && stream.get_ssl().is_none() {
            use std::os::fd::AsRawFd;
            let fd = stream
                .as_any()
                .downcast_ref::<pingora::protocols::l4::stream::Stream>()
                .map(|l4| l4.as_raw_fd());
            let taken = match fd {
                Some(fd) => take_proxy_header(&mut *stream, fd, &self.shared).await,
                None => Err("not a TCP connection".to_string()),
            };
            if let Err(why) = taken {
                proxy_header_refused(&why);
                return None;
            }
        }
        let peer = peer_addr(&stream);
        // What this connection needs of the live limits (the config is not held meanwhile).
        let (idle_timeout, header_timeout, slot) = {
            let state = self.shared.state.load();
            let limits = &state.config.limits;
            let slot = peer.map(|a| self.connections.enter(&limits.per_client, a.ip()));
            (limits.idle_timeout, limits.header_timeout, slot)
        };
        // `Some(None)`: the client already has its connections open.
        if matches!(slot, Some(None)) {
            crate::telemetry::limited("connections");
            if !matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
                // The edge's own answer, with its decoration, before any request is read.
                let mut ctx = Ctx::new();
                ctx.request_id = self.shared.ids.next();
                let mut e = too_many("connections");
                e.retry_after = Some(1);
                let mut out = BytesMut::new();
                let answer = own_answer(&OwnAnswer::Error(e), &mut ctx, false);
                if answer.and_then(|a| h1_answer(a, false, &mut out)).is_ok() {
                    let _ = stream.write_all(&out).await;
                    let _ = stream.flush().await;
                }
            }
            Shutdown::shutdown(stream.as_mut()).await;
            return None;
        }
        // Held until the connection ends.
        let _slot = slot.flatten();
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            self.serve_h2(stream, idle_timeout, shutdown).await;
            return None;
        }

        // HTTP/1.1: pingora's request loop, run here with our idle timeout and header
        // deadline (pingora keeps an HTTP/1.1 connection open forever once a request asked
        // for keep-alive). Each request header is read and parsed here first: a cache hit is
        // answered by the hit path; anything else goes to pingora with its bytes replayed
        // ahead of the stream.
        let ssl = stream.get_ssl_digest();
        let mut guarded = Box::new(Guarded::new(stream, header_timeout));
        let sendfile = tcp_fd(&guarded).is_some();
        let mut buf = BytesMut::with_capacity(4096);
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut first = true;
        loop {
            let shutting_down = *shutdown.borrow();
            if shutting_down && !first && buf.is_empty() {
                break;
            }
            guarded.expect_request();
            let head = read_head(&mut guarded, &mut buf, idle_timeout, shutdown).await;
            // Routed once, for whichever path serves it: the hit path, the pass path, or
            // pingora's proxy, which gets the routing with the request.
            let mut routed = match &head {
                Head::Parsed(req, len) => Some(admit(
                    &self.shared,
                    req,
                    peer,
                    declares_body(req),
                    Some(&buf[..*len]),
                    ssl.as_deref(),
                )),
                _ => None,
            };
            if let (Head::Parsed(req, len), Some(hits), Some(r)) = (&head, &self.hits, routed.take()) {
                match hits.serve(r, req, sendfile).await {
                    Ok(mut served) => {
                        guarded.header_done();
                        let keepalive = !shutting_down && !asks_close(req);
                        let sent = match write_hit(&mut guarded, &mut served, keepalive).await {
                            Ok(sent) => sent,
                            Err(_) => break,
                        };
                        hits.done(&served.ctx, &served.header, req, peer, ssl.clone(), sent);
                        let _ = buf.split_to(*len);
                        if !keepalive {
                            Shutdown::shutdown(&mut *guarded).await;
                            break;
                        }
                        first = false;
                        continue;
                    }
                    Err(back) => routed = Some(back),
                }
            }
            if let (Head::Parsed(req, len), Some(r)) = (&head, routed.take()) {
                let keepalive = !shutting_down && !asks_close(req);
                let passed = self.passes.serve(r, req, peer, ssl.clone(), &mut *guarded, keepalive);
                match passed.await {
                    Ok(passed) => {
                        guarded.header_done();
                        let _ = buf.split_to(*len);
                        match passed {
                            Passed::Answered(true) => {
                                first = false;
                                continue;
                            }
                            Passed::Answered(false) => Shutdown::shutdown(&mut *guarded).await,
                            Passed::Broken => {}
                        }
                        break;
                    }
                    Err(back) => routed = Some(back),
                }
            }
            // pingora serves anything else, with this request's routing (or none, for a
            // request not parsed here: pingora's `request_filter` routes it).
            guarded.hand_off(routed);
            if matches!(head, Head::Closed) {
                break;
            }
            // pingora serves it. It is given this request's bytes only: with more (the
            // next pipelined request), it would answer this one and close the connection.
            // A body's framing is pingora's to read, so a request with one gets all.
            let take = match &head {
                Head::Parsed(req, len) if !has_body(req) => *len,
                _ => buf.len(),
            };
            guarded.replay(buf.split_to(take));
            let mut session = ServerSession::new_http1(guarded);
            match settings.take() {
                Some(s) => s.apply_to_session(&mut session),
                None => session.set_keepalive_reuses_remaining(
                    self.proxy.server_options().and_then(|o| o.keepalive_request_limit),
                ),
            }
            session.set_keepalive((!shutting_down).then(|| idle_timeout.as_secs().max(1)));
            let result = self.proxy.process_new_http(session, shutdown).await;
            let Some((stream, next)) = result.map(|r| r.consume()) else {
                break;
            };
            settings = next;
            guarded = stream.into_any().downcast::<Guarded>().ok()?;
            // Whatever of the replay pingora did not read comes before what is buffered.
            let mut unread = guarded.take_replay();
            if !unread.is_empty() {
                unread.extend_from_slice(&buf);
                buf = unread;
            }
            first = false;
        }
        None
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

/// pingora's limit on streams it refuses at acceptance (a forbidden byte in the target,
/// conflicting lengths) before it closes the connection.
const MAX_REJECTED_STREAMS: usize = 32;

impl Guard {
    /// An HTTP/2 connection: pingora's accept loop (`accept_downstream_sessions`, private to
    /// pingora), with its GOAWAY on shutdown, its idle timeout and its limit on rejected
    /// streams, except that each stream is first handled on the connection's own task. A hit
    /// is answered there, without a task of its own, so the answers to one read go out
    /// together (see [`Guarded::corked`]). A stream not answered at once (a miss waiting for
    /// the origin, a body waiting for flow-control window) goes on in a task of its own, as
    /// every stream does in pingora.
    async fn serve_h2(self: &Arc<Self>, stream: Stream, idle_timeout: Duration, shutdown: &ShutdownWatch) {
        // Each poll of this task is a turn for the stream's gathered writes.
        let turn = Arc::new(AtomicU64::new(0));
        let mut connection = std::pin::pin!(self.h2_connection(stream, turn.clone(), idle_timeout, shutdown));
        std::future::poll_fn(|cx| {
            turn.fetch_add(1, Ordering::Relaxed);
            connection.as_mut().poll(cx)
        })
        .await
    }

    async fn h2_connection(
        self: &Arc<Self>,
        stream: Stream,
        turn: Arc<AtomicU64>,
        idle_timeout: Duration,
        shutdown: &ShutdownWatch,
    ) {
        let digest = Arc::new(Digest {
            ssl_digest: stream.get_ssl_digest(),
            timing_digest: stream.get_timing_digest(),
            proxy_digest: stream.get_proxy_digest(),
            socket_digest: stream.get_socket_digest(),
        });
        let stream: Stream = Box::new(Guarded::corked(stream, turn));
        let mut conn = match h2::handshake(stream, self.proxy.h2_options()).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "HTTP/2 handshake failed");
                return;
            }
        };
        let streams = Arc::new(Streams::default());
        let mut signal = shutdown.clone();
        let mut draining = *signal.borrow();
        if draining {
            conn.graceful_shutdown();
        }
        let mut rejected = 0;
        let mut closing = None;
        loop {
            let next = if let Some(deadline) = closing {
                match tokio::time::timeout_at(deadline, h2::HttpSession::from_h2_conn(&mut conn, digest.clone())).await
                {
                    Ok(next) => next,
                    Err(_) => return,
                }
            } else if draining {
                h2::HttpSession::from_h2_conn(&mut conn, digest.clone()).await
            } else {
                tokio::select! {
                    biased;
                    _ = signal.changed() => {
                        conn.graceful_shutdown();
                        draining = true;
                        continue;
                    }
                    next = h2::HttpSession::from_h2_conn(&mut conn, digest.clone()) => next,
                    // Closed without a GOAWAY wait, as pingora does: the peer may be gone.
                    _ = streams.idle_for(idle_timeout) => return,
                }
            };
            let session = match next {
                Ok(Some(h2::H2Accept::Session(session))) if rejected < MAX_REJECTED_STREAMS => session,
                Ok(Some(h2::H2Accept::Rejected)) => {
                    rejected += 1;
                    if rejected == MAX_REJECTED_STREAMS {
                        // GOAWAY ENHANCE_YOUR_CALM, after the answers already given; the
                        // connection then closes and the loop ends below.
                        tracing::warn!("closing an HTTP/2 connection after {rejected} malformed requests");
                        conn.abrupt_shutdown(::h2::Reason::ENHANCE_YOUR_CALM);
                        // A peer that does not read is not waited for long.
                        closing = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                    }
                    continue;
                }
                // Opened after the GOAWAY above: not answered.
                Ok(Some(h2::H2Accept::Session(_))) => continue,
                // Closed by the client, or a connection error.
                Ok(None) | Err(_) => return,
            };
            let mut answer = Box::pin(
                self.clone()
                    .answer_h2(ServerSession::new_http2(session), shutdown.clone()),
            );
            // A panic here stays this stream's, as it would in a task of its own.
            let first = std::future::poll_fn(|cx| {
                Poll::Ready(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    answer.as_mut().poll(cx).is_pending()
                })))
            })
            .await;
            if matches!(first, Ok(true)) {
                let busy = streams.start();
                tokio::spawn(async move {
                    let _busy = busy;
                    answer.await
                });
            }
        }
    }

    /// One HTTP/2 stream: routed once, then the hit path, else pingora's proxy (with the
    /// routing).
    async fn answer_h2(self: Arc<Self>, mut session: ServerSession, shutdown: ShutdownWatch) {
        if let ServerSession::H2(h2) = &mut session {
            let peer = h2.client_addr().and_then(|a| a.as_inet()).copied();
            let ssl = h2.digest().and_then(|d| d.ssl_digest.clone());
            let routed = admit(
                &self.shared,
                h2.req_header(),
                peer,
                !h2.is_body_empty(),
                None,
                ssl.as_deref(),
            );
            let routed = match &self.hits {
                Some(hits) => match hits.serve(routed, h2.req_header(), false).await {
                    Ok(served) => {
                        let Served { header, body, ctx } = served;
                        let body = match body {
                            Some(HitBody::Bytes(b)) if !b.is_empty() => Some(b),
                            _ => None,
                        };
                        let sent = body.as_ref().map_or(0, |b| b.len());
                        let written = match h2.write_response_header(Box::new(header), body.is_none()) {
                            Ok(()) => match body {
                                Some(b) => h2.write_body(b, true).await,
                                None => Ok(()),
                            },
                            Err(e) => Err(e),
                        };
                        if let (Ok(()), Some(resp)) = (written, h2.response_written()) {
                            hits.done(&ctx, resp, h2.req_header(), peer, ssl, sent);
                        }
                        return;
                    }
                    Err(back) => back,
                },
                None => routed,
            };
            h2.req_header_mut().extensions_mut().insert(Handoff::new(routed));
        }
        // An HTTP/2 stream is never reused; the connection goes on.
        let _ = self.proxy.process_new_http(session, &shutdown).await;
    }
}

/// The streams of an HTTP/2 connection still being answered in tasks of their own: the
/// connection is idle only when there are none.
#[derive(Default)]
struct Streams {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One stream in [`Streams`], until dropped.
struct Busy(Arc<Streams>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_one();
        }
    }
}

impl Streams {
    fn start(self: &Arc<Self>) -> Busy {
        self.count.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Ready once no stream has been busy for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        while self.count.load(Ordering::Acquire) != 0 {
            self.idle.notified().await;
        }
        tokio::time::sleep(timeout).await;
    }
}

/// A request header longer than this is left to pingora (and its limits).
const HEAD_MAX: usize = 64 * 1024;
/// Header fields the hit path parses; a request with more goes to pingora.
const MAX_FIELDS: usize = 128;

/// How the next request on an HTTP/1.1 connection arrived.
enum Head {
    /// The connection ended, failed or stayed idle before a request.
    Closed,
    /// A whole request header, parsed, and its length at the front of the buffer.
    Parsed(Box<RequestHeader>, usize),
    /// Something for pingora: malformed, not HTTP/1.1, too large, or cut short.
    Other,
}

/// What [`parse_head`] made of the bytes so far.
#[derive(Debug)]
pub enum Parse {
    Partial,
    Done(Box<RequestHeader>, usize),
    Other,
}

/// An HTTP/1.1 request header at the start of `buf`, as httparse reads it strictly; anything
/// it does not accept, and any other HTTP version, is `Other` (pingora's parser decides).
pub fn parse_head(buf: &[u8]) -> Parse {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut fields);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::Other,
    };
    if parsed.version != Some(1) {
        return Parse::Other;
    }
    let (Some(method), Some(path)) = (parsed.method, parsed.path) else {
        return Parse::Other;
    };
    let Ok(mut req) = RequestHeader::build_no_case(method, path.as_bytes(), Some(parsed.headers.len())) else {
        return Parse::Other;
    };
    req.set_version(http::Version::HTTP_11);
    for field in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(field.name.as_bytes()),
            http::HeaderValue::from_bytes(field.value),
        ) else {
            return Parse::Other;
        };
        if req.append_header(name, value).is_err() {
            return Parse::Other;
        }
    }
    Parse::Done(Box::new(req), len)
}

/// Reads until `buf` starts with a whole request header. The wait for its first byte is
/// bounded by `idle`; the rest by the stream's header deadline.
/// A server shutting down ends the wait (as pingora drops its idle keep-alive connections).
async fn read_head(stream: &mut Guarded, buf: &mut BytesMut, idle: Duration, shutdown: &ShutdownWatch) -> Head {
    loop {
        if !buf.is_empty() {
            match parse_head(buf) {
                Parse::Done(req, len) => return Head::Parsed(req, len),
                Parse::Other => return Head::Other,
                Parse::Partial if buf.len() > HEAD_MAX => return Head::Other,
                Parse::Partial => {}
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let read = if buf.is_empty() {
            // Waited in steps of at most a second, to see a shutdown.
            let deadline = tokio::time::Instant::now() + idle;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if *shutdown.borrow() || left.is_zero() {
                    return Head::Closed;
                }
                if let Ok(read) = tokio::time::timeout(left.min(Duration::from_secs(1)), stream.read_buf(buf)).await {
                    break read;
                }
            }
        } else {
            stream.read_buf(buf).await
        };
        match read {
            Ok(0) if buf.is_empty() => return Head::Closed,
            // Cut short: pingora answers what it can of it.
            Ok(0) => return Head::Other,
            Ok(_) => {}
            Err(_) => return Head::Closed,
        }
    }
}

/// `Connection: close` from the viewer.
fn asks_close(req: &RequestHeader) -> bool {
    req.headers.get_all(http::header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Bodies up to this size are copied behind the header and go out in one write; larger
/// ones go out with it in one `writev`.
const INLINE_BODY: usize = 4 * 1024;

/// Writes a hit as pingora's HTTP/1.1 session would (its `Date`, and `Connection` as the
/// connection goes on or not); returns the body bytes written.
async fn write_hit(stream: &mut Guarded, served: &mut Served, keepalive: bool) -> io::Result<usize> {
    let memory: &[u8] = match &served.body {
        Some(HitBody::Bytes(b)) => b,
        _ => &[],
    };
    let mut out = BytesMut::with_capacity(512 + if memory.len() <= INLINE_BODY { memory.len() } else { 0 });
    h1_head(&mut served.header, keepalive, &mut out).map_err(|e| io::Error::other(e.to_string()))?;
    if let Some(HitBody::File(file, len)) = &served.body {
        return send_file(stream, &out, file, *len).await.map(|n| n as usize);
    }
    if memory.len() <= INLINE_BODY {
        out.extend_from_slice(memory);
        stream.write_all(&out).await?;
    } else {
        write_both(stream, &out, memory).await?;
    }
    // The last answer on a connection (`Connection: close`) is flushed by the shutdown that
    // follows, with TLS's close_notify: one write to the socket instead of two.
    if keepalive {
        stream.flush().await?;
    }
    Ok(memory.len())
}

/// Unsent bytes the kernel holds for a connection before the socket stops taking more
/// (`TCP_NOTSENT_LOWAT`), set where a cache file goes out with `sendfile`. Without it one
/// `sendfile` call queues up to the send buffer, megabytes, behind the receiver's window;
/// with it the queue stays small and each call's bytes go out when it is made, on the CPU
/// that made it. In the load run, where the window is the client's, 32 downloads of a
/// 10 MiB hit went from about 150 to about 250 a second: the client's ACKs no longer
/// transmitted the server's queued data on the client's CPU. Not set for smaller bodies
/// written from memory: there it moved that work onto homefront's CPU, which the 100 KiB
/// hits already use up.
const NOTSENT_LOWAT: libc::c_int = 16 * 1024;

fn limit_unsent(fd: std::os::fd::RawFd) {
    // SAFETY: setsockopt reads one c_int from a valid pointer; on a descriptor that is not
    // a TCP socket it only fails, and the connection is served as it is.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&NOTSENT_LOWAT as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The plain TCP socket under a viewer's stream, for `sendfile` (`None` under TLS).
fn tcp_fd(stream: &Guarded) -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    if stream.inner.get_ssl().is_some() {
        return None;
    }
    let l4 = stream
        .inner
        .as_any()
        .downcast_ref::<pingora::protocols::l4::stream::Stream>()?;
    Some(l4.as_raw_fd())
}

/// Bytes one `sendfile` call may send before the connection lets the others on its thread
/// have a turn. One call used to send whatever the socket's buffer took, megabytes on
/// loopback, and the thread went on sending for that connection while the others waited:
/// in the load run, 32 downloads of a 10 MiB hit had a p99 of 440–470 ms against Varnish's
/// 225 (a cap without the turn: 510–610 ms). Taking turns every 256 KiB: 190–375 ms, at
/// more requests a second (64 KiB: 215 ms, and fewer).
const SENDFILE_CHUNK: u64 = 256 * 1024;

/// Sends an answer's `head` and then `len` bytes of a cache file with `sendfile(2)`, from
/// the page cache to the socket without a copy through this process (as nginx does). The
/// head goes onto the socket with `MSG_MORE`, so that it leaves with the body's first bytes
/// rather than in a packet of its own (on loopback each packet is also received on the
/// sending CPU). Only when the socket takes no more is a second descriptor of it registered
/// with tokio (the first is pingora's) to wait on; a body the socket takes at once costs
/// no registration. As with nginx's `sendfile`, a file not in the page cache is read from
/// disk on this thread.
async fn send_file(stream: &mut Guarded, head: &[u8], file: &std::fs::File, len: u64) -> io::Result<u64> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let sock = tcp_fd(stream).ok_or_else(|| io::Error::other("sendfile needs a plain TCP stream"))?;
    // Whatever an earlier answer left in the stream's buffer goes first.
    stream.flush().await?;
    if !std::mem::replace(&mut stream.unsent_limited, true) {
        limit_unsent(sock);
    }
    let mut head = head;
    while !head.is_empty() {
        // SAFETY: `sock` is open for the call; `head` is valid for `head.len()` bytes.
        let n = unsafe {
            libc::send(
                sock,
                head.as_ptr().cast(),
                head.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
            // A full socket: the rest through the stream, which waits for room.
            stream.write_all(head).await?;
            stream.flush().await?;
            break;
        }
        head = &head[n as usize..];
    }
    let mut ready: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> = None;
    let mut offset: libc::off_t = 0;
    while (offset as u64) < len {
        let guard = match &ready {
            Some(fd) => Some(fd.writable().await?),
            None => None,
        };
        let left = (len - offset as u64).min(SENDFILE_CHUNK) as usize;
        // SAFETY: both descriptors are open for the call; `offset` is a valid out-parameter.
        let n = unsafe { libc::sendfile(sock, file.as_raw_fd(), &mut offset, left) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
            match guard {
                Some(mut guard) => guard.clear_ready(),
                None => {
                    // SAFETY: `sock` belongs to `stream`, which outlives this borrow; it is
                    // only duplicated.
                    let second = unsafe { BorrowedFd::borrow_raw(sock) }.try_clone_to_owned()?;
                    // SAFETY: `second` is an owned, open descriptor, moved into the AsyncFd
                    // and closed only when it is dropped.
                    ready = Some(unsafe {
                        tokio::io::unix::AsyncFd::register_with_interest(second, tokio::io::Interest::WRITABLE)
                    }?);
                }
            }
            continue;
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "cache file shorter than its entry",
            ));
        }
        // The others' turn (`SENDFILE_CHUNK`), if there is more to send.
        if (offset as u64) < len {
            tokio::task::yield_now().await;
        }
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> (Box<RequestHeader>, usize) {
        match parse_head(buf) {
            Parse::Done(req, len) => (req, len),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn a_connections_unsent_queue_is_limited_and_other_descriptors_are_left_alone() {
        use std::os::fd::AsRawFd;
        fn unsent_limit(fd: std::os::fd::RawFd) -> libc::c_int {
            let mut v: libc::c_int = -1;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: valid out-pointers of the sizes given.
            let r = unsafe {
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NOTSENT_LOWAT,
                    (&mut v as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(r, 0);
            v
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_ne!(unsent_limit(server.as_raw_fd()), NOTSENT_LOWAT);
        limit_unsent(server.as_raw_fd());
        assert_eq!(unsent_limit(server.as_raw_fd()), 16 * 1024);
        // A descriptor that is no socket: nothing happens.
        let file = std::fs::File::open("/dev/null").unwrap();
        limit_unsent(file.as_raw_fd());
    }

    #[test]
    fn a_request_header_is_parsed_and_its_length_given() {
        let (req, len) = done(b"GET /a/b.css?v=1 HTTP/1.1\r\nHost: cdn.test\r\nAccept-Encoding: gzip\r\n\r\n");
        assert_eq!(req.method, http::Method::GET);
        assert_eq!(req.uri.path(), "/a/b.css");
        assert_eq!(req.uri.query(), Some("v=1"));
        assert_eq!(req.version, http::Version::HTTP_11);
        assert_eq!(req.headers.get("host").unwrap(), "cdn.test");
        assert_eq!(req.headers.get("accept-encoding").unwrap(), "gzip");
        assert_eq!(len, 68);
    }

    #[test]
    fn a_pipelined_request_after_the_first_is_left_in_the_buffer() {
        let first = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut both = first.to_vec();
        both.extend_from_slice(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
        let (req, len) = done(&both);
        assert_eq!(req.uri.path(), "/1");
        assert_eq!(len, first.len());
        let (req, _) = done(&both[len..]);
        assert_eq!(req.uri.path(), "/2");
    }

    #[test]
    fn a_header_cut_short_is_partial() {
        for cut in [&b"G"[..], b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n"] {
            assert!(matches!(parse_head(cut), Parse::Partial), "{cut:?}");
        }
    }

    #[test]
    fn what_httparse_refuses_and_other_versions_go_to_pingora() {
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_FIELDS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        for other in [
            &b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00",
            &many,
        ] {
            assert!(
                matches!(parse_head(other), Parse::Other),
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn connection_close_is_found_among_other_tokens() {
        let with = |v: &str| {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.append_header("connection", v).unwrap();
            asks_close(&req)
        };
        assert!(with("close"));
        assert!(with("TE, Close"));
        assert!(!with("keep-alive"));
        assert!(!with("closed"));
        assert!(!asks_close(&RequestHeader::build("GET", b"/", None).unwrap()));
    }
}
