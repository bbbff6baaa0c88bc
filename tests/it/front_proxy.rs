//! homefront in front of self-hosted apps (`cache: { max_ttl: 0 }` behaviors): answers that
//! stream (server-sent events), long requests, and what apps expect of their proxy, over
//! HTTP/1.1, HTTPS/1.1 and HTTP/2.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;

fn config(app: u16, origin_extra: &str) -> String {
    format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
origins:
  app: {{ http: "127.0.0.1:{app}"{origin_extra} }}
distributions:
  - domains: ["*"]
    behaviors:
      - path_pattern: "*"
        origin: app
        compress: true
        allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE]
        cache: {{ min_ttl: 0, default_ttl: 0, max_ttl: 0 }}
"#
    )
}

/// The three ways a viewer reaches an app: (name, client, base URL).
fn transports(hf: &Homefront) -> Vec<(&'static str, reqwest::Client, String)> {
    let client = |h1_only: bool| {
        let mut b = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.test", SocketAddr::from(([127, 0, 0, 1], 0)));
        if h1_only {
            b = b.http1_only();
        }
        b.build().unwrap()
    };
    vec![
        ("HTTP/1.1", client(true), hf.http_base("app.test")),
        ("HTTPS/1.1", client(true), hf.https_base("app.test")),
        ("HTTP/2", client(false), hf.https_base("app.test")),
    ]
}

fn expected_version(name: &str) -> reqwest::Version {
    if name == "HTTP/2" {
        reqwest::Version::HTTP_2
    } else {
        reqwest::Version::HTTP_11
    }
}

/// Reads `resp` until what arrived ends with `want`; panics if that takes longer than
/// [`EVENT_DEADLINE`] (the edge held it back) or the body ends first.
async fn read_until(resp: &mut reqwest::Response, got: &mut String, want: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    while !got.ends_with(want) {
        let piece = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("{what}: {want:?} sent by the app never reached the viewer; got {got:?}"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        match piece {
            Some(p) => got.push_str(&String::from_utf8_lossy(&p)),
            None => panic!("{what}: the body ended before {want:?}; got {got:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_sent_events_reach_the_viewer_as_the_app_sends_them() {
    let app = TestOrigin::start().await;
    let hf = Homefront::start(&config(app.port, ""));
    for (name, client, base) in transports(&hf) {
        // Each event is sent only once the viewer has the one before: an edge that gathers
        // the answer (or compresses it in blocks) never lets the viewer see the first.
        let (reply, events) = Reply::new(200)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .stream();
        app.route("/events", reply);
        let mut resp = client
            .get(format!("{base}/events"))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.version(), expected_version(name), "{name}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream", "{name}");
        assert!(
            resp.headers().get("content-encoding").is_none(),
            "{name}: an event stream is not compressed"
        );
        let mut got = String::new();
        for i in 0..3 {
            let event = format!("id: {i}\ndata: tick {i}\n\n");
            events.send(event.clone().into_bytes()).unwrap();
            read_until(&mut resp, &mut got, &event, name).await;
        }
        drop(events);
        let rest = resp.bytes().await.unwrap();
        assert!(rest.is_empty(), "{name}: the stream ends with the app's: {rest:?}");
        assert_eq!(
            got,
            "id: 0\ndata: tick 0\n\nid: 1\ndata: tick 1\n\nid: 2\ndata: tick 2\n\n"
        );
    }
}

/// An HTTP/2 connection to the edge's TLS listener (SNI `app.test`), with flow-control
/// windows as a browser's: larger for the connection (16 MiB) than for a stream (1 MiB), so
/// that one stream the viewer does not read cannot use up the connection's.
async fn h2_connection(port: u16) -> h2::client::SendRequest<bytes::Bytes> {
    h2_connection_after(port, &[]).await
}

/// [`h2_connection`], with `preface` sent on the TCP connection before the TLS handshake
/// (a PROXY protocol header).
async fn h2_connection_after(port: u16, preface: &[u8]) -> h2::client::SendRequest<bytes::Bytes> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use tokio::io::AsyncWriteExt;
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_alpn_protos(b"\x02h2").unwrap();
    let ssl = b.build().configure().unwrap().into_ssl("app.test").unwrap();
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(preface).await.unwrap();
    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut tls).connect().await.unwrap();
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake(tls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.ready().await.unwrap()
}

fn h2_get(path: &str) -> http::Request<()> {
    http::Request::builder()
        .uri(format!("https://app.test{path}"))
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_http2_stream_does_not_stall_the_others() {
    let app = TestOrigin::start().await;
    let hf = Homefront::start(&config(app.port, ""));
    let (reply, events) = Reply::new(200).header("content-type", "text/event-stream").stream();
    app.route("/events", reply);
    app.route(
        "/big",
        Reply::ok(vec![b'b'; 4 << 20]).header("content-type", "application/octet-stream"),
    );
    app.route("/small", Reply::ok("small"));
    let mut conn = h2_connection(hf.ports.https).await;

    // An event stream the app keeps open, and a 4 MiB download the viewer does not read:
    // it fills its stream's flow-control window and stops there.
    let (events_resp, _) = conn.send_request(h2_get("/events"), true).unwrap();
    let events_resp = tokio::time::timeout(EVENT_DEADLINE, events_resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events_resp.status(), 200);
    let (big_resp, _) = conn.send_request(h2_get("/big"), true).unwrap();
    let big_resp = tokio::time::timeout(EVENT_DEADLINE, big_resp).await.unwrap().unwrap();
    assert_eq!(big_resp.status(), 200);

    // Meanwhile other requests on the same connection are answered in full.
    for i in 0..5 {
        let (resp, _) = conn.send_request(h2_get(&format!("/small?{i}")), true).unwrap();
        let resp = tokio::time::timeout(EVENT_DEADLINE, resp)
            .await
            .expect("a request beside a held stream is answered")
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while let Some(piece) = tokio::time::timeout(EVENT_DEADLINE, body.data())
            .await
            .expect("its body arrives")
        {
            let piece = piece.unwrap();
            let _ = body.flow_control().release_capacity(piece.len());
            got.extend_from_slice(&piece);
        }
        assert_eq!(got, b"small");
    }

    // The event stream still delivers, and the download resumes when read.
    events.send(b"data: still here\n\n".to_vec()).unwrap();
    let mut stream = events_resp.into_body();
    let piece = tokio::time::timeout(EVENT_DEADLINE, stream.data())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&piece[..], b"data: still here\n\n");
    let mut big = big_resp.into_body();
    let mut n = 0;
    while let Some(piece) = tokio::time::timeout(EVENT_DEADLINE, big.data()).await.unwrap() {
        let piece = piece.unwrap();
        let _ = big.flow_control().release_capacity(piece.len());
        n += piece.len();
    }
    assert_eq!(n, 4 << 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn response_timeout_bounds_each_wait_for_the_app_not_the_whole_exchange() {
    let app = TestOrigin::start().await;
    let hf = Homefront::start(&config(app.port, ", response_timeout: 2s"));
    for (name, client, base) in transports(&hf) {
        // Pieces 0.4 s apart for longer than the timeout: the exchange goes on.
        let (reply, pieces) = Reply::new(200).header("content-type", "text/plain").stream();
        app.route("/report", reply);
        tokio::spawn(async move {
            for i in 0..8 {
                tokio::time::sleep(Duration::from_millis(400)).await;
                if pieces.send(format!("line {i}\n").into_bytes()).is_err() {
                    return;
                }
            }
        });
        let resp = client.get(format!("{base}/report")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        let body = resp.text().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(body.lines().count(), 8, "{name}: {body}");

        // A pause longer than the timeout after the first piece: the answer is cut there
        // (the viewer sees a truncated transfer, not a complete one).
        let (reply, pieces) = Reply::new(200).header("content-type", "text/plain").stream();
        app.route("/stalls", reply);
        pieces.send(b"first\n".to_vec()).unwrap();
        let mut resp = client.get(format!("{base}/stalls")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        let mut got = String::new();
        read_until(&mut resp, &mut got, "first\n", name).await;
        let end = tokio::time::timeout(EVENT_DEADLINE, async {
            loop {
                match resp.chunk().await {
                    Ok(Some(_)) => continue,
                    other => return other.map(|_| ()),
                }
            }
        })
        .await
        .expect("the edge gives up on the app");
        assert!(end.is_err(), "{name}: a stalled answer must not look complete");
        drop(pieces);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_learns_the_viewers_request_from_consistent_forwarded_fields() {
    let app = TestOrigin::start().await;
    app.route("/echo", Reply::echo());
    let hf = Homefront::start(&config(app.port, ""));
    for (name, client, base) in transports(&hf) {
        let resp = client
            .get(format!("{base}/echo"))
            .header("x-forwarded-for", "198.51.100.7")
            // What a viewer says of itself in the single-valued fields is replaced.
            .header("forwarded", "for=192.0.2.66;host=evil.test;proto=https")
            .header("x-forwarded-host", "evil.test")
            .header("x-forwarded-proto", "gopher")
            .header("x-forwarded-port", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        let echo: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        let h = &echo["headers"];
        let (proto, port) = if name == "HTTP/1.1" {
            ("http", hf.ports.http)
        } else {
            ("https", hf.ports.https)
        };
        let authority = format!("app.test:{port}");
        assert_eq!(h["host"], authority.as_str(), "{name}: the viewer's Host");
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, 127.0.0.1", "{name}");
        assert_eq!(
            h["forwarded"],
            format!("for=198.51.100.7, for=127.0.0.1;host=\"{authority}\";proto={proto}").as_str(),
            "{name}"
        );
        assert_eq!(h["x-forwarded-host"], authority.as_str(), "{name}");
        assert_eq!(h["x-forwarded-proto"], proto, "{name}");
        assert_eq!(h["x-forwarded-port"], port.to_string().as_str(), "{name}");
    }
}

/// A PROXY protocol v2 header for a TCP/IPv4 connection from `client`.
fn proxy_v2(client: std::net::SocketAddrV4) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client.ip().octets());
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_in_front_names_the_viewer_with_the_proxy_protocol() {
    use std::io::{Read, Write};
    let app = TestOrigin::start().await;
    app.route("/echo", Reply::echo());
    let hf = Homefront::start(&format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}", proxy_protocol: [http, https] }}
trusted_proxies: [127.0.0.1/32]
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
key_groups:
  trusted: [ {{ id: KTRUSTEDRSA0001, public_key: {keys}/trusted-rsa.pub.pem }} ]
origins:
  app: {{ http: "127.0.0.1:{}" }}
distributions:
  - name: apps
    domains: ["*"]
    access_log: json
    behaviors:
      - {{ path_pattern: "/private/*", origin: app, trusted_key_groups: [trusted], cache: {{ max_ttl: 0, default_ttl: 0 }} }}
      - {{ path_pattern: "*", origin: app, cache: {{ max_ttl: 0, default_ttl: 0 }} }}
"#,
        app.port,
        keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/keys"),
    ));
    let request = "GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    let echo_of = |raw: &[u8]| -> serde_json::Value {
        let text = String::from_utf8_lossy(raw).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
    };

    // Version 1 on the plain listener.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", hf.ports.http)).unwrap();
    s.set_read_timeout(Some(EVENT_DEADLINE)).unwrap();
    s.write_all(format!("PROXY TCP4 203.0.113.9 127.0.0.1 40001 80\r\n{request}").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let echo = echo_of(&raw);
    assert_eq!(echo["headers"]["x-forwarded-for"], "203.0.113.9");
    assert!(echo["headers"]["forwarded"]
        .as_str()
        .unwrap()
        .starts_with("for=203.0.113.9;"));

    // Version 2 before the TLS handshake on the HTTPS listener.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", hf.ports.https)).unwrap();
    tcp.set_read_timeout(Some(EVENT_DEADLINE)).unwrap();
    tcp.write_all(&proxy_v2("198.51.100.23:40002".parse().unwrap()))
        .unwrap();
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let mut tls = b.build().connect("app.test", tcp).unwrap();
    tls.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let echo = echo_of(&raw);
    assert_eq!(echo["headers"]["x-forwarded-for"], "198.51.100.23");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");

    // And over HTTP/2.
    let mut h2 = h2_connection_after(hf.ports.https, &proxy_v2("192.0.2.77:40003".parse().unwrap())).await;
    let (resp, _) = h2.send_request(h2_get("/echo"), true).unwrap();
    let resp = tokio::time::timeout(EVENT_DEADLINE, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut raw = Vec::new();
    while let Some(piece) = body.data().await {
        raw.extend_from_slice(&piece.unwrap());
    }
    let echo: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-for"], "192.0.2.77");

    // A signed URL's IP condition reads the client the header names.
    app.route("/private/doc", Reply::ok("private"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(["sign-url", "--key-pair-id", "KTRUSTEDRSA0001", "--private-key"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/keys/trusted-rsa.pem"
        ))
        .args(["--expires", "1h", "--ip", "192.0.2.0/24", "http://app.test/private/doc"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let signed = String::from_utf8(out.stdout).unwrap();
    let target = signed.trim().trim_start_matches("http://app.test");
    for (client, status) in [("192.0.2.10", "200"), ("198.51.100.1", "403")] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", hf.ports.http)).unwrap();
        s.set_read_timeout(Some(EVENT_DEADLINE)).unwrap();
        let get = format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
        s.write_all(format!("PROXY TCP4 {client} 127.0.0.1 40004 80\r\n{get}").as_bytes())
            .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.starts_with(&format!("HTTP/1.1 {status}")), "{client}: {raw}");
    }

    // The access log names the viewers, not the proxy.
    let lines = log_lines(&hf.dir.path().join("data/logs/distributions/apps"), 2).await;
    assert!(lines.iter().any(|l| l.contains("203.0.113.9")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("198.51.100.23")), "{lines:?}");

    // A connection without the header is dropped, unanswered, on both listeners (and
    // counted; the harness's own readiness probes were such connections too).
    let refused = |m: &str| -> u64 {
        let line = m
            .lines()
            .find(|l| l.starts_with(r#"homefront_edge_limited_total{reason="proxy_protocol"}"#));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
    };
    let before = refused(&hf.metrics());
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", hf.ports.http)).unwrap_or_else(|e| panic!("{e}: {}", hf.stderr()));
    s.set_read_timeout(Some(EVENT_DEADLINE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    let tcp = std::net::TcpStream::connect(("127.0.0.1", hf.ports.https)).unwrap();
    tcp.set_read_timeout(Some(EVENT_DEADLINE)).unwrap();
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    assert!(b.build().connect("app.test", tcp).is_err(), "the handshake must fail");
    let m = hf.metrics_when(|m| refused(m) == before + 2).await;
    assert_eq!(refused(&m), before + 2, "{m}");
}

/// A real Jupyter Server (from PyPI) on a loopback port, with its state in `dir`; stopped
/// with SIGTERM (which also stops its kernels) when dropped.
struct Jupyter {
    child: std::process::Child,
    port: u16,
}

impl Jupyter {
    fn start(dir: &std::path::Path, token: &str) -> Jupyter {
        let port = free_port();
        for d in ["root", "config", "data", "runtime", "ipython"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let log = std::fs::File::create(dir.join("jupyter.log")).unwrap();
        let child = std::process::Command::new("python3")
            .args(["-m", "jupyter_server", "--no-browser", "--allow-root"])
            .arg(format!("--IdentityProvider.token={token}"))
            .args(["--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0"])
            .arg(format!("--ServerApp.port={port}"))
            .arg(format!("--ServerApp.root_dir={}", dir.join("root").display()))
            // Behind a proxy: any Host the viewer used, and X-Forwarded-Proto believed.
            .args([
                "--ServerApp.allow_remote_access=True",
                "--ServerApp.trust_xheaders=True",
            ])
            .current_dir(dir)
            .env("HOME", dir)
            .env("JUPYTER_CONFIG_DIR", dir.join("config"))
            .env("JUPYTER_DATA_DIR", dir.join("data"))
            .env("JUPYTER_RUNTIME_DIR", dir.join("runtime"))
            .env("IPYTHONDIR", dir.join("ipython"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("python3 -m jupyter_server starts (./dev.sh test installs jupyter-server)");
        let mut j = Jupyter { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let raw = std::net::TcpStream::connect(("127.0.0.1", port))
                .map(|_| {
                    raw_http(
                        port,
                        "GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    )
                })
                .unwrap_or_default();
            if raw.starts_with("HTTP/1.1 200") {
                return j;
            }
            let exited = j.child.try_wait().unwrap();
            if exited.is_some() || std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("jupyter.log")).unwrap_or_default();
                panic!("Jupyter Server did not come up ({exited:?}): {log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Jupyter {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jupyter_server_works_behind_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let token = "a1b2c3d4e5f6";
    let jupyter = Jupyter::start(dir.path(), token);
    let hf = Homefront::start(&config(jupyter.port, ""));
    // Its REST API with the token, a browser login with the XSRF cookie, a kernel started,
    // code run over the kernel's WebSocket, the result read: over HTTP and over HTTPS.
    for (base, extra) in [
        (format!("http://127.0.0.1:{}", hf.ports.http), None),
        (format!("https://127.0.0.1:{}", hf.ports.https), Some("--insecure")),
    ] {
        let out = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jupyter_client.py"))
            .args([&base, token])
            .args(extra)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("jupyter ok"),
            "{base}: {stdout}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("jupyter.log")).unwrap_or_default()
        );
    }
    drop(jupyter);
}

/// Resident memory of process `pid`: (now, peak), in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_chunked_upload_streams_through_in_bounded_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An app that reads the upload as it comes and answers with the number of bytes it read.
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = app.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = app.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        let mut tail = Vec::new();
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the upload ended early");
            total += n as u64;
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 16 {
                tail.drain(..tail.len() - 16);
            }
            if tail.ends_with(b"\r\n0\r\n\r\n") {
                break;
            }
        }
        let body = total.to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
    });
    let hf = Homefront::start(&config(app_port, ""));
    let pid = hf.child.id();
    let (before, _) = rss_kib(pid);

    const PIECE: usize = 1 << 20;
    const PIECES: usize = 200;
    let pieces =
        futures::stream::iter((0..PIECES).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'u'; PIECE]))));
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/upload", hf.ports.http))
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let read: u64 = resp.text().await.unwrap().parse().unwrap();
    assert!(
        read > (PIECE * PIECES) as u64,
        "the app read the whole upload (with its framing): {read}"
    );
    let (_, peak) = rss_kib(pid);
    let grew = peak.saturating_sub(before);
    assert!(
        grew < 40 * 1024,
        "resident memory grew by {grew} KiB for a 200 MiB upload"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apps_redirect_to_its_own_address_stays_on_the_viewers_host() {
    let app = TestOrigin::start().await;
    let own = format!("http://127.0.0.1:{}/login?next=%2Fhome", app.port);
    app.route("/home", Reply::with(302, &[("location", &own)], ""));
    let local = format!("http://localhost:{}/", app.port);
    app.route("/local", Reply::with(303, &[("location", &local)], ""));
    app.route(
        "/away",
        Reply::with(302, &[("location", "https://accounts.example.com/authorize?x=1")], ""),
    );
    let hf = Homefront::start(&config(app.port, ""));
    for (name, client, base) in transports(&hf) {
        let location = |path: &'static str| {
            let client = client.clone();
            let url = format!("{base}{path}");
            async move {
                let resp = client.get(url).send().await.unwrap();
                assert!(resp.status().is_redirection());
                resp.headers()["location"].to_str().unwrap().to_string()
            }
        };
        assert_eq!(location("/home").await, "/login?next=%2Fhome", "{name}");
        assert_eq!(location("/local").await, "/", "{name}");
        assert_eq!(
            location("/away").await,
            "https://accounts.example.com/authorize?x=1",
            "{name}: another site's address stays"
        );
    }
}
