//! The edge end to end: the real binary, real TLS with SNI, HTTP/2 and HTTP/1.1, the
//! built-in bucket store written with the official AWS SDK, and an HTTP app origin.

use std::net::SocketAddr;

use crate::common::*;

const CONFIG: &str = r#"
data_dir: ./data
listen: { http: "127.0.0.1:{http}", https: "127.0.0.1:{https}" }
metrics: { listen: "127.0.0.1:{metrics}" }
tls:
  certificates:
    - { domains: [site.test], cert: a.pem, key: a.key }
    - { domains: ["*.wild.test"], cert: b.pem, key: b.key }
origins:
  site: { bucket: site }
  static: { bucket: site, origin_path: /build }
  app: { http: "127.0.0.1:{app}", origin_path: /v1, custom_headers: { X-From-Edge: "yes" } }
  dead: { http: "127.0.0.1:{dead}" }
distributions:
  - name: main
    domains: [site.test, "*.wild.test"]
    default_root_object: index.html
    behaviors:
      - path_pattern: "/api/*"
        origin: app
        allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE]
        cache: { max_ttl: 0 }
      - path_pattern: "/static/*"
        origin: static
        viewer_protocol_policy: https-only
      - path_pattern: "/dead/*"
        origin: dead
      - path_pattern: "*"
        origin: site
        viewer_protocol_policy: redirect-to-https
  - name: open
    domains: [open.test]
    behaviors:
      - path_pattern: "*"
        origin: site
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:{origin}"
  credentials: [ { access_key_id: testkey, secret_access_key_file: origin.key } ]
"#;

async fn start_edge() -> Homefront {
    let app = start_echo_origin().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), SECRET_KEY).unwrap();
    make_cert(dir.path(), "a", &["site.test"]);
    make_cert(dir.path(), "b", &["*.wild.test"]);
    // A port nothing listens on: the origin that is down.
    let dead = free_port();
    let config = CONFIG
        .replace("{app}", &app.to_string())
        .replace("{dead}", &dead.to_string());
    let hf = Homefront::start_in(dir, &config, &[]);
    let s3 = hf.s3();
    for (key, ct, body) in [
        ("index.html", "text/html", "<h1>home</h1>"),
        ("docs/page.html", "text/html", "<p>docs</p>"),
        ("build/static/app.js", "application/javascript", "console.log('app')"),
    ] {
        s3.put_object()
            .bucket("site")
            .key(key)
            .content_type(ct)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    hf
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_the_bucket_over_https_with_h2_and_http1() {
    let hf = start_edge().await;
    let client = hf.client(&["site.test"]);

    let r = client
        .get(format!("{}/", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN must pick h2");
    assert_eq!(r.headers()["x-cache"], "Miss from homefront");
    assert_eq!(r.headers()["content-type"], "text/html");
    assert!(r.headers()["via"].to_str().unwrap().contains("homefront"));
    assert_eq!(r.headers()["x-amz-cf-id"].len(), 32);
    assert_eq!(r.text().await.unwrap(), "<h1>home</h1>");

    let h1 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .resolve("site.test", SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();
    let r = h1
        .get(format!("{}/docs/page.html", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<p>docs</p>");

    // Missing objects are the bucket store's 404 with its S3 error body.
    let r = client
        .get(format!("{}/nope.html", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("NoSuchKey"));

    // The default root object applies to `/` only.
    let r = client
        .get(format!("{}/docs/", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_protocol_policies() {
    let hf = start_edge().await;
    let client = hf.client(&["site.test", "open.test"]);

    // redirect-to-https: 301 with the same path and query on the HTTPS port.
    let r = client
        .get(format!("{}/docs/page.html?x=1", hf.http_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("https://site.test:{}/docs/page.html?x=1", hf.ports.https)
    );
    assert_eq!(r.headers()["x-cache"], "Redirect from homefront");

    // https-only: 403 over HTTP, 200 over HTTPS (origin path /build is prefixed).
    let r = client
        .get(format!("{}/static/app.js", hf.http_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "text/xml");
    let r = client
        .get(format!("{}/static/app.js", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "console.log('app')");

    // allow-all: plain HTTP is served.
    let r = client
        .get(format!("{}/docs/page.html", hf.http_base("open.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn methods_outside_the_behavior_are_denied_with_xml() {
    let hf = start_edge().await;
    let client = hf.client(&["site.test"]);
    let r = client
        .delete(format!("{}/index.html", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-cache"], "Error from homefront");
    assert_eq!(r.headers()["content-type"], "text/xml");
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>MethodNotAllowed</Code>"),
        "{body}"
    );
    // The object is still there.
    let r = client
        .get(format!("{}/index.html", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn behavior_order_origin_path_and_origin_headers() {
    let hf = start_edge().await;
    let client = hf.client(&["site.test"]);
    let r = client
        .post(format!("{}/api/users?page=2", hf.https_base("site.test")))
        .header("x-forwarded-for", "198.51.100.9")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-amz-cf-id"].to_str().unwrap().to_string();
    let echo: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/v1/api/users?page=2", "origin path prefixed, query kept");
    let h = &echo["headers"];
    assert_eq!(h["x-from-edge"], "yes");
    assert_eq!(h["x-forwarded-for"], "198.51.100.9, 127.0.0.1");
    assert_eq!(h["via"], "1.1 homefront");
    assert_eq!(h["x-amz-cf-id"], id.as_str(), "the same request id reaches the origin");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["host"].as_str().unwrap(), format!("site.test:{}", hf.ports.https));
    // /api/* comes before "*": the bucket behavior never saw this request.
    let r = client
        .get(format!("{}/apix", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "/apix is not /api/*, so it goes to the bucket");
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_attempts_get_400() {
    let hf = start_edge().await;
    for path in [
        "/../../etc/passwd",
        "/a/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc/passwd",
        "/docs/./page.html",
    ] {
        let resp = raw_http(
            hf.ports.http,
            &format!("GET {path} HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n"),
        );
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(resp.contains("<Code>InvalidURI</Code>"), "{path}: {resp}");
        assert!(!resp.contains("root:"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_is_refused() {
    let hf = start_edge().await;
    let resp = raw_http(
        hf.ports.http,
        "GET / HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("<Code>UnknownDistribution</Code>"), "{resp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_selects_the_certificate_and_tls_is_modern() {
    let hf = start_edge().await;
    let (cn, alpn, _) = handshake(hf.ports.https, "site.test", b"\x02h2\x08http/1.1");
    assert_eq!(cn, "site.test");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (cn, alpn, _) = handshake(hf.ports.https, "img.wild.test", b"\x08http/1.1");
    assert_eq!(cn, "*.wild.test");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    // No match: the first certificate is the default.
    let (cn, _, _) = handshake(hf.ports.https, "other.test", b"\x08http/1.1");
    assert_eq!(cn, "site.test");

    // TLS 1.1 is refused.
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_1)).unwrap();
    b.set_security_level(0);
    let tcp = std::net::TcpStream::connect(("127.0.0.1", hf.ports.https)).unwrap();
    assert!(b.build().connect("site.test", tcp).is_err(), "TLS 1.1 must be refused");
}

/// A TLS client context offering HTTP/1.1 by ALPN and keeping its sessions for resumption.
fn tls_client() -> openssl::ssl::SslContext {
    use openssl::ssl::{SslContext, SslMethod, SslSessionCacheMode, SslVerifyMode};
    let mut b = SslContext::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_alpn_protos(b"\x08http/1.1").unwrap();
    b.set_session_cache_mode(SslSessionCacheMode::CLIENT);
    b.build()
}

/// One `GET path` for site.test with `Connection: close` over a new TLS connection (resuming
/// `session` when given), read to the server's close_notify, then closed with ours (without
/// it OpenSSL marks the session not resumable): the answer, whether the session was
/// resumed, and the session.
fn tls_get_closing(
    ctx: &openssl::ssl::SslContext,
    port: u16,
    path: &str,
    session: Option<&openssl::ssl::SslSession>,
) -> (String, bool, openssl::ssl::SslSession) {
    use std::io::{Read, Write};
    let mut ssl = openssl::ssl::Ssl::new(ctx).unwrap();
    ssl.set_hostname("site.test").unwrap();
    if let Some(session) = session {
        // SAFETY: the session comes from a connection made with this same context.
        unsafe { ssl.set_session(session).unwrap() };
    }
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut s = ssl.connect(tcp).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("the answer, then a close_notify");
    let _ = s.shutdown();
    let reused = s.ssl().session_reused();
    (
        String::from_utf8(out).unwrap(),
        reused,
        s.ssl().session().unwrap().to_owned(),
    )
}

/// A hit that is the connection's last answer (`Connection: close`) is not flushed on its
/// own but by the shutdown, with the close_notify: it must still arrive whole, and the
/// connection end with the close_notify (OpenSSL reports a missing one as an error).
#[tokio::test(flavor = "multi_thread")]
async fn a_last_answer_over_tls_arrives_whole_before_the_close_notify() {
    let hf = start_edge().await;
    let port = hf.ports.https;
    let get = move || tls_get_closing(&tls_client(), port, "/docs/page.html", None).0;
    let first = tokio::task::spawn_blocking(get).await.unwrap();
    assert!(first.ends_with("\r\n\r\n<p>docs</p>"), "{first}");
    let second = tokio::task::spawn_blocking(get).await.unwrap();
    assert!(
        second.to_ascii_lowercase().contains("\r\nx-cache: hit from homefront"),
        "{second}"
    );
    assert!(
        second.to_ascii_lowercase().contains("\r\nconnection: close"),
        "{second}"
    );
    assert!(second.ends_with("\r\n\r\n<p>docs</p>"), "{second}");
}

/// A client that comes back with its session ticket resumes: no certificate is chosen, and
/// the resumption is counted on its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_tls_session_is_counted() {
    let hf = start_edge().await;
    let port = hf.ports.https;
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = hf.metrics();
    let reused = tokio::task::spawn_blocking(move || {
        let ctx = tls_client();
        let (first, first_reused, session) = tls_get_closing(&ctx, port, "/", None);
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(!first_reused);
        let (second, reused, _) = tls_get_closing(&ctx, port, "/", Some(&session));
        assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        reused
    })
    .await
    .unwrap();
    assert!(reused, "the second connection should resume the first one's session");
    let after = hf
        .metrics_when(|m| metric(m, "homefront_tls_resumptions_total") >= 1.0)
        .await;
    assert_eq!(
        metric(&after, "homefront_tls_resumptions_total") - metric(&before, "homefront_tls_resumptions_total"),
        1.0
    );
    // The first connection chose a certificate; the resumed one did not.
    assert_eq!(
        metric(&after, "homefront_tls_handshakes_total") - metric(&before, "homefront_tls_handshakes_total"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests() {
    let hf = start_edge().await;
    let client = hf.client(&["site.test"]);
    let count = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("homefront_requests_total{") && l.contains("distribution=\"main\""))
            .filter(|l| l.contains("status_class=\"2xx\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = count(&hf.metrics());
    for _ in 0..3 {
        let r = client
            .get(format!("{}/", hf.https_base("site.test")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // Metrics are recorded when a request ends; wait for the last one.
    let after = count(&hf.metrics_when(|m| count(m) >= before + 3.0).await);
    assert_eq!(after, before + 3.0);
    let text = hf.metrics();
    for name in [
        "homefront_build_info",
        "homefront_response_bytes_total",
        "homefront_origin_duration_seconds_bucket",
        "homefront_tls_handshakes_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_store_refuses_unsigned_requests() {
    let hf = start_edge().await;
    let resp = raw_http(
        hf.ports.origin,
        "GET /site/index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(!resp.contains("<h1>home</h1>"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_origin_is_a_502_with_an_xml_body() {
    let hf = start_edge().await;
    let client = hf.client(&["site.test"]);
    let r = client
        .get(format!("{}/dead/x", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-cache"], "Error from homefront");
    assert_eq!(r.headers()["content-type"], "text/xml");
    let body = r.text().await.unwrap();
    assert!(body.contains("<Code>BadGateway</Code>"), "{body}");
    assert!(
        !body.contains("127.0.0.1"),
        "the viewer is not told where the origin is: {body}"
    );
    // The log says which origin failed.
    let log = hf.log_when(|log| log.contains("origin=dead")).await;
    assert!(log.contains("origin=dead"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_502_that_ends_its_connection_says_connection_close() {
    let hf = start_edge().await;
    // A keep-alive request (HTTP/1.1, no Connection header) to the origin that is down. The
    // edge closes the connection after a failed proxy; a response that said keep-alive would
    // have the client send its next request (say a POST, which it must not retry) into it.
    let resp = raw_http(hf.ports.http, "GET /dead/x HTTP/1.1\r\nHost: site.test\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 502"), "{resp}");
    let head = resp.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("\r\nconnection: close"), "{resp}");
    assert!(!head.contains("keep-alive"), "{resp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_and_head_are_served_from_the_cached_object() {
    let hf = start_edge().await;
    let client = hf.client(&["site.test"]);
    let r = client
        .get(format!("{}/index.html", hf.https_base("site.test")))
        .header("range", "bytes=1-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 1-2/13");
    assert_eq!(r.headers()["x-cache"], "Miss from homefront");
    assert_eq!(r.text().await.unwrap(), "h1");
    // The miss fetched and stored the whole object: HEAD and other ranges are hits.
    let r = client
        .head(format!("{}/index.html", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "13");
    assert_eq!(r.headers()["x-cache"], "Hit from homefront");
    let r = client
        .get(format!("{}/index.html", hf.https_base("site.test")))
        .header("range", "bytes=-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-12/13");
    assert_eq!(r.headers()["x-cache"], "Hit from homefront");
    let r = client
        .get(format!("{}/index.html", hf.https_base("site.test")))
        .header("range", "bytes=20-30")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_urls_and_headers_get_cloudfront_limits() {
    let hf = start_edge().await;
    let long = format!("/{}", "a".repeat(9000));
    let r = raw_http(
        hf.ports.http,
        &format!("GET {long} HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n"),
    );
    assert!(r.starts_with("HTTP/1.1 414"), "{}", &r[..r.len().min(300)]);
    assert!(r.contains("<Code>RequestURITooLong</Code>"));
    let big = "b".repeat(7000);
    let r = raw_http(
        hf.ports.http,
        &format!(
            "GET / HTTP/1.1\r\nHost: open.test\r\nX-A: {big}\r\nX-B: {big}\r\nX-C: {big}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{}", &r[..r.len().min(300)]);
    // Just under both limits is served.
    let ok = raw_http(
        hf.ports.http,
        &format!(
            "GET /nope?q={} HTTP/1.1\r\nHost: open.test\r\nX-A: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(8000),
            "b".repeat(20_000)
        ),
    );
    assert!(ok.starts_with("HTTP/1.1 404"), "{}", &ok[..ok.len().min(300)]);
}
