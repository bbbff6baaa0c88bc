//! HTTP/2 connections as the edge runs them (`edge::conn`): a GOAWAY and a prompt close on
//! shutdown, the idle timeout, and the limit on malformed streams. The client here writes
//! and reads HTTP/2 frames itself over a real TLS connection, to see what a library client
//! hides: which frames arrive, and when the server closes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn config(origin: u16, limits: &str) -> String {
    format!(
        r#"
listen: {{ https: "127.0.0.1:{{https}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
origins:
  app: {{ http: "127.0.0.1:{origin}" }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "*", origin: app }}
limits: {limits}
"#
    )
}

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// An HTTP/2 client connection, frame by frame. It acknowledges the server's SETTINGS and
/// PINGs as it reads, as every client must (a graceful shutdown waits for the PING's ack).
struct H2 {
    tls: SslStream<TcpStream>,
}

impl H2 {
    fn connect(port: u16) -> H2 {
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        b.set_alpn_protos(b"\x02h2").unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Nothing here waits this long unless the server fails to act.
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let tls = b.build().connect("a.test", tcp).unwrap();
        assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
        let mut c = H2 { tls };
        c.tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        c.send(SETTINGS, 0, 0, &[]);
        c
    }

    fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        self.tls.write_all(&f).unwrap();
    }

    /// A GET on `stream`, its header block in HPACK literals (no table, no Huffman).
    fn get(&mut self, stream: u32, path: &str, authority: Option<&str>) {
        let mut fields = vec![(":method", "GET"), (":scheme", "https"), (":path", path)];
        if let Some(a) = authority {
            fields.push((":authority", a));
        }
        let mut block = Vec::new();
        for (name, value) in fields {
            block.push(0x00);
            block.push(name.len() as u8);
            block.extend_from_slice(name.as_bytes());
            block.push(value.len() as u8);
            block.extend_from_slice(value.as_bytes());
        }
        self.send(HEADERS, END_HEADERS | END_STREAM, stream, &block);
    }

    /// The next frame from the server; `None` once it closed the connection.
    fn next(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        if let Err(e) = self.tls.read_exact(&mut head) {
            assert!(
                !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                "the server neither sent a frame nor closed the connection in 30 s"
            );
            return None;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        self.tls.read_exact(&mut payload).ok()?;
        let f = Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        };
        match (f.kind, f.flags & ACK) {
            (SETTINGS, 0) => self.send(SETTINGS, ACK, 0, &[]),
            (PING, 0) => self.send(PING, ACK, 0, &f.payload.clone()),
            _ => {}
        }
        Some(f)
    }

    /// Every frame until the server closes the connection.
    fn until_closed(&mut self) -> Vec<Frame> {
        std::iter::from_fn(|| self.next()).collect()
    }
}

/// The `:status` of a response header block from homefront: HPACK's static table has 200
/// (index 8) and 400 (index 12), which the encoder uses for them.
fn status(block: &[u8]) -> Option<u16> {
    match block.first() {
        Some(0x88) => Some(200),
        Some(0x8c) => Some(400),
        _ => None,
    }
}

/// A GOAWAY's last stream id and error code.
fn goaway(f: &Frame) -> (u32, u32) {
    let word = |i: usize| u32::from_be_bytes(f.payload[i..i + 4].try_into().unwrap());
    (word(0) & 0x7fff_ffff, word(4))
}

/// homefront in front of an echo origin with `limits`, and `client` run against it on a
/// thread of its own (the frame client blocks).
async fn with_homefront(limits: &str, client: impl FnOnce(Homefront) + Send + 'static) {
    let origin = start_echo_origin().await;
    let hf = Homefront::start(&config(origin, limits));
    tokio::task::spawn_blocking(move || client(hf)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_sends_goaway_and_closes_the_connection_promptly() {
    with_homefront("{ idle_timeout: 60s }", |mut hf| {
        let port = hf.ports.https;
        let mut c = H2::connect(port);
        c.get(1, "/before", Some("a.test"));
        let mut answered = false;
        while !answered {
            let f = c.next().expect("the connection stays open");
            answered = f.stream == 1 && f.flags & END_STREAM != 0 && matches!(f.kind, DATA | HEADERS);
        }
        hf.sigterm();
        let signalled = Instant::now();
        let frames = c.until_closed();
        let closed_after = signalled.elapsed();
        // Closed by the shutdown, not by the process's exit at the end of its 5 s grace
        // period: the process still runs, and has not logged that period's end, when the
        // connection is closed.
        let running = hf.child.try_wait().unwrap().is_none();
        let log = hf.stderr();
        let goaways: Vec<&Frame> = frames.iter().filter(|f| f.kind == GOAWAY).collect();
        assert!(!goaways.is_empty(), "no GOAWAY before the close: {frames:?}");
        // The last one names stream 1 as the last processed, with NO_ERROR.
        assert_eq!(goaway(goaways.last().unwrap()), (1, 0), "stream 1, NO_ERROR");
        assert!(
            running && !log.contains(GRACE_ENDS),
            "the connection stayed open until the process exited ({closed_after:?} after SIGTERM):\n{log}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    with_homefront("{ idle_timeout: 1s }", |hf| {
        let port = hf.ports.https;
        let mut c = H2::connect(port);
        let opened = Instant::now();
        c.get(1, "/one", Some("a.test"));
        let frames = c.until_closed();
        let idle_for = opened.elapsed();
        let answer = frames
            .iter()
            .find(|f| f.stream == 1 && f.kind == HEADERS)
            .expect("an answer");
        assert_eq!(status(&answer.payload), Some(200));
        assert!(
            frames
                .iter()
                .any(|f| f.stream == 1 && f.kind == DATA && f.flags & END_STREAM != 0),
            "the whole body before the close: {frames:?}"
        );
        // Closed by the timeout (which starts after the answer), not at once.
        assert!(idle_for >= Duration::from_secs(1), "closed after {idle_for:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_streams_are_refused_and_too_many_close_the_connection() {
    with_homefront("{ idle_timeout: 60s }", |hf| {
        let port = hf.ports.https;
        // No `:authority` and no Host: a 400 for the stream (from pingora), and the
        // connection goes on; a good request after 31 of them is answered.
        let mut c = H2::connect(port);
        for i in 0..31 {
            c.get(1 + 2 * i, "/bad", None);
        }
        c.get(63, "/good", Some("a.test"));
        let mut statuses = std::collections::BTreeMap::new();
        while statuses.len() < 32 {
            let f = c.next().expect("the connection stays open");
            if f.kind == HEADERS {
                statuses.insert(f.stream, status(&f.payload));
            }
            assert_ne!(f.kind, RST_STREAM, "{f:?}");
        }
        assert!(statuses.range(..63).all(|(_, s)| *s == Some(400)), "{statuses:?}");
        assert_eq!(statuses[&63], Some(200));

        // The 32nd malformed stream on one connection closes it: the 31 before it have their
        // 400, then GOAWAY ENHANCE_YOUR_CALM (which drops what was still queued), and the
        // streams after it are not answered.
        let mut c = H2::connect(port);
        for i in 0..40 {
            c.get(1 + 2 * i, "/bad", None);
        }
        let frames = c.until_closed();
        let answered: Vec<u32> = frames.iter().filter(|f| f.kind == HEADERS).map(|f| f.stream).collect();
        assert_eq!(answered, (0..31).map(|i| 1 + 2 * i).collect::<Vec<u32>>());
        assert!(frames
            .iter()
            .filter(|f| f.kind == HEADERS)
            .all(|f| status(&f.payload) == Some(400)));
        let last = frames.iter().rfind(|f| f.kind == GOAWAY).expect("a GOAWAY");
        assert_eq!(goaway(last).1, 0xb, "ENHANCE_YOUR_CALM");
    })
    .await;
}
