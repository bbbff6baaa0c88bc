//! The pass path (`edge::pass`): requests whose answers the cache does not keep, sent to an
//! HTTP origin without pingora's proxy. Each is checked against the same request through
//! pingora's proxy (the first request for a key, before it is known to be uncacheable, or a
//! request with a precondition, which the pass path leaves to pingora): the origin must get
//! the same request and the viewer the same answer, framed the same way.

use std::io::Read;
use std::time::Duration;

use crate::common::*;

const PAGE_LEN: usize = 5000;

fn page() -> Vec<u8> {
    let mut s = String::new();
    while s.len() < PAGE_LEN {
        s.push_str("<p>the same paragraph, again and again</p>\n");
    }
    s.truncate(PAGE_LEN);
    s.into_bytes()
}

/// The test origin: it answers by path, in the framing each path names, without a `Date`
/// field.
async fn start_origin() -> TestOrigin {
    let origin = TestOrigin::start().await;
    origin.without_date();
    origin.fallback(answer_for);
    origin
}

/// The answer for a request.
fn answer_for(r: &Request) -> Reply {
    let no_store = ("Cache-Control", "no-store");
    match r.path.as_str() {
        p if p.starts_with("/n/") => Reply::with(
            200,
            &[
                ("Content-Type", "text/plain"),
                no_store,
                ("Set-Cookie", &format!("s={}", r.seq)),
                ("X-From", "origin"),
                ("ETag", "\"e1\""),
            ],
            "passed body",
        ),
        "/api/page.html" => Reply::with(200, &[("Content-Type", "text/html")], page()),
        "/api/stream.txt" => Reply::new(200)
            .header("Content-Type", "application/octet-stream")
            .chunks(&["first;", "second;", "third;"]),
        "/api/empty" => Reply::new(204),
        // Closes without having said so (no `Connection: close`), as an origin whose
        // keep-alive timeout ran out does.
        "/api/once.txt" => Reply::ok("once").close(),
        p if p.starts_with("/c/") => Reply::with(
            200,
            &[("Content-Type", "text/plain"), ("Cache-Control", "max-age=600")],
            "cached body",
        ),
        // Far past the response timeout (1 s), whatever the machine's load.
        "/api/slow.txt" => Reply::with(404, &[], "no such path").delay(Duration::from_secs(30)),
        // Dies after the header and part of the body.
        "/api/cut.txt" => Reply::with(200, &[("Content-Type", "text/plain")], "partial")
            .length(100)
            .close(),
        _ => Reply::with(404, &[], "no such path"),
    }
}

/// The last request for `path`: its header fields in order, without the edge's request id
/// (which differs between any two requests).
fn asked(origin: &TestOrigin, path: &str) -> Vec<(String, String)> {
    let last = origin.last(path).unwrap_or_else(|| panic!("no request for {path}"));
    last.headers.into_iter().filter(|(n, _)| n != "x-amz-cf-id").collect()
}

/// The chunked test body as the viewer gets it (each piece with its `;`).
const STREAMED: &[u8] = b"first;second;third;";

const CONFIG: &str = r#"
listen: { http: "127.0.0.1:{http}", https: "127.0.0.1:{https}" }
metrics: { listen: "127.0.0.1:{metrics}" }
admin: { listen: "127.0.0.1:{admin}" }
cache: { disk_size: 64MiB, memory_size: 8MiB }
origins:
  app: { http: "127.0.0.1:{app}", response_timeout: 1s }
distributions:
  - name: main
    domains: [p.test]
    access_log: cloudfront
    behaviors:
      - path_pattern: "/api/*"
        origin: app
        cache: { max_ttl: 0 }
        compress: true
        allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE]
      - path_pattern: "*"
        origin: app
        response_headers:
          cors: { allow_origins: ["https://app.test"], allow_methods: [GET], allow_headers: ["*"] }
"#;

struct Setup {
    hf: Homefront,
    origin: TestOrigin,
}

async fn setup() -> Setup {
    let origin = start_origin().await;
    let hf = Homefront::start(&CONFIG.replace("{app}", &origin.port.to_string()));
    Setup { hf, origin }
}

impl H1 {
    /// Headers without those that differ between any two answers (the time, the request
    /// id, the origin's per-request cookie).
    fn stable(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "date" | "x-amz-cf-id" | "set-cookie"))
            .cloned()
            .collect()
    }
}

fn one(port: u16, request: String) -> H1 {
    pipelined(port, &[request]).remove(0)
}

fn req(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: p.test\r\n{extra}\r\n")
}

/// An HTTPS client that speaks HTTP/1.1 only (the pass path's protocol) to `p.test`.
fn https1_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .resolve("p.test", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn pass_count(m: &str) -> u64 {
    m.lines()
        .find_map(|l| l.strip_prefix("homefront_edge_pass_path_total "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no homefront_edge_pass_path_total in {m}"))
}

async fn passes_reach(s: &Setup, n: u64) -> String {
    let m = s.hf.metrics_when(|m| pass_count(m) >= n).await;
    assert_eq!(pass_count(&m), n, "requests the pass path answered");
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pass_asks_the_origin_and_answers_the_viewer_as_the_full_path_does() {
    let s = setup().await;
    let port = s.hf.ports.http;
    let viewer = "Origin: https://app.test\r\nCookie: session=1\r\nX-Forwarded-For: 10.9.8.7\r\nUser-Agent: t/1\r\nConnection: keep-alive\r\n";
    // The first request for the key goes through pingora's cache and finds the answer
    // uncacheable; from then on pingora bypasses the cache for the key. Its bypass is what
    // the pass path does: a hop-by-hop header (which pingora strips) sends the request to
    // pingora, and the same request without it takes the pass path.
    let first = one(port, req("GET", "/n/a.txt", viewer));
    assert_eq!(first.get("x-cache"), Some("Miss from homefront"));
    let by_proxy = one(port, req("GET", "/n/a.txt", &format!("{viewer}TE: trailers\r\n")));
    let asked_by_proxy = asked(&s.origin, "/n/a.txt");
    assert_eq!(pass_count(&s.hf.metrics()), 0);
    // pingora puts its connection back in its pool after the viewer has the answer, so
    // whether its second request found it there is a race: count only the pass path's.
    let by_pingora = s.origin.connections();
    let by_pass = one(port, req("GET", "/n/a.txt", viewer));
    passes_reach(&s, 1).await;
    let asked_by_pass = asked(&s.origin, "/n/a.txt");
    assert_eq!(s.origin.count("/n/a.txt"), 3);

    assert_eq!(asked_by_pass, asked_by_proxy, "the origin request");
    for (name, value) in [("x-forwarded-for", "10.9.8.7, 127.0.0.1"), ("via", "1.1 homefront")] {
        assert_eq!(
            asked_by_pass.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()),
            Some(value)
        );
    }
    assert!(!asked_by_pass.iter().any(|(n, _)| n == "cookie" || n == "connection"));
    assert_eq!(by_pass.status, 200);
    assert_eq!(by_pass.stable(), by_proxy.stable(), "the answer's header");
    assert_eq!(by_pass.body, b"passed body");
    assert_eq!(by_pass.body, by_proxy.body);
    assert_eq!(by_pass.get("x-cache"), Some("Miss from homefront"));
    assert_eq!(by_pass.get("access-control-allow-origin"), Some("https://app.test"));
    assert_eq!(by_pass.get("connection"), Some("keep-alive"));
    assert_eq!(by_pass.get("set-cookie"), Some("s=3"), "the viewer gets its own cookie");
    assert_ne!(by_pass.get("x-amz-cf-id"), by_proxy.get("x-amz-cf-id"));

    // HEAD: the origin gets a HEAD, the viewer the GET's header without a body.
    let head = one(port, req("HEAD", "/n/a.txt", viewer));
    passes_reach(&s, 2).await;
    assert_eq!(head.stable(), by_pass.stable());
    assert!(head.body.is_empty());

    // The access log has each pass as the miss it is.
    let m = s.hf.metrics();
    let misses = r#"homefront_requests_total{behavior="*",cache="Miss",distribution="main",status_class="2xx"} 4"#;
    assert!(m.contains(misses), "{m}");
    let id = by_pass.get("x-amz-cf-id").unwrap();
    let lines = log_lines(&s.hf.dir.path().join("data/logs/distributions/main"), 4).await;
    let line = lines
        .iter()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("no log line for {id}: {lines:?}"));
    assert!(
        line.contains("\tMiss\t") && line.contains("\t/n/a.txt\t200\t"),
        "{line}"
    );

    // The pass path keeps its origin connection alive: one for all its passes.
    for _ in 0..5 {
        assert_eq!(one(port, req("GET", "/n/a.txt", "")).status, 200);
    }
    passes_reach(&s, 7).await;
    assert_eq!(s.origin.connections(), by_pingora + 1);
    assert_eq!(s.origin.count("/n/a.txt"), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_chunked_and_empty_passes_are_framed_as_pingora_frames_them() {
    let s = setup().await;
    let port = s.hf.ports.http;
    // A behavior that does not cache passes every plain request; a precondition sends the
    // same one through pingora.
    let through_pingora = "If-None-Match: \"nothing\"\r\n";
    for (path, extra) in [
        ("/api/page.html", "Accept-Encoding: gzip\r\n"),
        ("/api/page.html", ""),
        ("/api/stream.txt", "Accept-Encoding: gzip\r\n"),
        ("/api/empty", ""),
    ] {
        let before = pass_count(&s.hf.metrics());
        let by_pass = one(port, req("GET", path, extra));
        let by_proxy = one(port, req("GET", path, &format!("{extra}{through_pingora}")));
        passes_reach(&s, before + 1).await;
        assert_eq!(
            asked(&s.origin, path)
                .iter()
                .find(|(n, _)| n == "if-none-match")
                .map(|(_, v)| v.as_str()),
            Some("\"nothing\"")
        );
        assert_eq!(by_pass.status, by_proxy.status, "{path} {extra}");
        assert_eq!(by_pass.stable(), by_proxy.stable(), "{path} {extra}");
        assert_eq!(by_pass.chunked, by_proxy.chunked, "{path} {extra}");
        let decoded = |a: &H1| match a.get("content-encoding") {
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&a.body[..]).read_to_end(&mut out).unwrap();
                out
            }
            _ => a.body.clone(),
        };
        let expected = match path {
            "/api/page.html" => page(),
            "/api/stream.txt" => STREAMED.to_vec(),
            _ => Vec::new(),
        };
        assert_eq!(decoded(&by_pass), expected, "{path} {extra}");
        assert_eq!(decoded(&by_proxy), expected, "{path} {extra}");
        match (path, extra.is_empty()) {
            ("/api/page.html", false) => {
                assert_eq!(by_pass.get("content-encoding"), Some("gzip"));
                assert!(by_pass.chunked && by_pass.body.len() < PAGE_LEN / 4);
            }
            ("/api/page.html", true) => assert_eq!(by_pass.get("content-length"), Some("5000")),
            ("/api/stream.txt", _) => assert!(by_pass.chunked, "no length: chunked"),
            _ => assert_eq!(by_pass.status, 204),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_passes_and_hits_are_answered_in_order() {
    let s = setup().await;
    let port = s.hf.ports.http;
    // Fill the cache for /c/x.txt.
    assert_eq!(
        one(port, req("GET", "/c/x.txt", "")).get("x-cache"),
        Some("Miss from homefront")
    );
    let answers = pipelined(
        port,
        &[
            req("GET", "/api/page.html", ""),
            req("GET", "/c/x.txt", ""),
            req("HEAD", "/api/stream.txt", ""),
            req("GET", "/api/stream.txt", ""),
            req("GET", "/api/page.html", "Connection: close\r\n"),
        ],
    );
    let got: Vec<_> = answers
        .iter()
        .map(|a| (a.status, a.get("x-cache").unwrap().to_string(), a.body.len()))
        .collect();
    assert_eq!(
        got,
        [
            (200, "Miss from homefront".to_string(), PAGE_LEN),
            (200, "Hit from homefront".to_string(), 11),
            (200, "Miss from homefront".to_string(), 0),
            (200, "Miss from homefront".to_string(), STREAMED.len()),
            (200, "Miss from homefront".to_string(), PAGE_LEN),
        ]
    );
    assert_eq!(answers[3].body, STREAMED);
    assert_eq!(answers[4].get("connection"), Some("close"));
    passes_reach(&s, 4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_origin_gets_a_gateway_timeout_and_an_unreachable_one_a_bad_gateway() {
    let s = setup().await;
    let port = s.hf.ports.http;
    // The response timeout (1 s) runs out on the pass path: its own 504, as pingora's.
    let slow = one(port, req("GET", "/api/slow.txt", ""));
    assert_eq!(slow.status, 504);
    assert_eq!(slow.get("x-cache"), Some("Error from homefront"));
    assert_eq!(slow.get("connection"), Some("close"));
    assert!(String::from_utf8_lossy(&slow.body).contains("<Code>GatewayTimeout</Code>"));
    passes_reach(&s, 1).await;
    let by_proxy = one(port, req("GET", "/api/slow.txt", "If-None-Match: \"x\"\r\n"));
    assert_eq!(by_proxy.stable(), slow.stable());
    assert_eq!(by_proxy.body, slow.body);
    let timeouts = format!(
        r#"homefront_origin_failures_total{{origin="app",reason="timeout",upstream="127.0.0.1:{}"}} 2"#,
        s.origin.port
    );
    let m = s.hf.metrics_when(|m| m.contains(&timeouts)).await;
    assert!(m.contains(&timeouts), "one by each path: {m}");

    // An origin that dies after the header, before the body is whole. If the edge sees the
    // end before anything went to the viewer, the viewer gets its 502; if the header went
    // out already (the pass path writes what it has whenever the origin has nothing more
    // ready), the transfer is cut short: fewer bytes than declared, then the close. Never a
    // complete-looking answer.
    let raw = raw_http(port, &req("GET", "/api/cut.txt", ""));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    if head.starts_with("HTTP/1.1 502") {
        assert!(head.to_ascii_lowercase().contains("connection: close"), "{raw}");
        assert!(body.contains("<Code>BadGateway</Code>"), "{raw}");
    } else {
        assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(head.to_ascii_lowercase().contains("content-length: 100"), "{raw}");
        assert!(body.len() < 100 && "partial".starts_with(body), "{raw}");
    }
    passes_reach(&s, 2).await;

    // With the origin gone, the connection fails: pingora takes the request (and retries,
    // and answers 502) as for any other.
    s.origin.stop().await;
    let gone = one(port, req("GET", "/api/page.html", ""));
    assert_eq!(gone.status, 502, "{gone:?}");
    assert!(String::from_utf8_lossy(&gone.body).contains("<Code>BadGateway</Code>"));
    assert_eq!(pass_count(&s.hf.metrics()), 2, "pingora answered it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_connection_the_origin_closed_is_replaced_without_the_viewer_noticing() {
    let s = setup().await;
    let port = s.hf.ports.http;
    for n in 1..=3 {
        let a = one(port, req("GET", "/api/once.txt", ""));
        assert_eq!((a.status, a.body.as_slice()), (200, &b"once"[..]), "request {n}");
        passes_reach(&s, n).await;
    }
    // Each request reached the origin once, each on a connection of its own: the second and
    // the third found the one before closed and went once more on a new one.
    assert_eq!(s.origin.count("/api/once.txt"), 3);
    assert_eq!(s.origin.connections(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pass_over_https_tells_the_origin_so() {
    let s = setup().await;
    let client = https1_client();
    let url = format!("{}/api/page.html", s.hf.https_base("p.test"));
    for n in 1..=2 {
        let r = client.get(&url).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-encoding"], "gzip");
        let mut body = Vec::new();
        flate2::read::GzDecoder::new(&r.bytes().await.unwrap()[..])
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body, page());
        passes_reach(&s, n).await;
    }
    let asked = asked(&s.origin, "/api/page.html");
    let proto = asked
        .iter()
        .find(|(n, _)| n == "x-forwarded-proto")
        .map(|(_, v)| v.as_str());
    assert_eq!(proto, Some("https"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_after_a_pass_on_the_same_connection_gets_its_answer_when_the_origin_is_gone() {
    let s = setup().await;
    let port = s.hf.ports.http;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
    use std::io::Write as _;
    conn.write_all(req("GET", "/api/page.html", "").as_bytes()).unwrap();
    assert_eq!(read_h1(&mut r, false).status, 200);
    passes_reach(&s, 1).await;
    s.origin.stop().await;
    let body = vec![b'x'; 40_000];
    let post = format!(
        "POST /api/form HTTP/1.1\r\nHost: p.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(post.as_bytes()).unwrap();
    conn.write_all(&body).unwrap();
    let answer = read_h1(&mut r, false);
    assert_eq!(answer.status, 502, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_the_origin_cannot_take_gets_its_502_whole_while_still_sending_its_body() {
    // A refused connection fails the POST before its body is read; the edge reads it before
    // closing, or the close resets the connection under the viewer (the soak's SSLEOFError).
    let s = setup().await;
    let client = https1_client();
    let base = s.hf.https_base("p.test");
    for _ in 0..5 {
        let r = client.get(format!("{base}/api/page.html")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    s.origin.stop().await;
    for round in 0..10 {
        for (method, body) in [("GET", 0), ("POST", 40_000)] {
            let rb = match method {
                "GET" => client.get(format!("{base}/api/page.html")),
                _ => client.post(format!("{base}/api/form")).body(vec![b'x'; body]),
            };
            let r = rb
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round} {method}: {e:?}"));
            assert_eq!(r.status(), 502, "round {round} {method}");
            r.bytes().await.unwrap();
        }
    }
}

/// The sum of a metric's samples whose labels contain `labels`.
fn metric_sum(m: &str, name: &str, labels: &str) -> f64 {
    m.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_pass_path_gives_back_is_routed_charged_and_counted_once() {
    // An origin that refuses connections: the pass path cannot connect and gives the request
    // to pingora's path, which tries the rest of the origin's connection attempts and
    // answers 502. One request: one rate token, one request id, `connection_attempts` origin
    // requests (before, the pass path's try came on top, and both paths took a token).
    let refused = free_port();
    let config = format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
admin: {{ listen: "127.0.0.1:{{admin}}" }}
limits:
  per_client: {{ requests_per_second: 1, burst: 1, exempt: [] }}
origins:
  app: {{ http: "127.0.0.1:{refused}", connection_attempts: 2 }}
distributions:
  - name: main
    domains: [p.test]
    access_log: cloudfront
    behaviors:
      - {{ path_pattern: "*", origin: app, cache: {{ max_ttl: 0 }} }}
"#
    );
    // The one token is spent: the next request, sent at once, is refused, and that refusal
    // is the edge's own answer with its decoration. A token comes back each second: when
    // the two requests took that long (a loaded machine), the refusal may rightly not come,
    // and the check starts again on a new server.
    let (hf, gone, limited) = (1..=5)
        .find_map(|attempt| {
            let hf = Homefront::start(&config);
            let sent = std::time::Instant::now();
            let gone = one(hf.ports.http, req("GET", "/a.txt", ""));
            let limited = one(hf.ports.http, req("GET", "/a.txt", ""));
            let took = sent.elapsed();
            if limited.status == 429 || took < Duration::from_secs(1) || attempt == 5 {
                return Some((hf, gone, limited));
            }
            eprintln!("attempt {attempt}: the two requests took {took:?}, a token came back; again");
            None
        })
        .unwrap();
    assert_eq!(gone.status, 502, "{gone:?}");
    assert_eq!(gone.get("x-cache"), Some("Error from homefront"));
    let id = gone.get("x-amz-cf-id").expect("request id").to_string();
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.get("x-cache"), Some("Error from homefront"));
    assert!(limited.get("retry-after").is_some());
    let m = hf
        .metrics_when(|m| metric_sum(m, "homefront_requests_total", "status_class=\"5xx\"") >= 1.0)
        .await;
    assert_eq!(
        metric_sum(&m, "homefront_requests_total", "status_class=\"5xx\""),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "homefront_origin_requests_total", "origin=\"app\""),
        2.0,
        "connection_attempts: 2, whichever path made them: {m}"
    );
    assert_eq!(
        metric_sum(&m, "homefront_edge_limited_total", ""),
        1.0,
        "the 429 only: {m}"
    );
    // The access log has the request once, under the id the viewer got.
    let lines = log_lines(&hf.dir.path().join("data/logs/distributions/main"), 1).await;
    let with_id: Vec<_> = lines.iter().filter(|l| l.contains(&id)).collect();
    assert_eq!(with_id.len(), 1, "{lines:?}");

    // Requests that go straight to pingora's path take the connection loop's routing with
    // them, over HTTP/1.1 and HTTP/2: each is one token too, so a client with a burst of one
    // gets its answer, not a 429. (Each from its own loopback address: its own bucket.)
    let client = |from: [u8; 4], h2: bool| {
        let b = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .local_address(std::net::IpAddr::from(from))
            .resolve("p.test", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .timeout(Duration::from_secs(20));
        if h2 { b } else { b.http1_only() }.build().unwrap()
    };
    let post = client([127, 0, 0, 2], false)
        .post(format!("http://p.test:{}/a.txt", hf.ports.http))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status(),
        403,
        "a POST the behavior does not allow: the edge's answer"
    );
    let over_h2 = client([127, 0, 0, 3], true)
        .get(format!("https://p.test:{}/a.txt", hf.ports.https))
        .send()
        .await
        .unwrap();
    assert_eq!(over_h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(over_h2.status(), 502);
}
