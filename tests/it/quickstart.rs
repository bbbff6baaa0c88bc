//! The README's quick start: `homefront serve` on the embedded default config, in an empty
//! directory, serves the demo page over HTTPS and redirects HTTP (ports overridden so tests
//! never share a fixed port).

use std::net::SocketAddr;

use crate::common::*;

fn serve_args(p: &Ports) -> Vec<String> {
    vec![
        "serve".into(),
        "--http".into(),
        format!("127.0.0.1:{}", p.http),
        "--https".into(),
        format!("127.0.0.1:{}", p.https),
        "--metrics".into(),
        format!("127.0.0.1:{}", p.metrics),
        "--origin".into(),
        format!("127.0.0.1:{}", p.origin),
        "--admin".into(),
        format!("127.0.0.1:{}", p.admin),
    ]
}

fn start(dir: tempfile::TempDir) -> Homefront {
    let ports = Ports::new();
    let args = serve_args(&ports);
    let mut hf = Homefront::spawn_args(dir, &args, ports);
    for port in [
        hf.ports.http,
        hf.ports.https,
        hf.ports.metrics,
        hf.ports.origin,
        hf.ports.admin,
    ] {
        hf.wait_port(port);
    }
    hf
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_default_serves_the_demo_page() {
    let hf = start(tempfile::tempdir().unwrap());
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();

    let r = client
        .get(format!("https://localhost:{}/", hf.ports.https))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(r.headers()["x-cache"], "Miss from homefront");
    let page = r.text().await.unwrap();
    assert!(page.contains("homefront is running"), "{page}");
    let r = client
        .head(format!("https://localhost:{}/", hf.ports.https))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-cache"],
        "Hit from homefront",
        "the embedded default caches"
    );
    assert!(r.headers().contains_key("age"));
    for (path, ct) in [("/style.css", "text/css"), ("/logo.svg", "image/svg+xml")] {
        let r = client
            .get(format!("https://localhost:{}{path}", hf.ports.https))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(ct), "{path}");
    }

    let r = client
        .get(format!("http://localhost:{}/", hf.ports.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("https://localhost:{}/", hf.ports.https)
    );

    // The self-signed certificate is for localhost and lives in ./data/tls.
    let (cn, _, version) = handshake(hf.ports.https, "localhost", b"\x08http/1.1");
    assert_eq!(cn, "localhost");
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{version}");
    let data = hf.dir.path().join("data");
    assert!(data.join("tls").is_dir());
    let secret = std::fs::read_to_string(data.join("secrets/origin.key")).unwrap();
    assert!(secret.trim().len() >= 30);

    // One log line per listener says where it listens.
    let log = hf.stderr();
    for port in [
        hf.ports.http,
        hf.ports.https,
        hf.ports.metrics,
        hf.ports.origin,
        hf.ports.admin,
    ] {
        assert!(
            log.contains(&format!("127.0.0.1:{port}")),
            "no listener line for {port}:\n{log}"
        );
    }

    // The generated secret works with the official SDK against the bucket store.
    let s3 = s3_client_as(hf.ports.origin, "homefront", secret.trim());
    let list = s3.list_objects_v2().bucket("site").send().await.unwrap();
    let keys: Vec<_> = list.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["index.html", "logo.svg", "style.css"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_certificate_secret_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let hf = start(dir);
    let (_, _, _) = handshake(hf.ports.https, "localhost", b"\x08http/1.1");
    let tls_dir = hf.dir.path().join("data/tls");
    let cert_before = read_sorted(&tls_dir);
    let secret = std::fs::read_to_string(hf.dir.path().join("data/secrets/origin.key")).unwrap();

    // Replace the demo page, then restart: it must not be re-seeded over the user's page.
    let s3 = s3_client_as(hf.ports.origin, "homefront", secret.trim());
    for key in ["index.html", "style.css", "logo.svg"] {
        s3.delete_object().bucket("site").key(key).send().await.unwrap();
    }
    s3.put_object()
        .bucket("site")
        .key("index.html")
        .content_type("text/html")
        .body(b"mine".to_vec().into())
        .send()
        .await
        .unwrap();

    let hf = start(hf.stop());
    let cert_after = read_sorted(&tls_dir);
    assert_eq!(
        cert_before, cert_after,
        "the self-signed certificate is kept across restarts"
    );
    assert_eq!(
        std::fs::read_to_string(hf.dir.path().join("data/secrets/origin.key")).unwrap(),
        secret
    );
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{}/", hf.ports.https))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "mine");
}

fn read_sorted(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_server_promptly() {
    // `systemctl stop` and `docker stop` send SIGTERM and give up after 90 s / 10 s.
    use std::io::{BufRead, Read, Write};
    let mut hf = start(tempfile::tempdir().unwrap());
    // A keep-alive connection idle after one request (the demo page, twice: the second is a
    // hit) is closed by the shutdown, not left open until the process exits.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", hf.ports.http)).unwrap();
    let mut reader = std::io::BufReader::new(idle.try_clone().unwrap());
    for _ in 0..2 {
        idle.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
    }
    hf.sigterm();
    let signalled = std::time::Instant::now();
    idle.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        reader.read_to_end(&mut rest).unwrap(),
        0,
        "the idle connection is closed"
    );
    // Closed by the shutdown itself, not by the process's exit after its 5 s grace period:
    // the process still runs, and has not logged the end of its grace period, when the
    // connection is closed.
    let closed_after = signalled.elapsed();
    let running = hf.child.try_wait().unwrap().is_none();
    let log = hf.stderr();
    assert!(
        running && !log.contains(GRACE_ENDS),
        "the idle connection stayed open until the process exited ({closed_after:?} after SIGTERM):\n{log}"
    );
    let deadline = std::time::Instant::now() + EVENT_DEADLINE;
    loop {
        if let Some(status) = hf.child.try_wait().unwrap() {
            eprintln!("exited with {status}");
            // (What the check above looks for is what the shutdown logs.)
            assert!(hf.stderr().contains(GRACE_ENDS), "{}", hf.stderr());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 30 s after SIGTERM:\n{}",
            hf.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
