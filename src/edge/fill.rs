//! A range of an object the cache does not hold yet (a seek in a video on a cold cache):
//! the viewer's `Range` goes to the origin as it is, and its bytes come back at once,
//! however large the object; meanwhile one background request per object (a pingora
//! subrequest, without the range) fills the cache with the whole object, so later ranges and
//! later viewers are hits. Viewers seeking in the same object while it fills are sent their
//! ranges the same way and start no second fill. An object larger than the cache's limit for
//! one object is never filled: every range of it goes to the origin.

use std::collections::HashSet;
use std::io::Cursor;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, TimingDigest, UniqueID,
    UniqueIDType,
};
use pingora::proxy::{subrequest, Session, Subrequest, SubrequestSpawner};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The background fills under way, and the proxy that runs them.
#[derive(Default)]
pub struct Fills {
    proxy: OnceLock<Weak<dyn Subrequest + Send + Sync>>,
    /// Cache keys (primary) being filled.
    running: Mutex<HashSet<String>>,
}

impl Fills {
    /// The proxy app the fills run through, once it exists.
    pub fn set_proxy(&self, proxy: Weak<dyn Subrequest + Send + Sync>) {
        let _ = self.proxy.set(proxy);
    }

    /// Starts filling `key` with the viewer's request (`session`, routed by `authority`)
    /// without its range, unless a fill of it is under way. Returns whether one started.
    pub fn start(self: &Arc<Self>, session: &Session, authority: &str, key: &str) -> bool {
        let Some(proxy) = self.proxy.get().and_then(Weak::upgrade) else {
            return false;
        };
        let Some(raw) = whole_object_request(session.req_header(), authority) else {
            return false;
        };
        if !self
            .running
            .lock()
            .map(|mut r| r.insert(key.to_string()))
            .unwrap_or(false)
        {
            return false;
        }
        // The fill is an HTTP/1.1 request replayed through the proxy as a subrequest, with
        // the viewer's TLS and socket digests (the same scheme, cache key and client),
        // whatever the viewer's HTTP version.
        let digest = session.digest();
        let io = Replay {
            request: Cursor::new(raw),
            ssl: digest.and_then(|d| d.ssl_digest.clone()),
            socket: digest.and_then(|d| d.socket_digest.clone()),
        };
        let fills = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            let mut replay = ServerSession::new_http1(Box::new(io));
            if matches!(replay.read_request().await, Ok(true)) {
                let ctx = subrequest::Ctx::builder().build();
                let fill = SubrequestSpawner::new(proxy).spawn_background_subrequest(&replay, ctx);
                let _ = fill.await;
            }
            if let Ok(mut r) = fills.running.lock() {
                r.remove(&key);
            }
        });
        true
    }
}

/// The viewer's GET as an HTTP/1.1 request for the whole object: its target, `Host` (the
/// canonical authority it was routed by) and fields, without the range, the validator of a
/// range (`If-Range`) and the fields of a body or a connection.
fn whole_object_request(req: &RequestHeader, authority: &str) -> Option<Vec<u8>> {
    const LEFT_OUT: [&str; 9] = [
        "host",
        "range",
        "if-range",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
    ];
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    if authority.is_empty() || target.bytes().any(|b| b <= b' ') {
        return None;
    }
    let mut out = format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    for (name, value) in &req.headers {
        if LEFT_OUT.contains(&name.as_str()) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

/// A connection that holds one request to read and takes whatever is written to it: the
/// viewer's side of a fill.
#[derive(Debug)]
struct Replay {
    request: Cursor<Vec<u8>>,
    ssl: Option<Arc<SslDigest>>,
    socket: Option<Arc<SocketDigest>>,
}

impl AsyncRead for Replay {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.request.position() < self.request.get_ref().len() as u64 {
            Pin::new(&mut self.request).poll_read(cx, buf)
        } else {
            // Nothing more comes: the request has no body.
            Poll::Pending
        }
    }
}

impl AsyncWrite for Replay {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl UniqueID for Replay {
    fn id(&self) -> UniqueIDType {
        0
    }
}

impl Ssl for Replay {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.ssl.clone()
    }
}

impl GetTimingDigest for Replay {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![]
    }
}

impl GetProxyDigest for Replay {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Replay {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.socket.clone()
    }
}

impl Peek for Replay {}

#[async_trait]
impl Shutdown for Replay {
    async fn shutdown(&mut self) {}
}

/// The complete length a `Content-Range` names (`bytes 0-99/1000` → 1000); `None` when it is
/// unknown (`/*`) or unreadable.
pub fn complete_length(content_range: &str) -> Option<u64> {
    let (unit, rest) = content_range.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    rest.rsplit_once('/')?.1.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_length_of_a_content_range() {
        assert_eq!(complete_length("bytes 0-99/1000"), Some(1000));
        assert_eq!(
            complete_length("bytes 1073741824-1073741824/1073741825"),
            Some(1_073_741_825)
        );
        assert_eq!(complete_length("bytes 0-99/*"), None);
        assert_eq!(complete_length("items 0-1/2"), None);
        assert_eq!(complete_length("bytes */1000"), Some(1000));
        assert_eq!(complete_length("garbage"), None);
    }
}
