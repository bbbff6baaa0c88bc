//! The viewer's stream under pingora's HTTP handling: the request-header deadline, the
//! bytes the connection loop read ahead, HTTP/2's gathered writes, and the request the loop
//! routed, handed over to pingora's proxy ([`take_handoff`]).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

use super::admit::Routed;

/// A viewer's HTTP/1.1 stream with a deadline for each request header: once the first byte
/// of a request has arrived, its header must be complete within `header_timeout`, or reads
/// fail with `TimedOut` and pingora closes the connection. The proxy ends the header phase
/// with [`header_received`] as soon as it has the request.
pub struct Guarded {
    pub(crate) inner: Stream,
    header_timeout: Duration,
    awaiting_header: AtomicBool,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Bytes already read from `inner` (by the hit path's parser), read again first.
    replay: BytesMut,
    /// HTTP/2 only: writes gathered for one write per turn of the connection's task (see
    /// [`Guarded::corked`]); `None` writes straight through.
    out: Option<Out>,
    /// `send_file` has limited the socket's unsent bytes (`limit_unsent`), once for the
    /// connection.
    pub(crate) unsent_limited: bool,
    /// The request routed by the connection loop, for pingora's `request_filter`.
    handoff: std::sync::Mutex<Option<Box<Routed>>>,
}

/// What an HTTP/2 connection has written and not yet sent.
struct Out {
    buf: BytesMut,
    /// Counts the polls of the connection's task (see [`Guard::serve_h2`]).
    turn: Arc<AtomicU64>,
    /// The turn in which a flush was put off: a flush in a later one sends.
    deferred: Option<u64>,
}

/// Writes gathered before [`Guarded`] sends them even without a flush.
const CORK_MAX: usize = 64 * 1024;
/// A write this large (a body's DATA frame, 16 KiB by default) is not copied: it goes out
/// right after what was gathered before it.
const WRITE_THROUGH: usize = 16 * 1024;

impl Guarded {
    pub(crate) fn new(inner: Stream, header_timeout: Duration) -> Guarded {
        Guarded {
            inner,
            header_timeout,
            awaiting_header: AtomicBool::new(true),
            deadline: None,
            replay: BytesMut::new(),
            out: None,
            unsent_limited: false,
            handoff: std::sync::Mutex::new(None),
        }
    }

    /// An HTTP/2 connection's stream, with no header deadline (the h2 codec has its own
    /// limits), whose writes are sent once per turn of the connection's task rather than
    /// once per response. h2 flushes at the end of every poll of the connection, and each
    /// stream's task wakes the connection as it answers; with tokio running a task it just
    /// woke next, that was one TLS record and one `sendto` for every response. Here the first
    /// flush with data pending only wakes the task again, which puts it behind the tasks
    /// already queued (the streams answering the same read), and the next flush sends what
    /// all of them wrote, in one write.
    pub(crate) fn corked(inner: Stream, turn: Arc<AtomicU64>) -> Guarded {
        let mut g = Guarded::new(inner, Duration::ZERO);
        g.awaiting_header = AtomicBool::new(false);
        g.out = Some(Out {
            buf: BytesMut::new(),
            turn,
            deferred: None,
        });
        g
    }

    /// Writes out what the connection gathered; `Pending` until all of it is written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(out) = self.out.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !out.buf.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &out.buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    let _ = out.buf.split_to(n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        out.deferred = None;
        Poll::Ready(Ok(()))
    }

    pub(crate) fn header_done(&self) {
        self.awaiting_header.store(false, Ordering::Release);
    }

    pub(crate) fn replay(&mut self, bytes: BytesMut) {
        self.replay = bytes;
    }

    pub(crate) fn take_replay(&mut self) -> BytesMut {
        std::mem::take(&mut self.replay)
    }

    /// Hands `routed` (or nothing) to pingora's proxy with the next request.
    pub(crate) fn hand_off(&mut self, routed: Option<Box<Routed>>) {
        if let Ok(slot) = self.handoff.get_mut() {
            *slot = routed;
        }
    }

    pub(crate) fn expect_request(&mut self) {
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
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay.split_to(n));
            return Poll::Ready(Ok(()));
        }
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
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(out) = this.out.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        };
        if out.buf.len() >= CORK_MAX || data.len() >= WRITE_THROUGH {
            std::task::ready!(this.poll_send(cx))?;
            if data.len() >= WRITE_THROUGH {
                return Pin::new(&mut this.inner).poll_write(cx, data);
            }
        }
        let out = this.out.as_mut().expect("corked");
        out.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(out) = this.out.as_mut().filter(|o| !o.buf.is_empty()) {
            let turn = out.turn.load(Ordering::Relaxed);
            match out.deferred {
                // Sent at a flush in the task's next turn, after the tasks already queued.
                None => {
                    out.deferred = Some(turn);
                    cx.waker().wake_by_ref();
                    return Poll::Ready(Ok(()));
                }
                Some(t) if t == turn => return Poll::Ready(Ok(())),
                Some(_) => std::task::ready!(this.poll_send(cx))?,
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.out.is_some() {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        // Gathered writes are copied one slice at a time.
        self.out.is_none() && self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        let _ = std::future::poll_fn(|cx| self.poll_send(cx)).await;
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

/// The request the connection loop routed and handed to pingora with this stream, if any.
pub(crate) fn take_handoff(stream: Option<&Stream>) -> Option<Box<Routed>> {
    let g = stream?.as_any().downcast_ref::<Guarded>()?;
    g.handoff.lock().ok()?.take()
}

/// Writes `head` then `body`, both in one `writev` where the stream takes them so.
pub(crate) async fn write_both<W: AsyncWrite + Unpin>(
    stream: &mut W,
    mut head: &[u8],
    mut body: &[u8],
) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        let n = if head.is_empty() {
            stream.write(body).await?
        } else {
            stream
                .write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn an_http2_connections_writes_go_out_together_at_a_flush_in_a_later_turn() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        let turn = Arc::new(AtomicU64::new(1));
        let l4: pingora::protocols::l4::stream::Stream = ours.into();
        let mut g = Guarded::corked(Box::new(l4), turn.clone());
        let mut buf = [0u8; 64];
        // Two answers and their flushes in one turn: nothing is sent yet.
        for part in [&b"one "[..], b"two"] {
            g.write_all(part).await.unwrap();
            g.flush().await.unwrap();
        }
        assert_eq!(peer.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // The task's next turn: the first flush sends both, in one write.
        turn.fetch_add(1, Ordering::Relaxed);
        g.flush().await.unwrap();
        peer.read_exact(&mut buf[..7]).await.unwrap();
        assert_eq!(&buf[..7], b"one two");
        // A large write goes at once, right after what was gathered before it.
        g.write_all(b"frame header").await.unwrap();
        g.flush().await.unwrap();
        let big = vec![b'x'; WRITE_THROUGH];
        g.write_all(&big).await.unwrap();
        let mut got = vec![0u8; 12 + WRITE_THROUGH];
        peer.read_exact(&mut got).await.unwrap();
        assert!(got[..12] == b"frame header"[..] && got[12..] == big[..]);
        // So do gathered writes past CORK_MAX, flushed or not.
        for _ in 0..=CORK_MAX / 1024 {
            g.write_all(&[b'y'; 1024]).await.unwrap();
        }
        let mut got = vec![0u8; CORK_MAX];
        peer.read_exact(&mut got).await.unwrap();
        assert!(got.iter().all(|b| *b == b'y'));
        // The rest: put off at a flush, sent at one in the next turn.
        g.flush().await.unwrap();
        assert_eq!(peer.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        turn.fetch_add(1, Ordering::Relaxed);
        g.flush().await.unwrap();
        peer.read_exact(&mut got[..1024]).await.unwrap();
        // Closing sends what is gathered first.
        g.write_all(b"bye").await.unwrap();
        g.flush().await.unwrap();
        AsyncWriteExt::shutdown(&mut g).await.unwrap();
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye");
    }
}
