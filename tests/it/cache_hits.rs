//! Cache hits: entries that outlive a restart (and damaged files that are never served),
//! bucket objects cached and invalidated, hits in the access logs, and the hit path
//! (`edge::hit`), which must answer as the full path does, over HTTP/1.1 and HTTP/2, with
//! sendfile on plain HTTP. Shares its setup with `cache`.

use super::cache::{invalidate_cli, setup};
use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_hits_and_a_damaged_file_is_never_served() {
    let mut s = setup().await;
    // Larger than what is read whole (1 MiB): streamed from its file.
    let big: String = (0..1_500_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    s.origin.route(
        "/small",
        Reply::with(200, &[("cache-control", "max-age=600")], "small body"),
    );
    s.origin
        .route("/big", Reply::with(200, &[("cache-control", "max-age=600")], &big));
    s.get("/small").await;
    s.get("/big").await;
    s.crash_and_restart();
    assert_eq!(s.get("/small").await, (200, "Hit".into(), "small body".into()));
    let (status, xc, body) = s.get("/big").await;
    assert_eq!((status, xc.as_str()), (200, "Hit"));
    assert!(body == big, "the large body came back intact");
    assert_eq!(s.origin.count("/small"), 1);

    // Damage every stored body (one flipped byte), restart: both are fetched again, intact.
    let bodies = s.cache_files(".body");
    assert_eq!(bodies.len(), 2);
    for path in &bodies {
        let mut data = std::fs::read(path).unwrap();
        data[3] ^= 0x20;
        std::fs::write(path, data).unwrap();
    }
    s.crash_and_restart();
    assert_eq!(s.get("/small").await, (200, "Miss".into(), "small body".into()));
    // The large body is checked as it streams: the damaged copy is cut off and dropped,
    // never delivered whole; the next request fetches it again.
    let first = s.client.get(s.url("/big")).send().await.unwrap();
    let delivered = first.text().await.ok();
    assert!(
        delivered.is_none_or(|d| d != big.replacen('d', "D", 1)),
        "the damaged copy is never delivered whole"
    );
    let (status, xc, body) = s.get("/big").await;
    assert_eq!((status, xc.as_str()), (200, "Miss"));
    assert!(body == big, "fetched again, intact");
    // Both damaged entries were counted.
    let m = s.hf.metrics();
    assert!(
        m.contains("homefront_cache_discarded_total{reason=\"corrupt\"} 2"),
        "{}",
        m.lines()
            .filter(|l| l.contains("discarded"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A meta file cut short or replaced by garbage is skipped at start, counted, and the
    // object fetched again; homefront starts as usual.
    let metas = s.cache_files(".meta");
    assert_eq!(metas.len(), 2);
    for (i, path) in metas.iter().enumerate() {
        let data = std::fs::read(path).unwrap();
        let damaged = if i == 0 {
            data[..7].to_vec()
        } else {
            vec![0xff; data.len()]
        };
        std::fs::write(path, damaged).unwrap();
    }
    s.crash_and_restart();
    assert_eq!(s.get("/small").await, (200, "Miss".into(), "small body".into()));
    assert_eq!(s.get("/small").await.1, "Hit");
    let m = s.hf.metrics();
    assert!(
        m.contains("homefront_cache_discarded_total{reason=\"corrupt\"} 2"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_objects_are_cached_and_invalidated_after_an_update() {
    let s = setup().await;
    let s3 = s.hf.s3();
    s3.put_object()
        .bucket("site")
        .key("site/app.js")
        .body(b"v1".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(s.get("/site/app.js").await, (200, "Miss".into(), "v1".into()));
    assert_eq!(s.get("/site/app.js").await, (200, "Hit".into(), "v1".into()));
    s3.put_object()
        .bucket("site")
        .key("site/app.js")
        .body(b"v2".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.get("/site/app.js").await.2,
        "v1",
        "cached until invalidated, as on CloudFront"
    );
    let (ok, out, err) = invalidate_cli(&s, &["--distribution", "main", "/site/app.js"]);
    assert!(ok, "{err}");
    assert!(out.contains("invalidated 1 cached entry"), "{out}");
    assert_eq!(s.get("/site/app.js").await, (200, "Miss".into(), "v2".into()));

    // A single-page app from the bucket: unknown routes get index.html with 200.
    s3.put_object()
        .bucket("site")
        .key("index.html")
        .content_type("text/html")
        .body(b"<div id=app></div>".to_vec().into())
        .send()
        .await
        .unwrap();
    let r = s
        .client
        .get(format!("{}/settings/profile", s.hf.https_base("spa.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.text().await.unwrap(), "<div id=app></div>");
}

#[tokio::test(flavor = "multi_thread")]
async fn access_logs_in_cloudfront_format_and_json_lines() {
    let s = setup().await;
    s.origin.route(
        "/logged.txt",
        Reply::with(200, &[("cache-control", "max-age=600")], "twelve bytes"),
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = s
            .client
            .get(s.url("/logged.txt?utm=1"))
            .header("user-agent", "Mozilla/5.0 (X11; Linux)")
            .header("referer", "https://a.test/")
            .send()
            .await
            .unwrap();
        ids.push(r.headers()["x-amz-cf-id"].to_str().unwrap().to_string());
        r.text().await.unwrap();
    }
    let lines = log_lines(&s.hf.dir.path().join("data/logs/distributions/main"), 2).await;
    assert_eq!(lines[0], "#Version: 1.0");
    let fields: Vec<&str> = lines[1].strip_prefix("#Fields: ").unwrap().split(' ').collect();
    assert_eq!(fields.len(), 33);
    assert_eq!(&fields[..5], ["date", "time", "x-edge-location", "sc-bytes", "c-ip"]);
    let rows: Vec<std::collections::HashMap<&str, &str>> = lines[2..]
        .iter()
        .map(|l| {
            let v: Vec<&str> = l.split('\t').collect();
            assert_eq!(v.len(), 33, "{l}");
            fields.iter().copied().zip(v).collect()
        })
        .collect();
    assert_eq!(rows.len(), 2);
    // Lines are written as requests finish, not necessarily in the order they were sent.
    for (id, result) in ids.iter().zip(["Miss", "Hit"]) {
        let row = rows
            .iter()
            .find(|r| r["x-edge-request-id"] == id.as_str())
            .unwrap_or_else(|| panic!("no line for request {id}: {lines:?}"));
        assert_eq!(row["x-edge-result-type"], result);
        assert_eq!(row["cs-method"], "GET");
        assert_eq!(row["cs-uri-stem"], "/logged.txt");
        assert_eq!(row["cs-uri-query"], "utm=1");
        assert_eq!(row["sc-status"], "200");
        assert_eq!(row["sc-bytes"], "12");
        assert_eq!(row["c-ip"], "127.0.0.1");
        assert_eq!(row["cs(User-Agent)"], "Mozilla/5.0%20(X11;%20Linux)");
        assert_eq!(row["cs(Referer)"], "https://a.test/");
        assert_eq!(row["cs-protocol"], "https");
        assert!(row["ssl-protocol"].starts_with("TLSv1."), "{}", row["ssl-protocol"]);
        assert!(row["x-host-header"].starts_with("a.test:"));
        assert!(row["date"].len() == 10 && row["time"].len() == 8);
    }
    // JSON lines for the other distribution, with the same field names.
    s.client
        .get(format!("{}/nothing-here", s.hf.https_base("spa.test")))
        .send()
        .await
        .unwrap();
    let json = log_lines(&s.hf.dir.path().join("data/logs/distributions/spa"), 1).await;
    let v: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(v["cs-uri-stem"], "/nothing-here");
    assert_eq!(v["x-edge-location"], "homefront");
}

impl H1 {
    /// [`stable`] of its headers, in order.
    fn stable_headers(&self) -> Vec<(String, String)> {
        stable(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }
}

/// Headers without those that differ between any two answers (the time, the entry's age in
/// seconds, the request id).
fn stable<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter(|(n, _)| !matches!(*n, "date" | "age" | "x-amz-cf-id"))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// [`stable`] of an HTTP/2 response's headers, sorted.
fn stable_h2(r: &reqwest::Response) -> Vec<(String, String)> {
    let mut h = stable(r.headers().iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap())));
    h.sort();
    h
}

fn hit_path_count(m: &str) -> u64 {
    m.lines()
        .find_map(|l| l.strip_prefix("homefront_edge_hit_path_total "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no homefront_edge_hit_path_total in {m}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hit_path_answers_as_the_full_path_does() {
    let s = setup().await;
    let port = s.hf.ports.http;
    s.origin.route(
        "/same.txt",
        Reply::with(
            200,
            &[("cache-control", "max-age=600"), ("x-from", "origin")],
            "same body",
        )
        .etag("\"v1\""),
    );
    s.origin.route(
        "/other.txt",
        Reply::with(200, &[("cache-control", "no-store")], "other"),
    );
    let get = |extra: &str| format!("GET /same.txt HTTP/1.1\r\nHost: a.test\r\n{extra}\r\n");
    let miss = pipelined(port, &[&get("")]);
    assert_eq!(miss[0].get("x-cache"), Some("Miss from homefront"));
    assert_eq!(hit_path_count(&s.hf.metrics()), 0);

    // The same entry, by the hit path and (a precondition that does not match) the full one.
    let by_hit_path = &pipelined(port, &[&get("")])[0];
    let by_proxy = &pipelined(port, &[&get("If-None-Match: \"other\"\r\n")])[0];
    let m = s.hf.metrics_when(|m| hit_path_count(m) == 1).await;
    assert_eq!(hit_path_count(&m), 1, "only the plain GET took the hit path");
    assert_eq!(by_hit_path.status, 200);
    assert_eq!(by_hit_path.get("x-cache"), Some("Hit from homefront"));
    assert_eq!(by_hit_path.body, b"same body");
    assert_eq!(by_hit_path.stable_headers(), by_proxy.stable_headers());
    assert_eq!(by_hit_path.body, by_proxy.body);
    for r in [by_hit_path, by_proxy] {
        assert!(r.get("age").unwrap().parse::<u64>().is_ok());
        assert_eq!(r.get("x-amz-cf-id").unwrap().len(), 32);
        assert!(r.get("date").unwrap().ends_with(" GMT"));
    }
    assert_ne!(by_hit_path.get("x-amz-cf-id"), by_proxy.get("x-amz-cf-id"));

    // Pipelined: hit path, full path (a miss), HEAD by the hit path, and a last request that
    // closes; each answered in order on the one connection.
    let answers = pipelined(
        port,
        &[
            &get(""),
            "GET /other.txt HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "HEAD /same.txt HTTP/1.1\r\nHost: a.test\r\n\r\n",
            &get("Connection: close\r\n"),
        ],
    );
    let results: Vec<_> = answers.iter().map(|a| (a.status, a.get("x-cache").unwrap())).collect();
    assert_eq!(
        results,
        [
            (200, "Hit from homefront"),
            (200, "Miss from homefront"),
            (200, "Hit from homefront"),
            (200, "Hit from homefront")
        ]
    );
    assert_eq!(answers[0].body, b"same body");
    assert_eq!(answers[1].body, b"other");
    assert_eq!(answers[2].get("content-length"), Some("9"));
    assert_eq!(answers[2].stable_headers(), by_hit_path.stable_headers());
    assert_eq!(answers[3].get("connection"), Some("close"));
    assert_eq!(answers[0].get("connection"), Some("keep-alive"));
    let m = s.hf.metrics_when(|m| hit_path_count(m) == 4).await;
    assert_eq!(hit_path_count(&m), 4);

    // Another variant (a CORS request's Origin) is not the primary slot's: full path.
    let cors = &pipelined(port, &[&get("Origin: https://app.test\r\n")])[0];
    assert_eq!(cors.get("x-cache"), Some("Miss from homefront"));
    assert_eq!(s.origin.count("/same.txt"), 2);
    // Each request was counted once, whichever path served it, and logged.
    let hits = r#"homefront_requests_total{behavior="*",cache="Hit",distribution="main",status_class="2xx"} 5"#;
    let m = s.hf.metrics_when(|m| m.contains(hits)).await;
    assert!(m.contains(hits), "{m}");
    assert_eq!(hit_path_count(&m), 4);
    let lines = log_lines(&s.hf.dir.path().join("data/logs/distributions/main"), 8).await;
    let id = by_hit_path.get("x-amz-cf-id").unwrap();
    let line = lines
        .iter()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("no log line for {id}: {lines:?}"));
    assert!(
        line.contains("\tHit\t") && line.contains("\t/same.txt\t200\t"),
        "{line}"
    );

    // An invalidation reaches the hit path at once.
    let (ok, out, err) = invalidate_cli(&s, &["--distribution", "main", "/same.txt"]);
    assert!(ok, "{out}{err}");
    let after = &pipelined(port, &[&get("")])[0];
    assert_eq!(after.get("x-cache"), Some("Miss from homefront"));
    assert_eq!(s.origin.count("/same.txt"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hit_path_serves_http2_streams_too() {
    let s = setup().await;
    s.origin.route(
        "/h2.txt",
        Reply::with(200, &[("cache-control", "max-age=600")], "over h2"),
    );
    let get = |extra: Option<(&str, &str)>| {
        let mut rb = s.client.get(s.url("/h2.txt"));
        if let Some((n, v)) = extra {
            rb = rb.header(n, v);
        }
        rb.send()
    };
    let miss = get(None).await.unwrap();
    assert_eq!(miss.version(), reqwest::Version::HTTP_2);
    assert_eq!(miss.headers()["x-cache"], "Miss from homefront");
    miss.text().await.unwrap();
    let by_hit_path = get(None).await.unwrap();
    let by_proxy = get(Some(("if-none-match", "\"nope\""))).await.unwrap();
    assert_eq!(stable_h2(&by_hit_path), stable_h2(&by_proxy));
    assert_eq!(by_hit_path.headers()["x-cache"], "Hit from homefront");
    assert!(by_hit_path.headers().contains_key("age"));
    assert_eq!(by_hit_path.text().await.unwrap(), "over h2");
    assert_eq!(by_proxy.text().await.unwrap(), "over h2");
    let head = s.client.head(s.url("/h2.txt")).send().await.unwrap();
    assert_eq!(head.headers()["content-length"], "7");
    assert_eq!(head.headers()["x-cache"], "Hit from homefront");
    assert_eq!(head.bytes().await.unwrap().len(), 0);
    let m = s.hf.metrics_when(|m| hit_path_count(m) == 2).await;
    assert_eq!(hit_path_count(&m), 2, "the plain GET and the HEAD");
    assert_eq!(s.origin.count("/h2.txt"), 1);
}

/// Many streams at once on one HTTP/2 connection: small hits (answered on the connection's
/// task), hits larger than the stream's initial flow-control window (they wait for the
/// client's WINDOW_UPDATE in a task of their own), misses that are never cached, and errors.
/// Each stream gets its own answer, whole.
#[tokio::test(flavor = "multi_thread")]
async fn many_streams_on_one_http2_connection_each_get_their_own_answer() {
    let s = setup().await;
    let large: String = (0..300 * 1024).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    for i in 0..8 {
        let cached = [("cache-control", "max-age=600")];
        s.origin
            .route(&format!("/small/{i}"), Reply::with(200, &cached, format!("small {i}")));
        s.origin
            .route(&format!("/large/{i}"), Reply::with(200, &cached, format!("{i}{large}")));
        s.origin
            .route(&format!("/nocache/{i}"), Reply::with(200, &[], format!("fresh {i}")));
    }
    // Fill the cache (and open the connection) first.
    for i in 0..8 {
        for kind in ["small", "large"] {
            let r = s.client.get(s.url(&format!("/{kind}/{i}"))).send().await.unwrap();
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            assert_eq!(r.headers()["x-cache"], "Miss from homefront");
            r.bytes().await.unwrap();
        }
    }
    let before = hit_path_count(&s.hf.metrics());
    let mut requests = Vec::new();
    for round in 0..3 {
        for i in 0..8 {
            for kind in ["small", "large", "nocache", "missing"] {
                let url = s.url(&format!("/{kind}/{i}"));
                let client = s.client.clone();
                requests.push(tokio::spawn(async move {
                    let r = client.get(url).send().await.unwrap();
                    let status = r.status().as_u16();
                    let cache = r.headers()["x-cache"].to_str().unwrap().to_string();
                    (round, kind, i, status, cache, r.text().await.unwrap())
                }));
            }
        }
    }
    for r in requests {
        let (round, kind, i, status, cache, body) = r.await.unwrap();
        let what = format!("round {round}: /{kind}/{i}");
        match kind {
            "small" => assert_eq!((status, body.as_str()), (200, format!("small {i}").as_str()), "{what}"),
            "large" => {
                assert_eq!(status, 200, "{what}");
                assert!(
                    body.len() == large.len() + 1 && body == format!("{i}{large}"),
                    "{what}: the body differs"
                );
            }
            "nocache" => assert_eq!((status, body.as_str()), (200, format!("fresh {i}").as_str()), "{what}"),
            _ => assert_eq!(status, 404, "{what}"),
        }
        match kind {
            "small" | "large" => assert_eq!(cache, "Hit from homefront", "{what}"),
            "nocache" => assert_eq!(cache, "Miss from homefront", "{what}"),
            _ => {}
        }
    }
    let m = s.hf.metrics_when(|m| hit_path_count(m) == before + 48).await;
    assert_eq!(
        hit_path_count(&m),
        before + 48,
        "every small and large hit, by the hit path"
    );
    assert_eq!(s.origin.count("/nocache/3"), 3);
    assert_eq!(s.origin.count("/large/3"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_hit_goes_out_with_sendfile_on_plain_http_and_as_before_on_tls() {
    let mut s = setup().await;
    let port = s.hf.ports.http;
    let body: String = (0..3 * 1024 * 1024 + 17)
        .map(|i| (b'a' + (i % 23) as u8) as char)
        .collect();
    s.origin
        .route("/big.bin", Reply::with(200, &[("cache-control", "max-age=600")], &body));
    let get = "GET /big.bin HTTP/1.1\r\nHost: a.test\r\n\r\n";
    let miss = &pipelined(port, &[get])[0];
    assert_eq!(miss.get("x-cache"), Some("Miss from homefront"));
    // Disk only (over the memory tier's 1 MiB object limit), written by this process.
    let m = s.hf.metrics();
    assert!(m.contains(r#"homefront_cache_entries{tier="memory"} 0"#), "{m}");

    // Twice on one connection, then a HEAD: the hit path, the body from the file.
    let answers = pipelined(port, &[get, get, "HEAD /big.bin HTTP/1.1\r\nHost: a.test\r\n\r\n"]);
    for a in &answers[..2] {
        assert_eq!(a.get("x-cache"), Some("Hit from homefront"));
        assert_eq!(a.body.len(), body.len());
        assert!(a.body == body.as_bytes(), "the body differs from the origin's");
    }
    assert_eq!(answers[2].get("content-length"), Some(body.len().to_string().as_str()));
    let m = s.hf.metrics_when(|m| hit_path_count(m) == 3).await;
    assert_eq!(hit_path_count(&m), 3);
    // Over TLS (its own entry: the scheme is in the key) the full path serves the hit, with
    // the same headers.
    let tls_miss = s.client.get(s.url("/big.bin")).send().await.unwrap();
    assert_eq!(tls_miss.headers()["x-cache"], "Miss from homefront");
    assert_eq!(tls_miss.text().await.unwrap(), body);
    let r = s.client.get(s.url("/big.bin")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let tls_headers = stable_h2(&r);
    assert_eq!(r.text().await.unwrap(), body);
    // HTTP/2 has no Connection header.
    let mut plain: Vec<(String, String)> = answers[0]
        .stable_headers()
        .into_iter()
        .filter(|(n, _)| n != "connection")
        .collect();
    plain.sort();
    assert_eq!(plain, tls_headers);
    assert_eq!(hit_path_count(&s.hf.metrics()), 3);
    assert_eq!(s.origin.count("/big.bin"), 2);

    // After a restart the file is checked against its CRC first, by the full path (as it
    // streams); the hit path sends it only after that.
    s.crash_and_restart();
    let first = &pipelined(port, &[get])[0];
    assert_eq!(first.get("x-cache"), Some("Hit from homefront"));
    assert!(first.body == body.as_bytes());
    assert_eq!(hit_path_count(&s.hf.metrics()), 0);
    let second = &pipelined(port, &[get])[0];
    assert!(second.body == body.as_bytes());
    let m = s.hf.metrics_when(|m| hit_path_count(m) == 1).await;
    assert_eq!(hit_path_count(&m), 1);
    assert_eq!(s.origin.count("/big.bin"), 2);
}

/// The cache body files homefront (`pid`) has open.
fn open_body_files(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.ends_with(".body"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_tier_hit_goes_out_from_its_open_file_and_a_new_version_from_the_new_one() {
    let s = setup().await;
    let port = s.hf.ports.http;
    let pid = s.hf.child.id();
    let version = |v: u8| -> String {
        (0..100 * 1024)
            .map(|i| (b'a' + ((i + v as usize) % 23) as u8) as char)
            .collect()
    };
    let v1 = version(1);
    s.origin
        .route("/mid.bin", Reply::with(200, &[("cache-control", "max-age=600")], &v1));
    let get = "GET /mid.bin HTTP/1.1\r\nHost: a.test\r\n\r\n";
    assert_eq!(pipelined(port, &[get])[0].get("x-cache"), Some("Miss from homefront"));
    // The miss may finish its cache write just after the viewer has the whole answer.
    let in_memory = r#"homefront_cache_entries{tier="memory"} 1"#;
    let m = s.hf.metrics_when(|m| m.contains(in_memory)).await;
    assert!(m.contains(in_memory), "{m}");
    assert!(open_body_files(pid).is_empty(), "no file is open before a hit sends it");

    // Hits on one connection: the hit path sends the body from the entry's file, which it
    // then keeps open for the next hit; a HEAD sends no body.
    let answers = pipelined(port, &[get, get, "HEAD /mid.bin HTTP/1.1\r\nHost: a.test\r\n\r\n", get]);
    for a in [&answers[0], &answers[1], &answers[3]] {
        assert_eq!(a.get("x-cache"), Some("Hit from homefront"));
        assert!(a.body == v1.as_bytes(), "the body differs from the origin's");
    }
    assert_eq!(answers[2].get("content-length"), Some("102400"));
    assert!(answers[2].body.is_empty());
    let m = s.hf.metrics_when(|m| hit_path_count(m) == 4).await;
    assert_eq!(hit_path_count(&m), 4);
    let held = open_body_files(pid);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(s.cache_files(".body").len(), 1);

    // Over TLS the body is written from memory (its own entry: the scheme is in the key).
    assert_eq!(
        s.client
            .get(s.url("/mid.bin"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        v1
    );
    let r = s.client.get(s.url("/mid.bin")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit from homefront");
    assert_eq!(r.text().await.unwrap(), v1);
    assert_eq!(open_body_files(pid), held);

    // A new version: the invalidation closes the old file; the next hit opens the new one.
    let v2 = version(2);
    s.origin
        .route("/mid.bin", Reply::with(200, &[("cache-control", "max-age=600")], &v2));
    let (ok, _, err) = invalidate_cli(&s, &["--distribution", "main", "/mid.bin"]);
    assert!(ok, "{err}");
    assert!(
        open_body_files(pid).is_empty(),
        "the invalidated entry's file is closed"
    );
    let answers = pipelined(port, &[get, get, get]);
    assert_eq!(answers[0].get("x-cache"), Some("Miss from homefront"));
    for a in &answers {
        assert!(a.body == v2.as_bytes(), "an old body after the invalidation");
    }
    let now = open_body_files(pid);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, held);
    assert_eq!(s.origin.count("/mid.bin"), 3);
}
