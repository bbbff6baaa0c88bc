//! The edge's connections, before pingora's HTTP handling: the per-client connection limit,
//! the keep-alive idle timeout, and the request-header deadline against slow senders
//! (slowloris). [`Guard`] is the service's app: it takes each accepted (and, on the HTTPS
//! port, handshaken) connection, refuses it when its client already has too many open, and
//! otherwise runs pingora's HTTP/1.1 request loop itself, on a [`Guarded`] stream, so that
//! the limits from the live config apply. HTTP/2 connections go to pingora unchanged.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

use super::limits::{too_many, Connections};
use super::proxy::{Edge, EdgeState};

/// The edge service's app: connection limits and timeouts around pingora's proxy.
pub struct Guard {
    proxy: Arc<HttpProxy<Edge>>,
    state: Arc<ArcSwap<EdgeState>>,
    connections: Arc<Connections>,
}

impl Guard {
    pub fn new(proxy: HttpProxy<Edge>, state: Arc<ArcSwap<EdgeState>>) -> Guard {
        Guard {
            proxy: Arc::new(proxy),
            state,
            connections: Arc::new(Connections::default()),
        }
    }
}

fn peer_ip(stream: &Stream) -> Option<IpAddr> {
    let digest = stream.get_socket_digest()?;
    digest.peer_addr()?.as_inet().map(|a| a.ip())
}

#[async_trait]
impl ServerApp for Guard {
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        // What this connection needs of the live limits (the config is not held meanwhile).
        let (idle_timeout, header_timeout, slot) = {
            let state = self.state.load();
            let limits = &state.config.limits;
            let slot = peer_ip(&stream).map(|ip| self.connections.enter(&limits.per_client, ip));
            (limits.idle_timeout, limits.header_timeout, slot)
        };
        // `Some(None)`: the client already has its connections open.
        if matches!(slot, Some(None)) {
            crate::telemetry::limited("connections");
            if !matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
                let body = too_many("connections").body();
                let head = format!(
                    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.flush().await;
            }
            Shutdown::shutdown(stream.as_mut()).await;
            return None;
        }
        // Held until the connection ends.
        let _slot = slot.flatten();
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }

        // HTTP/1.1, as pingora's own loop, with our idle timeout and header deadline.
        // pingora keeps an HTTP/1.1 connection open forever once a request asked for
        // keep-alive; the wait for each next request is bounded here.
        let keepalive = || (!*shutdown.borrow()).then(|| idle_timeout.as_secs().max(1));
        let guarded: Stream = Box::new(Guarded::new(stream, header_timeout));
        let mut session = ServerSession::new_http1(guarded);
        session.set_keepalive(keepalive());
        session.set_keepalive_reuses_remaining(self.proxy.server_options().and_then(|o| o.keepalive_request_limit));
        let mut result = self.proxy.process_new_http(session, shutdown).await;
        while let Some((stream, settings)) = result.map(|r| r.consume()) {
            // The next request's header gets its own deadline.
            let mut guarded = stream.into_any().downcast::<Guarded>().ok()?;
            guarded.expect_request();
            let mut session = ServerSession::new_http1(guarded);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            session.set_keepalive(keepalive());
            result = self.proxy.process_new_http(session, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

/// A viewer's HTTP/1.1 stream with a deadline for each request header: once the first byte
/// of a request has arrived, its header must be complete within `header_timeout`, or reads
/// fail with `TimedOut` and pingora closes the connection. The proxy ends the header phase
/// with [`header_received`] as soon as it has the request.
pub struct Guarded {
    inner: Stream,
    header_timeout: Duration,
    awaiting_header: AtomicBool,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    fn new(inner: Stream, header_timeout: Duration) -> Guarded {
        Guarded {
            inner,
            header_timeout,
            awaiting_header: AtomicBool::new(true),
            deadline: None,
        }
    }

    fn expect_request(&mut self) {
        self.awaiting_header.store(true, Ordering::Release);
        self.deadline = None;
    }
}

/// Ends the header deadline of the request on `stream`, if it is a [`Guarded`] one.
pub fn header_received(stream: Option<&Stream>) {
    if let Some(g) = stream.and_then(|s| s.as_any().downcast_ref::<Guarded>()) {
        g.awaiting_header.store(false, Ordering::Release);
    }
}

fn header_timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the request header did not arrive in time")
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.awaiting_header.load(Ordering::Acquire) {
            this.deadline = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.deadline.as_ref().is_some_and(|d| d.is_elapsed()) {
            crate::telemetry::limited("header_timeout");
            return Poll::Ready(Err(header_timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.deadline.is_none() {
                    this.deadline = Some(Box::pin(tokio::time::sleep(this.header_timeout)));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this.deadline.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    crate::telemetry::limited("header_timeout");
                    return Poll::Ready(Err(header_timed_out()));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded").field("inner", &self.inner).finish()
    }
}
