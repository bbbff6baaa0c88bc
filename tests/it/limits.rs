//! The edge's `limits`: request sizes get their status and a CloudFront-style body, slow
//! senders are cut off (header, idle and body timeouts), and one client cannot take more
//! than its connections and request rate, except the exempt ones (loopback by default).
//! The URL and header-size limits are in `tests/edge.rs`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;

fn config(app: u16, limits: &str) -> String {
    format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
origins:
  app: {{ http: "127.0.0.1:{app}" }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "*", origin: app, allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE], cache: {{ max_ttl: 0 }} }}
limits: {limits}
"#
    )
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

/// Whether the server has closed `s` (a read sees the end, or the connection is reset).
/// Bytes the server sent before closing are appended to `seen`.
fn closed(s: &mut TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Waits up to `limit` for the server to close `s`, calling `tick` every 100 ms meanwhile
/// (a failed write there means the server is gone, too). Returns what the server sent.
fn await_close(s: &mut TcpStream, limit: Duration, mut tick: impl FnMut(&mut TcpStream) -> bool) -> Option<Vec<u8>> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < limit {
        if closed(s, &mut seen) || !tick(s) {
            return Some(seen);
        }
    }
    None
}

/// Runs `exchange`, which pauses for less than `timeout` and must not be cut off by it. A
/// failure counts when it came sooner than `timeout` after the start (no timeout of that
/// length can have caused it); one that came later may be the timeout itself, run out on a
/// loaded machine during the pause, which proves nothing: the exchange is tried again, five
/// times at most.
fn shorter_than<T>(timeout: Duration, mut exchange: impl FnMut() -> Result<T, String>) -> T {
    for attempt in 1.. {
        let started = Instant::now();
        let e = match exchange() {
            Ok(t) => return t,
            Err(e) => e,
        };
        let took = started.elapsed();
        assert!(
            took >= timeout && attempt < 5,
            "attempt {attempt}, after {took:?} (the timeout is {timeout:?}): {e}"
        );
        eprintln!("attempt {attempt} took {took:?}, past the {timeout:?} timeout; again");
    }
    unreachable!()
}

/// Reads one response with a Content-Length body from a keep-alive connection.
fn read_response(s: &mut TcpStream) -> String {
    try_read_response(s).unwrap_or_else(|e| panic!("{e}"))
}

/// [`read_response`], or what went wrong: the connection closed (or was reset) before a
/// whole response.
fn try_read_response(s: &mut TcpStream) -> Result<String, String> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        if n == 0 {
            return Err(format!(
                "connection closed mid-response: {}",
                String::from_utf8_lossy(&data)
            ));
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                return Ok(text);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_requests_get_their_status_and_are_never_forwarded() {
    let seen = counting_origin().await;
    let app = seen.port;
    let hf = Homefront::start(&config(app, "{ max_body_size: 1KiB }"));
    let send = |raw: &str| raw_http(hf.ports.http, raw);

    let body = "b".repeat(1024);
    let ok = send(&format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n{body}"
    ));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let forwarded = seen.count_all();

    // A declared body over the limit: 413 before anything is read or forwarded.
    let big = "b".repeat(2000);
    let r = send(&format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{big}"
    ));
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("<Code>RequestEntityTooLarge</Code>"), "{r}");
    assert!(r.contains("larger than 1024 bytes"), "{r}");

    // A chunked body is counted as it streams: 413 once past the limit, and the origin never
    // gets a whole request.
    let chunks: String = (0..4).map(|_| format!("200\r\n{}\r\n", "c".repeat(512))).collect();
    let r = send(&format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunks}0\r\n\r\n"
    ));
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 413"), "{r}");

    // Too many header fields: 431 with a body saying so.
    let fields: String = (0..101).map(|i| format!("X-F{i}: v\r\n")).collect();
    let r = send(&format!(
        "GET /x HTTP/1.1\r\nHost: a\r\n{fields}Connection: close\r\n\r\n"
    ));
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    assert!(r.contains("<Code>TooManyHeaders</Code>"), "{r}");
    // Past the HTTP parser's own 256 fields the request cannot even be read: a bare 400.
    let fields: String = (0..300).map(|i| format!("X-F{i}: v\r\n")).collect();
    let r = send(&format!(
        "GET /x HTTP/1.1\r\nHost: a\r\n{fields}Connection: close\r\n\r\n"
    ));
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    assert_eq!(seen.count_all(), forwarded, "a refused request reached the origin");
    let ok = send("GET /z HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_senders_are_cut_off() {
    let seen = counting_origin().await;
    let app = seen.port;
    let hf = Homefront::start(&config(
        app,
        "{ header_timeout: 1s, idle_timeout: 2s, body_timeout: 1s }",
    ));
    let port = hf.ports.http;

    // A header that starts but trickles in (slowloris): the connection is closed, although
    // each piece arrives well within any per-read timeout.
    let mut s = connect(port);
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n").unwrap();
    let mut n = 0;
    let got = await_close(&mut s, Duration::from_secs(30), |s| {
        n += 1;
        s.write_all(format!("X-Drip-{n}: x\r\n").as_bytes()).is_ok()
    });
    assert!(got.is_some(), "a header trickling in for 30 s was never cut off");

    // A header sent in two parts a moment apart is fine (the header timeout is 1 s), and so
    // is waiting between requests on a kept-alive connection for less than the idle
    // timeout (2 s).
    let ok = |r: Result<String, String>| match r {
        Ok(r) if r.starts_with("HTTP/1.1 200") => Ok(()),
        Ok(r) => Err(r),
        Err(e) => Err(e),
    };
    shorter_than(Duration::from_secs(1), || {
        let mut s = connect(port);
        s.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let _ = s.write_all(b"\r\n");
        ok(try_read_response(&mut s))
    });
    let mut s = shorter_than(Duration::from_secs(2), || {
        let mut s = connect(port);
        s.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        ok(try_read_response(&mut s))?;
        std::thread::sleep(Duration::from_millis(1200));
        let _ = s.write_all(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
        ok(try_read_response(&mut s))?;
        Ok(s)
    });

    // An idle connection (nothing sent, or nothing after a response) is closed.
    let mut idle = connect(port);
    assert!(
        await_close(&mut idle, Duration::from_secs(30), |_| true).is_some(),
        "idle connection kept"
    );
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert!(
        await_close(&mut s, Duration::from_secs(30), |_| true).is_some(),
        "idle kept-alive connection kept"
    );

    // A body that stops arriving: 408, and the origin never gets a whole request.
    let before = seen.count_all();
    let mut s = connect(port);
    s.write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    let got = await_close(&mut s, Duration::from_secs(30), |_| true).expect("a stalled body was never timed out");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
    assert_eq!(seen.count_all(), before);

    let cut = |m: &str| {
        m.lines()
            .any(|l| l.starts_with("homefront_edge_limited_total{reason=\"header_timeout\"}") && !l.ends_with(" 0"))
    };
    let m = hf.metrics_when(cut).await;
    assert!(cut(&m), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_client_gets_limited_connections_and_rate() {
    let origin = counting_origin().await;
    let app = origin.port;
    let hf = Homefront::start(&config(
        app,
        "{ per_client: { max_connections: 2, requests_per_second: 1, burst: 5, exempt: [] } }",
    ));
    let port = hf.ports.http;

    // Two connections are open, each known to hold its slot because it was served (the
    // harness's own port probe may hold one for a moment: then it is refused; try again).
    let served = |i: usize| -> TcpStream {
        let deadline = Instant::now() + EVENT_DEADLINE;
        while Instant::now() < deadline {
            let mut s = connect(port);
            // A refused connection gets its 429 and is closed (or reset, having a request
            // the edge never read).
            let _ = s.write_all(format!("GET /open{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            if try_read_response(&mut s).is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
                s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("connection {i} was never served");
    };
    // The client's bucket fills up again at a request a second from its first request on.
    let first_request = Instant::now();
    let mut a = served(0);
    let b = served(1);
    // (Two of the five burst requests are spent now.)
    let refusals = |m: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix("homefront_edge_limited_total{reason=\"connections\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let refused_before = refusals(&hf.metrics());
    let mut c = connect(port);
    let refused = await_close(&mut c, EVENT_DEADLINE, |_| true).expect("a third connection was served");
    let text = String::from_utf8_lossy(&refused);
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("<Code>TooManyRequests</Code>"), "{text}");
    // Closing one frees its slot (checked at the end, once the rate part is done).
    drop(b);

    // Three requests in a burst, then 429 with Retry-After until the rate allows more: of
    // the burst of five, two went to open the connections, and one more comes back for
    // each second since the first request (however slow this machine is).
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..100 {
        if i >= 10 && retry_after.is_some() {
            break;
        }
        a.write_all(format!("GET /r{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut a);
        statuses.push(r[9..12].to_string());
        if r.starts_with("HTTP/1.1 429") {
            retry_after = r.lines().find_map(|l| {
                l.strip_prefix("retry-after: ")
                    .or(l.strip_prefix("Retry-After: "))
                    .map(str::to_string)
            });
            assert!(r.contains("<Code>TooManyRequests</Code>"), "{r}");
        }
    }
    let refilled = first_request.elapsed().as_secs() as usize;
    assert_eq!(&statuses[..3], ["200", "200", "200"], "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| *s == "200").count() <= 3 + refilled,
        "{statuses:?} with {refilled} token(s) back"
    );
    assert!(statuses.iter().all(|s| s == "200" || s == "429"), "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let m = hf.metrics();
    assert_eq!(
        refusals(&m),
        refused_before + 1,
        "the third connection is counted once: {m}"
    );
    // The closed connection's slot is free again: a new one is served (when the rate
    // allows).
    served(2);
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_is_exempt_by_default() {
    let origin = counting_origin().await;
    let app = origin.port;
    let hf = Homefront::start(&config(
        app,
        "{ per_client: { max_connections: 1, requests_per_second: 1, burst: 1 } }",
    ));
    let port = hf.ports.http;
    let mut held: Vec<TcpStream> = (0..5).map(|_| connect(port)).collect();
    for (i, s) in held.iter_mut().enumerate() {
        for j in 0..4 {
            s.write_all(format!("GET /r{i}-{j} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .unwrap();
            let r = read_response(s);
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        }
    }
}
