//! The one scriptable HTTP/1.1 test origin every integration test uses.
//!
//! A keep-alive HTTP/1.1 server on a loopback port. It records every request (method, target,
//! header fields in order, body) once its body has fully arrived, counts connections, and
//! answers as the test scripts it: per exact path, per path prefix, or by a fallback closure
//! (sync or async). An answer ([`Reply`]) has a status, header fields, a body (plain, chunked
//! pieces, or an echo of the request), and behaviors: a delay, a hold until the test releases
//! it, a declared length other than what is sent (a cut mid-body), a close after answering
//! (without `Connection: close`), an abortive close (RST), or raw bytes instead of an answer.
//! [`TestOrigin::stop`] returns once its listener and connections are closed; dropping it
//! closes them too.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// One request as the origin received it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// Path and query, as on the request line.
    pub target: String,
    /// The path, without the query.
    pub path: String,
    /// Header fields in order, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// 1-based: the how-manieth request this origin received.
    pub seq: usize,
    /// 1-based: the connection it came on.
    pub connection: usize,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Header fields as a map (the last value wins), as an echo shows them.
    pub fn header_map(&self) -> HashMap<String, String> {
        self.headers.iter().cloned().collect()
    }
}

/// What an answer's body is.
#[derive(Clone, Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    /// Sent chunked (`Transfer-Encoding: chunked`), one chunk per piece.
    Chunks(Vec<Vec<u8>>),
    /// A JSON echo of the request: `{"method", "uri", "headers"}`.
    Echo,
    /// The value of this request header, or `none`.
    EchoHeader(String),
    /// Sent chunked, each piece written and flushed as the test sends it on the channel
    /// ([`Reply::stream`]); the body ends when the test drops its sender.
    Stream(Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>>>),
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// `Content-Length` to declare instead of the body's length (send fewer bytes and
    /// [`Reply::close`] for an answer cut mid-body).
    pub length: Option<usize>,
    /// Answer `304` (no body) when If-None-Match carries this ETag; sent as `ETag`.
    pub etag: Option<String>,
    /// A pause before answering.
    pub delay: Duration,
    /// Held (after the delay) until the test closes this semaphore.
    pub hold: Option<Arc<Semaphore>>,
    /// Close the connection after answering, without having said so.
    pub close: bool,
    /// With `close`: a pause after answering, before closing.
    pub close_after: Duration,
    /// Close abortively (RST, not FIN) after answering.
    pub reset: bool,
    /// Written verbatim instead of a composed answer.
    pub raw: Option<Vec<u8>>,
    /// Answer a single-range `Range: bytes=...` of a plain body with 206 ([`Reply::ranges`]).
    pub ranges: bool,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
            length: None,
            etag: None,
            delay: Duration::ZERO,
            hold: None,
            close: false,
            close_after: Duration::ZERO,
            reset: false,
            raw: None,
            ranges: false,
        }
    }

    /// `status` with these header fields and body.
    pub fn with(status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Reply {
        let mut r = Reply::new(status).body(body);
        for (n, v) in headers {
            r = r.header(n, v);
        }
        r
    }

    /// `200` with this body.
    pub fn ok(body: impl AsRef<[u8]>) -> Reply {
        Reply::new(200).body(body)
    }

    /// `200` with a JSON echo of the request (see [`Body::Echo`]).
    pub fn echo() -> Reply {
        Reply {
            body: Body::Echo,
            ..Reply::new(200)
        }
    }

    /// Exactly these bytes, whatever the request.
    pub fn raw(bytes: impl AsRef<[u8]>) -> Reply {
        Reply {
            raw: Some(bytes.as_ref().to_vec()),
            ..Reply::new(0)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl AsRef<[u8]>) -> Reply {
        self.body = Body::Bytes(body.as_ref().to_vec());
        self
    }

    pub fn chunks<B: AsRef<[u8]>>(mut self, pieces: &[B]) -> Reply {
        self.body = Body::Chunks(pieces.iter().map(|p| p.as_ref().to_vec()).collect());
        self
    }

    /// A body the test sends piece by piece, when it chooses: the reply, and the sender
    /// (drop it to end the body). For one request: a second one waits for the first's end.
    pub fn stream(mut self) -> (Reply, tokio::sync::mpsc::UnboundedSender<Vec<u8>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.body = Body::Stream(Arc::new(tokio::sync::Mutex::new(rx)));
        (self, tx)
    }

    /// Answers single byte ranges of a plain body with 206, as file servers do.
    pub fn ranges(mut self) -> Reply {
        self.ranges = true;
        self
    }

    pub fn echo_header(mut self, name: &str) -> Reply {
        self.body = Body::EchoHeader(name.to_string());
        self
    }

    pub fn etag(mut self, etag: &str) -> Reply {
        self.etag = Some(etag.to_string());
        self
    }

    pub fn length(mut self, declared: usize) -> Reply {
        self.length = Some(declared);
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    pub fn hold(mut self, gate: Arc<Semaphore>) -> Reply {
        self.hold = Some(gate);
        self
    }

    pub fn close(mut self) -> Reply {
        self.close = true;
        self
    }

    /// Closes `after` answering (see [`Reply::close_after`]).
    pub fn close_after(mut self, after: Duration) -> Reply {
        self.close = true;
        self.close_after = after;
        self
    }

    /// Closes with a RST after answering.
    pub fn reset(mut self) -> Reply {
        self.close = true;
        self.reset = true;
        self
    }
}

type Fallback = Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

struct State {
    exact: HashMap<String, Reply>,
    prefixes: Vec<(String, Reply)>,
    fallback: Option<Fallback>,
    requests: Vec<Request>,
    /// Requests read so far (recorded or not yet), for [`Request::seq`].
    arrived: usize,
    connections: usize,
    in_flight: usize,
    max_in_flight: usize,
    /// Send a `Date` field, as real servers do.
    date: bool,
    /// The tasks serving connections, to close them all on stop.
    serving: Vec<JoinHandle<()>>,
}

/// The test origin; see the module documentation.
pub struct TestOrigin {
    pub port: u16,
    state: Arc<Mutex<State>>,
    /// The accepting task, until [`TestOrigin::stop`] takes it.
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl TestOrigin {
    /// Starts on an ephemeral loopback port; answers `404` until scripted.
    pub async fn start() -> TestOrigin {
        Self::start_on(0).await
    }

    /// Starts on this loopback port (0: an ephemeral one).
    pub async fn start_on(port: u16) -> TestOrigin {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            exact: HashMap::new(),
            prefixes: Vec::new(),
            fallback: None,
            requests: Vec::new(),
            arrived: 0,
            connections: 0,
            in_flight: 0,
            max_in_flight: 0,
            date: true,
            serving: Vec::new(),
        }));
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let mut s = st.lock().unwrap();
                s.connections += 1;
                let task = tokio::spawn(serve(stream, st.clone(), s.connections));
                s.serving.retain(|t| !t.is_finished());
                s.serving.push(task);
            }
        });
        TestOrigin {
            port,
            state,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// An origin answering every request with `reply`.
    pub async fn answering(reply: Reply) -> TestOrigin {
        let o = Self::start().await;
        o.route_prefix("", reply);
        o
    }

    /// Leaves the origin running until the test's runtime ends; returns its port.
    pub fn leak(self) -> u16 {
        let port = self.port;
        std::mem::forget(self);
        port
    }

    /// No `Date` field in answers (by default there is one, as real servers send).
    pub fn without_date(&self) {
        self.state.lock().unwrap().date = false;
    }

    /// Answers requests for exactly `path` (without the query) with `reply`, replacing any
    /// earlier script for it.
    pub fn route(&self, path: &str, reply: Reply) {
        self.state.lock().unwrap().exact.insert(path.to_string(), reply);
    }

    /// Answers requests whose path starts with `prefix` with `reply` (the longest prefix
    /// wins; an exact route goes first).
    pub fn route_prefix(&self, prefix: &str, reply: Reply) {
        let mut s = self.state.lock().unwrap();
        s.prefixes.retain(|(p, _)| p != prefix);
        s.prefixes.push((prefix.to_string(), reply));
        s.prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// Answers what no route matches.
    pub fn fallback(&self, f: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        self.fallback_async(move |r| {
            let reply = f(&r);
            async move { reply }
        });
    }

    /// Answers what no route matches, by a future.
    pub fn fallback_async<F, Fut>(&self, f: F)
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.state.lock().unwrap().fallback = Some(Arc::new(move |r| Box::pin(f(r))));
    }

    /// Every request for `path` (without the query), in order.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        let s = self.state.lock().unwrap();
        s.requests.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Every request, in order.
    pub fn all_requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The last request for `path`.
    pub fn last(&self, path: &str) -> Option<Request> {
        self.requests(path).pop()
    }

    pub fn count(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Whole requests received (header and complete body).
    pub fn count_all(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Requests being answered now (delayed or held).
    pub fn in_flight(&self) -> usize {
        self.state.lock().unwrap().in_flight
    }

    /// The most requests there were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    /// Stops accepting and closes every open connection: the origin is gone. Returns once
    /// the listener and the connections are closed (their tasks, which own them, have ended).
    pub async fn stop(&self) {
        let accept = self.accept.lock().unwrap().take().expect("stopped once");
        accept.abort();
        let _ = accept.await;
        // No connection is accepted any more: these are all there are.
        let serving: Vec<_> = self.state.lock().unwrap().serving.drain(..).collect();
        for task in &serving {
            task.abort();
        }
        for task in serving {
            let _ = task.await;
        }
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
        for task in self.state.lock().unwrap().serving.drain(..) {
            task.abort();
        }
    }
}

/// Reads one request off `stream` (`buf` holds bytes read past the last one). `None` once the
/// connection ends before a whole request.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    async fn more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
        let mut chunk = [0u8; 16384];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }
    async fn line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
        loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&buf[..i]).into_owned();
                buf.drain(..i + 2);
                return Some(l);
            }
            more(stream, buf).await?;
        }
    }
    async fn exactly(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
        while buf.len() < n {
            more(stream, buf).await?;
        }
        Some(buf.drain(..n).collect())
    }

    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        more(stream, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut req = Request {
        method,
        path: target.split('?').next().unwrap_or_default().to_string(),
        target,
        headers,
        ..Request::default()
    };
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.ok()?;
    }
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let size = line(stream, buf).await?;
            let size = size.split(';').next().unwrap_or_default().trim();
            let n = usize::from_str_radix(size, 16).ok()?;
            if n == 0 {
                // Trailer fields, up to the empty line.
                while !line(stream, buf).await?.is_empty() {}
                break;
            }
            let data = exactly(stream, buf, n + 2).await?;
            req.body.extend_from_slice(&data[..n]);
        }
    } else if let Some(len) = req.header("content-length") {
        let n: usize = len.parse().ok()?;
        req.body = exactly(stream, buf, n).await?;
    }
    Some(req)
}

async fn serve(mut stream: TcpStream, st: Arc<Mutex<State>>, connection: usize) {
    let mut buf = Vec::new();
    while let Some(mut req) = read_request(&mut stream, &mut buf).await {
        req.connection = connection;
        let (found, fallback, date) = {
            let mut s = st.lock().unwrap();
            s.arrived += 1;
            req.seq = s.arrived;
            s.requests.push(req.clone());
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            let found = s
                .exact
                .get(&req.path)
                .or_else(|| {
                    s.prefixes
                        .iter()
                        .find(|(p, _)| req.path.starts_with(p.as_str()))
                        .map(|(_, r)| r)
                })
                .cloned();
            (found, s.fallback.clone(), s.date)
        };
        let reply = match (found, fallback) {
            (Some(r), _) => r,
            (None, Some(f)) => f(req.clone()).await,
            (None, None) => Reply::ok("no such route").with_status(404),
        };
        tokio::time::sleep(reply.delay).await;
        if let Some(gate) = &reply.hold {
            // Closed: every waiter goes on.
            let _ = gate.acquire().await;
        }
        st.lock().unwrap().in_flight -= 1;
        let out = compose(&req, &reply, date);
        if stream.write_all(&out).await.is_err() {
            return;
        }
        let _ = stream.flush().await;
        if let (Body::Stream(pieces), true) = (&reply.body, req.method != "HEAD") {
            let mut pieces = pieces.lock().await;
            while let Some(p) = pieces.recv().await {
                let mut chunk = format!("{:x}\r\n", p.len()).into_bytes();
                chunk.extend_from_slice(&p);
                chunk.extend_from_slice(b"\r\n");
                if stream.write_all(&chunk).await.is_err() || stream.flush().await.is_err() {
                    return;
                }
            }
            if stream.write_all(b"0\r\n\r\n").await.is_err() {
                return;
            }
        }
        let asked_close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if reply.close || asked_close {
            tokio::time::sleep(reply.close_after).await;
            if reply.reset {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
            return;
        }
    }
}

impl Reply {
    fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }
}

/// The bytes of `reply` to `req`.
fn compose(req: &Request, reply: &Reply, date: bool) -> Vec<u8> {
    if let Some(raw) = &reply.raw {
        return raw.clone();
    }
    let not_modified = reply.etag.is_some() && req.header("if-none-match") == reply.etag.as_deref();
    let status = if not_modified { 304 } else { reply.status };
    if let (true, Body::Bytes(all), Some(range), false) = (reply.ranges, &reply.body, req.header("range"), not_modified)
    {
        if let Some((start, end)) = byte_range(range, all.len()) {
            let mut head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{}\r\nContent-Length: {}\r\n",
                all.len(),
                end + 1 - start
            );
            for (n, v) in &reply.headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let mut out = head.into_bytes();
            if req.method != "HEAD" {
                out.extend_from_slice(&all[start..=end]);
            }
            return out;
        }
    }
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    if date {
        head.push_str(&format!(
            "date: {}\r\n",
            httpdate::fmt_http_date(std::time::SystemTime::now())
        ));
    }
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(e) = &reply.etag {
        head.push_str(&format!("etag: {e}\r\n"));
    }
    let bodiless = status < 200 || status == 204 || status == 304;
    let send_body = !bodiless && req.method != "HEAD";
    let mut body = Vec::new();
    match &reply.body {
        Body::Stream(_) if !bodiless => {
            // The pieces follow as the test sends them (`serve`).
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        }
        Body::Chunks(pieces) if !bodiless => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            if send_body {
                for p in pieces {
                    body.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
                    body.extend_from_slice(p);
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(b"0\r\n\r\n");
            }
        }
        _ => {
            let content = if bodiless {
                Vec::new()
            } else {
                match &reply.body {
                    Body::Bytes(b) => b.clone(),
                    Body::Chunks(_) | Body::Stream(_) => unreachable!(),
                    Body::Echo => {
                        let headers: BTreeMap<String, String> = req.headers.iter().cloned().collect();
                        serde_json::json!({ "method": req.method, "uri": req.target, "headers": headers })
                            .to_string()
                            .into_bytes()
                    }
                    Body::EchoHeader(h) => req
                        .header_map()
                        .get(h)
                        .map_or("none", |v| v.as_str())
                        .as_bytes()
                        .to_vec(),
                }
            };
            if !bodiless {
                head.push_str(&format!(
                    "Content-Length: {}\r\n",
                    reply.length.unwrap_or(content.len())
                ));
            }
            head.push_str("\r\n");
            if send_body {
                body = content;
            }
        }
    }
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// A single `bytes=` range of a body of `len` bytes, as (first, last) inclusive.
fn byte_range(range: &str, len: usize) -> Option<(usize, usize)> {
    let spec = range.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => (len.saturating_sub(n.parse().ok()?), len - 1),
        (s, "") => (s.parse().ok()?, len - 1),
        (s, e) => (s.parse().ok()?, e.parse::<usize>().ok()?.min(len - 1)),
    };
    (start <= end).then_some((start, end))
}
