//! Private content stays private: the attacks of the canonical-request issue, each tried
//! against the real binary with raw requests over HTTP/1.1 and HTTP/2, as an attacker sends
//! them. A `/private/*` behavior checks signed cookies and URLs, a public `*` behavior reads
//! the same bucket, and the distribution takes any host.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

/// 2026-01-01T00:00:00Z: the clock injected into the edge (HOMEFRONT_FIXED_TIME).
const NOW: u64 = 1_767_225_600;
const SECRET: &str = "bob's secret";
const NOTE: &str = "alice's note";

fn config(app: u16) -> String {
    format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
key_groups:
  trusted:
    - {{ id: KTRUSTEDRSA0001, public_key: keys/trusted-rsa.pub.pem }}
origins:
  site: {{ bucket: site }}
  app: {{ http: "127.0.0.1:{app}" }}
distributions:
  - name: main
    domains: ["*"]
    behaviors:
      - {{ path_pattern: "/private/*", origin: site, trusted_key_groups: [trusted] }}
      - {{ path_pattern: "/app/*", origin: app, allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE] }}
      - {{ path_pattern: "*", origin: site }}
  - name: other
    domains: [other.test]
    behaviors:
      - {{ path_pattern: "*", origin: app }}
buckets:
  site: {{}}
origin_server:
  listen: "127.0.0.1:{{origin}}"
  credentials: [ {{ access_key_id: testkey, secret_access_key_file: origin.key }} ]
"#
    )
}

async fn start() -> Homefront {
    let app = start_echo_origin().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), SECRET_KEY).unwrap();
    let hf = Homefront::start_in_env(
        dir,
        &config(app),
        &[(
            "keys/trusted-rsa.pub.pem",
            include_bytes!("../vectors/keys/trusted-rsa.pub.pem"),
        )],
        &[("HOMEFRONT_FIXED_TIME", &NOW.to_string())],
    );
    let s3 = hf.s3();
    for (key, body) in [
        ("private/bob/secret.txt", SECRET),
        ("private/alice/note.txt", NOTE),
        ("public.txt", "public"),
    ] {
        s3.put_object()
            .bucket("site")
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    hf
}

/// Signed cookies from `homefront sign-url` for a custom policy on `resource`.
fn cookies_for(resource: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(["sign-url", "--key-pair-id", "KTRUSTEDRSA0001", "--private-key"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/keys/trusted-rsa.pem"
        ))
        .args(["--cookies", "--expires", &format!("@{}", NOW + 600)])
        .args(["--policy-resource", resource, resource])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            l.strip_prefix("Set-Cookie: ")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Status and body of one raw HTTP/1.1 exchange on the plain listener.
fn h1(port: u16, request: &str) -> (u16, String) {
    let text = raw_http(port, request);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer to {request:?}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(port: u16, path: &str, host: &str, cookies: &str) -> (u16, String) {
    let cookie = if cookies.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookies}\r\n")
    };
    h1(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"),
    )
}

/// One HTTP/2 exchange over TLS (SNI `sni`), with `req` sent as it is: a request whose URI
/// has no authority goes out without `:authority` (its Host field, if any, is sent instead).
async fn h2(port: u16, sni: &str, req: http::Request<()>, body: Option<&[u8]>) -> (u16, String) {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_alpn_protos(b"\x02h2").unwrap();
    let ssl = b.build().configure().unwrap().into_ssl(sni).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut tls).connect().await.unwrap();
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let (resp, mut send) = client.send_request(req, body.is_none()).unwrap();
    if let Some(b) = body {
        // The server may answer (and end the stream, RST_STREAM NO_ERROR, RFC 9113 §8.1)
        // before the body is sent: then there is nothing to send it on, and the answer
        // below is what counts.
        let _ = send.send_data(Bytes::copy_from_slice(b), true);
    }
    let resp = tokio::time::timeout(Duration::from_secs(20), resp)
        .await
        .expect("an answer within 20 s")
        .unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&out).into_owned())
}

fn h2_request(uri: &str, cookies: &str) -> http::Request<()> {
    let mut b = http::Request::builder().uri(uri).version(http::Version::HTTP_2);
    if !cookies.is_empty() {
        b = b.header("cookie", cookies);
    }
    b.body(()).unwrap()
}

fn code(body: &str) -> &str {
    body.split("<Code>")
        .nth(1)
        .and_then(|c| c.split("</Code>").next())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn no_encoding_of_the_path_reaches_a_private_object() {
    let hf = start().await;
    let port = hf.ports.http;
    let alice = cookies_for("http://cdn.test/private/alice/*");

    // Each names bob's secret to an origin that decodes the path (the bucket store does);
    // each must meet the signed behavior, as the plain path does.
    for path in [
        "/private/bob/secret.txt",
        "/%70rivate/bob/secret.txt",
        "/%70%72%69%76%61%74%65/bob/secret.txt",
        "/priv%61te/bob/secret.txt",
        "/private/%62ob/secret.txt",
    ] {
        let (status, body) = get(port, path, "cdn.test", "");
        assert_eq!((status, code(&body)), (403, "MissingKey"), "{path}: {body}");
        // With alice's cookies, still not bob's.
        let (status, body) = get(port, path, "cdn.test", &alice);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains(SECRET), "{path}: {body}");
    }
    // Hidden separators and dot segments are refused before anything is decided.
    for path in [
        "/private%2Fbob/secret.txt",
        "/private%2fbob/secret.txt",
        "/public/..%2Fprivate/bob/secret.txt",
        "/x/%2e%2e/private/bob/secret.txt",
        "/x/.%2E/private/bob/secret.txt",
        "/private/alice/..%5Cbob/secret.txt",
        "/private/alice/%2e%2e/bob/secret.txt",
    ] {
        let (status, body) = get(port, path, "cdn.test", &alice);
        assert_eq!((status, code(&body)), (400, "InvalidURI"), "{path}: {body}");
    }
    // A doubly encoded name is another object: decoded once, it is `%70rivate/...`.
    let (status, body) = get(port, "/%2570rivate/bob/secret.txt", "cdn.test", "");
    assert_eq!(status, 404, "{body}");
    // The signed resource is compared with the canonical URL: alice's own object, however
    // encoded, is hers.
    for path in [
        "/private/alice/note.txt",
        "/private/alice/%6Eote.txt",
        "/%70rivate/alice/note.txt",
    ] {
        let (status, body) = get(port, path, "cdn.test", &alice);
        assert_eq!((status, body.as_str()), (200, NOTE), "{path}");
    }
    // The public behavior still serves public objects.
    assert_eq!(get(port, "/public.txt", "cdn.test", "").0, 200);

    // The same over HTTP/2.
    let https = hf.ports.https;
    for path in ["/%70rivate/bob/secret.txt", "/priv%61te/bob/secret.txt"] {
        let uri = format!("https://cdn.test{path}");
        let (status, body) = h2(https, "cdn.test", h2_request(&uri, ""), None).await;
        assert_eq!((status, code(&body)), (403, "MissingKey"), "h2 {path}: {body}");
    }
    let (status, body) = h2(
        https,
        "cdn.test",
        h2_request("https://cdn.test/private%2Fbob/secret.txt", ""),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let alice_tls = cookies_for("https://cdn.test/private/alice/*");
    let (status, body) = h2(
        https,
        "cdn.test",
        h2_request("https://cdn.test/private/alice/%6Eote.txt", &alice_tls),
        None,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, NOTE));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_cannot_widen_a_signed_policy() {
    let hf = start().await;
    let port = hf.ports.http;
    let alice = cookies_for("http://cdn.test/private/alice/*");
    // The attack: the Host carries the rest of alice's resource.
    for host in [
        "cdn.test/private/alice",
        "cdn.test/private/alice/",
        "cdn.test?",
        "cdn.test#x",
    ] {
        let (status, body) = get(port, "/private/bob/secret.txt", host, &alice);
        assert_eq!((status, code(&body)), (400, "InvalidHost"), "{host}: {body}");
    }
    // (pingora's parser already refuses a Host with user information.)
    assert_eq!(get(port, "/private/bob/secret.txt", "a@cdn.test", &alice).0, 400);
    // Two Host fields, or a target that names another host: refused.
    let (status, _) = h1(
        port,
        "GET /private/alice/note.txt HTTP/1.1\r\nHost: cdn.test\r\nHost: cdn.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400);
    let (status, _) = h1(
        port,
        &format!(
            "GET http://evil.test/private/alice/note.txt HTTP/1.1\r\nHost: cdn.test\r\nCookie: {alice}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 400);
    // The canonical host is lower-case, without a trailing dot or the default port: the
    // same resource.
    for host in ["CDN.test", "cdn.test.", "cdn.test:80"] {
        let (status, body) = get(port, "/private/alice/note.txt", host, &alice);
        assert_eq!((status, body.as_str()), (200, NOTE), "{host}");
    }
    // The same signed cookies on another host name are not valid there.
    let (status, _) = get(port, "/private/alice/note.txt", "evil.test", &alice);
    assert_eq!(status, 403);

    // HTTP/2 with a `host` field and no `:authority`.
    let alice_tls = cookies_for("https://cdn.test/private/alice/*");
    let req = http::Request::builder()
        .uri("/private/bob/secret.txt")
        .header("host", "cdn.test/private/alice")
        .header("cookie", &alice_tls)
        .body(())
        .unwrap();
    let (status, body) = h2(hf.ports.https, "cdn.test", req, None).await;
    assert_eq!((status, code(&body)), (400, "InvalidHost"), "{body}");
    // `:authority` and `host` that disagree.
    let mut req = h2_request("https://cdn.test/private/alice/note.txt", &alice_tls);
    req.headers_mut().insert("host", "evil.test".parse().unwrap());
    let (status, _) = h2(hf.ports.https, "cdn.test", req, None).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_of_another_distribution_than_the_tls_connection_gets_421() {
    let hf = start().await;
    let https = hf.ports.https;
    // HTTP/2: a connection made for cdn.test (the catch-all) asked for other.test.
    let (status, body) = h2(https, "cdn.test", h2_request("https://other.test/app/x", ""), None).await;
    assert_eq!((status, code(&body)), (421, "MisdirectedRequest"), "{body}");
    // Within one distribution a connection serves every host (HTTP/2 connection reuse).
    let (status, _) = h2(
        https,
        "cdn.test",
        h2_request("https://www.cdn.test/public.txt", ""),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = h2(https, "other.test", h2_request("https://other.test/x", ""), None).await;
    assert_eq!(status, 200);
    // HTTP/1.1 over TLS.
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    let tcp = TcpStream::connect(("127.0.0.1", https)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = b.build().connect("other.test", tcp).unwrap();
    tls.write_all(b"GET /public.txt HTTP/1.1\r\nHost: cdn.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 421"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_with_a_body_is_refused_and_body_headers_stay_at_the_edge() {
    let hf = start().await;
    let port = hf.ports.http;
    for framing in [
        "Content-Length: 5\r\n\r\nhello",
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        for method in ["GET", "HEAD"] {
            let (status, body) = h1(
                port,
                &format!("{method} /app/page HTTP/1.1\r\nHost: cdn.test\r\nConnection: close\r\n{framing}"),
            );
            assert_eq!(status, 403, "{method} {framing:?}: {body}");
        }
    }
    let req = http::Request::builder()
        .method("GET")
        .uri("https://cdn.test/app/page")
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap();
    let (status, _) = h2(hf.ports.https, "cdn.test", req, Some(b"hello")).await;
    assert_eq!(status, 403);
    // An empty body (Content-Length: 0) is no body.
    let (status, _) = h1(
        port,
        "GET /app/empty HTTP/1.1\r\nHost: cdn.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    // A cacheable GET's origin sees no header outside the key and the policy: a
    // Content-Type (or any other body header) cannot vary what is stored for everyone.
    let (status, body) = h1(
        port,
        "GET /app/typed HTTP/1.1\r\nHost: cdn.test\r\nContent-Type: text/evil\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(echo["headers"].get("content-type").is_none(), "{echo}");
    assert!(echo["headers"].get("content-length").is_none(), "{echo}");
    // A POST keeps its body and its Content-Type.
    let (status, body) = h1(
        port,
        "POST /app/form HTTP/1.1\r\nHost: cdn.test\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["content-type"], "text/plain");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_invalidates_its_own_host_only() {
    let hf = start().await;
    let port = hf.ports.http;
    let x_cache = |host: &str| {
        let text = raw_http(
            port,
            &format!("GET /app/page HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        let line = text
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("x-cache:"))
            .unwrap_or_default()
            .to_string();
        line.split_once(':')
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let post = |host: &str| {
        h1(
            port,
            &format!("POST /app/page HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        )
        .0
    };
    assert_eq!(x_cache("a.test"), "Miss from homefront");
    // pingora may finish storing a miss after the viewer has the answer: wait for the hit.
    let deadline = std::time::Instant::now() + EVENT_DEADLINE;
    while x_cache("a.test") != "Hit from homefront" {
        assert!(std::time::Instant::now() < deadline, "the miss was never stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another host of the same distribution writes to the same path: a.test keeps its copy.
    assert_eq!(post("b.test"), 200);
    assert_eq!(x_cache("a.test"), "Hit from homefront");
    // Another spelling of the same host is the same host.
    assert_eq!(post("A.TEST."), 200);
    assert_eq!(x_cache("a.test"), "Miss from homefront");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_write_the_edge_refuses_gets_its_403_not_a_reset() {
    let hf = start().await;
    // A bucket origin is read-only through the edge: a POST with a body is refused before
    // anything is read of the body. Over HTTP/2 the viewer must still get the answer.
    for size in [10, 100_000] {
        for _ in 0..5 {
            let req = http::Request::builder()
                .method("POST")
                .uri("https://cdn.test/public.txt")
                .version(http::Version::HTTP_2)
                .body(())
                .unwrap();
            let body = vec![b'x'; size];
            let (status, body) = h2(hf.ports.https, "cdn.test", req, Some(&body)).await;
            assert_eq!(status, 403, "{size}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_over_http2_reads_the_403_of_a_get_with_a_body() {
    let hf = start().await;
    // curl sends the body in DATA frames after the request's HEADERS; the edge refuses the
    // request before it reads them. It must read (and drop) the body before answering, or
    // the stream is reset under curl, which reports a framing error instead of the 403.
    let resolve = format!("cdn.test:{}:127.0.0.1", hf.ports.https);
    let app = format!("https://cdn.test:{}/app/page", hf.ports.https);
    // A bucket origin is read-only through the edge.
    let bucket = format!("https://cdn.test:{}/public.txt", hf.ports.https);
    for (method, size, url) in [("GET", 1, &app), ("GET", 100_000, &app), ("POST", 1, &bucket)] {
        let body = "x".repeat(size);
        for _ in 0..3 {
            let out = std::process::Command::new("curl")
                .args([
                    "-sk",
                    "--http2",
                    "--resolve",
                    &resolve,
                    "-X",
                    method,
                    "--data-binary",
                    &body,
                ])
                .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}", url])
                .output()
                .expect("curl runs");
            let printed = String::from_utf8_lossy(&out.stdout);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(printed, "403 2", "{method} of {size} bytes: {err}");
        }
    }
}
