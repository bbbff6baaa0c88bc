//! RFC 9111 and RFC 9213 where CloudFront's rules leave them open: a response's age on
//! arrival, the three HTTP date formats of Expires, targeted cache-control fields, and
//! hop-by-hop fields, through the edge cache to HTTP/1.1 and HTTP/2 viewers.

use crate::common::*;

fn config(app: u16) -> String {
    format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
origins:
  app: {{ http: "127.0.0.1:{app}" }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "/rfc/*", origin: app, cache: {{ freshness: rfc9111 }} }}
      # Nothing stored without the origin's word (default_ttl 0): what it says decides.
      - {{ path_pattern: "*", origin: app, cache: {{ min_ttl: 0, default_ttl: 0, max_ttl: 1y }} }}
"#
    )
}

/// HTTP/1.1 (plain) and HTTP/2 (TLS): (name, client, base URL).
fn viewers(hf: &Homefront) -> Vec<(&'static str, reqwest::Client, String)> {
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    vec![
        ("HTTP/1.1", h1, hf.http_base("127.0.0.1")),
        ("HTTP/2", hf.client(&[]), hf.https_base("127.0.0.1")),
    ]
}

/// GETs `url` twice: the second answer's X-Cache and headers.
async fn twice(client: &reqwest::Client, url: &str) -> (String, reqwest::header::HeaderMap) {
    for _ in 0..2 {
        let resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let x_cache = resp.headers()["x-cache"].to_str().unwrap().to_string();
        let headers = resp.headers().clone();
        resp.bytes().await.unwrap();
        if x_cache.starts_with("Hit") {
            return (x_cache, headers);
        }
    }
    let resp = client.get(url).send().await.unwrap();
    (
        resp.headers()["x-cache"].to_str().unwrap().to_string(),
        resp.headers().clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn freshness_counts_the_age_a_response_arrives_with() {
    let app = TestOrigin::start().await;
    app.route(
        "/young",
        Reply::with(200, &[("cache-control", "max-age=600"), ("age", "100")], "y"),
    );
    app.route(
        "/spent",
        Reply::with(200, &[("cache-control", "max-age=600"), ("age", "600")], "s"),
    );
    app.route(
        "/bad-age",
        Reply::with(200, &[("cache-control", "max-age=600"), ("age", "soon")], "b"),
    );
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        let q = format!("?{}", name.len());
        let (x, _) = twice(&client, &format!("{base}/young{q}")).await;
        assert!(x.starts_with("Hit"), "{name}: 500 s of freshness left: {x}");
        let (x, _) = twice(&client, &format!("{base}/bad-age{q}")).await;
        assert!(x.starts_with("Hit"), "{name}: an invalid Age is ignored: {x}");
        let (x, _) = twice(&client, &format!("{base}/spent{q}")).await;
        assert!(!x.starts_with("Hit"), "{name}: arrived as old as its max-age: {x}");
    }
    assert_eq!(
        app.count("/spent"),
        6,
        "every request for the spent answer reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expires_is_read_in_every_http_date_format() {
    let app = TestOrigin::start().await;
    for (path, expires) in [
        ("/imf", "Thu, 01 Jan 2037 00:00:00 GMT"),
        ("/rfc850", "Thursday, 01-Jan-37 00:00:00 GMT"),
        ("/asctime", "Thu Jan  1 00:00:00 2037"),
        ("/case", "THU, 01 jan 2037 00:00:00 gmt"),
        ("/invalid", "0"),
    ] {
        app.route(path, Reply::with(200, &[("expires", expires)], path));
    }
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        for path in ["/imf", "/rfc850", "/asctime", "/case"] {
            let (x, _) = twice(&client, &format!("{base}{path}?{}", name.len())).await;
            assert!(x.starts_with("Hit"), "{name} {path}: {x}");
        }
        let (x, _) = twice(&client, &format!("{base}/invalid?{}", name.len())).await;
        assert!(
            !x.starts_with("Hit"),
            "{name}: an invalid Expires is already expired: {x}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn targeted_cache_control_speaks_to_the_edge_alone() {
    let app = TestOrigin::start().await;
    // Browsers must not keep it; the edge may, for ten minutes.
    app.route(
        "/cdn",
        Reply::with(
            200,
            &[("cache-control", "no-store"), ("cdn-cache-control", "max-age=600")],
            "c",
        ),
    );
    // This edge's own field wins over the one for any CDN.
    app.route(
        "/own",
        Reply::with(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "max-age=600"),
                ("homefront-cache-control", "no-store"),
            ],
            "o",
        ),
    );
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        let (x, h) = twice(&client, &format!("{base}/cdn?{}", name.len())).await;
        assert!(x.starts_with("Hit"), "{name}: {x}");
        assert_eq!(h["cache-control"], "no-store", "{name}: the browser's word passes");
        assert!(h.get("cdn-cache-control").is_none(), "{name}: never sent to viewers");
        let (x, h) = twice(&client, &format!("{base}/own?{}", name.len())).await;
        assert!(!x.starts_with("Hit"), "{name}: {x}");
        assert!(h.get("homefront-cache-control").is_none() && h.get("cdn-cache-control").is_none());
        assert_eq!(h["cache-control"], "max-age=60");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fields_named_in_connection_are_neither_stored_nor_passed_on() {
    let app = TestOrigin::start().await;
    app.route(
        "/hop",
        Reply::with(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("connection", "x-upstream-session"),
                ("x-upstream-session", "secret"),
                ("keep-alive", "timeout=5"),
                ("x-kept", "yes"),
            ],
            "h",
        ),
    );
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        let url = format!("{base}/hop?{}", name.len());
        let first = client.get(&url).send().await.unwrap();
        for (what, h) in [("miss", first.headers().clone()), ("hit", twice(&client, &url).await.1)] {
            assert!(h.get("x-upstream-session").is_none(), "{name} {what}: {h:?}");
            assert!(h.get("keep-alive").is_none(), "{name} {what}: {h:?}");
            assert_eq!(h["x-kept"], "yes", "{name} {what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_304_updates_the_stored_fields() {
    let app = TestOrigin::start().await;
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        let path = format!("/rev-{}", name.len());
        app.route(
            &path,
            Reply::with(
                200,
                &[
                    ("cache-control", "max-age=1"),
                    ("x-version", "1"),
                    ("content-type", "text/plain"),
                ],
                "body",
            )
            .etag("\"v1\""),
        );
        let url = format!("{base}{path}");
        let first = client.get(&url).send().await.unwrap();
        assert_eq!(first.headers()["x-version"], "1");
        first.bytes().await.unwrap();
        // The same representation, now described differently; answered 304 to its ETag.
        app.route(
            &path,
            Reply::with(
                200,
                &[
                    ("cache-control", "max-age=600"),
                    ("x-version", "2"),
                    ("content-type", "text/markdown"),
                ],
                "body",
            )
            .etag("\"v1\""),
        );
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        for expected in ["RefreshHit", "Hit"] {
            let resp = client.get(&url).send().await.unwrap();
            let h = resp.headers().clone();
            assert_eq!(resp.text().await.unwrap(), "body", "{name}");
            assert!(h["x-cache"].to_str().unwrap().starts_with(expected), "{name}: {h:?}");
            assert_eq!(h["x-version"], "2", "{name} {expected}: the 304's fields are stored");
            assert_eq!(h["content-type"], "text/markdown", "{name} {expected}");
        }
        let revalidation = app.last(&path).unwrap();
        assert_eq!(revalidation.header("if-none-match"), Some("\"v1\""), "{name}");
        assert_eq!(app.count(&path), 2, "{name}: one fill, one revalidation");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn vary_origin_only_where_the_answer_can_depend_on_it() {
    let app = TestOrigin::start().await;
    app.route("/plain", Reply::with(200, &[("cache-control", "max-age=600")], "p"));
    app.route(
        "/coded",
        Reply::with(
            200,
            &[("cache-control", "max-age=600"), ("vary", "Accept-Language")],
            "c",
        ),
    );
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        for origin in [None, Some("https://app.example")] {
            for path in ["/plain", "/coded"] {
                let mut req = client.get(format!("{base}{path}?{}", name.len()));
                if let Some(o) = origin {
                    req = req.header("origin", o);
                }
                let resp = req.send().await.unwrap();
                let vary: Vec<&str> = resp
                    .headers()
                    .get_all("vary")
                    .iter()
                    .map(|v| v.to_str().unwrap())
                    .collect();
                let expected: &[&str] = if path == "/plain" { &[] } else { &["Accept-Language"] };
                assert_eq!(
                    vary, expected,
                    "{name} {path} {origin:?}: an app's Vary is left as it was"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_answer_goes_out_with_its_age_since_the_origin_made_it() {
    let app = TestOrigin::start().await;
    app.route(
        "/aged",
        Reply::with(200, &[("cache-control", "max-age=600"), ("age", "100")], "a"),
    );
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        let url = format!("{base}/aged?{}", name.len());
        let (x, h) = twice(&client, &url).await;
        assert!(x.starts_with("Hit"), "{name}: {x}");
        let age: u64 = h["age"].to_str().unwrap().parse().unwrap();
        // 100 s old when it arrived, plus the (few) seconds it has been stored.
        assert!(
            (100..100 + EVENT_DEADLINE.as_secs()).contains(&age),
            "{name}: Age {age}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seek_on_a_cold_cache_gets_its_range_at_once_and_one_fill_follows() {
    const LEN: usize = 4 << 20;
    let video: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let app = TestOrigin::start().await;
    for path in ["/v/HTTP11.bin", "/v/HTTP2.bin"] {
        app.route(
            path,
            Reply::with(
                200,
                &[("cache-control", "max-age=600"), ("content-type", "video/mp4")],
                &video,
            )
            .ranges(),
        );
    }
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        let path = format!("/v/{}.bin", name.replace(['/', '.'], ""));
        let url = format!("{base}{path}");
        // Two viewers seek at once: each gets its range from the origin, at once.
        let get = |range: &'static str| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let resp = client.get(url).header("range", range).send().await?;
                let status = resp.status().as_u16();
                let content_range = resp
                    .headers()
                    .get("content-range")
                    .map(|v| v.to_str().unwrap().to_string());
                Ok::<_, reqwest::Error>((status, content_range, resp.bytes().await?))
            }
        };
        let (a, b) = tokio::join!(get("bytes=-1000"), get("bytes=1000000-1000099"));
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => panic!("{name}: {:?} {:?}\n{}", a.err(), b.err(), hf.stderr()),
        };
        assert_eq!(a.0, 206, "{name}");
        assert_eq!(
            a.1.as_deref(),
            Some(format!("bytes {}-{}/{LEN}", LEN - 1000, LEN - 1).as_str())
        );
        assert_eq!(&a.2[..], &video[LEN - 1000..], "{name}");
        assert_eq!((b.0, &b.2[..]), (206, &video[1_000_000..1_000_100]), "{name}");
        // The object fills in the background: ranges become hits, served from the cache.
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            let resp = client.get(&url).header("range", "bytes=10-19").send().await.unwrap();
            let hit = resp.headers()["x-cache"].to_str().unwrap().starts_with("Hit");
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap();
            assert_eq!((status, &body[..]), (206, &video[10..20]), "{name}");
            if hit {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: the object never filled"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let full = client.get(&url).send().await.unwrap();
        assert!(full.headers()["x-cache"].to_str().unwrap().starts_with("Hit"));
        assert_eq!(&full.bytes().await.unwrap()[..], &video[..], "{name}");
        // One whole-object request reached the origin, whatever the number of seeks.
        let whole = app
            .requests(&path)
            .iter()
            .filter(|r| r.header("range").is_none())
            .count();
        assert_eq!(whole, 1, "{name}: one fill");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_over_the_cache_limit_is_served_by_range_and_never_filled() {
    // A 16 MiB cache keeps objects up to 4 MiB.
    const LEN: usize = 5 << 20;
    let big: Vec<u8> = (0..LEN).map(|i| (i % 241) as u8).collect();
    let app = TestOrigin::start().await;
    app.route(
        "/big.bin",
        Reply::with(200, &[("cache-control", "max-age=600")], &big).ranges(),
    );
    let hf = Homefront::start(
        &config(app.port).replace("origins:", "cache: { disk_size: 16MiB, memory_size: 1MiB }\norigins:"),
    );
    for (name, client, base) in viewers(&hf) {
        for _ in 0..3 {
            let resp = client
                .get(format!("{base}/big.bin"))
                .header("range", "bytes=-100")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 206, "{name}");
            assert_eq!(&resp.bytes().await.unwrap()[..], &big[LEN - 100..], "{name}");
        }
    }
    let whole = app
        .requests("/big.bin")
        .iter()
        .filter(|r| r.header("range").is_none())
        .count();
    assert_eq!(whole, 0, "no fill of an object the cache cannot keep");
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc9111_freshness_revalidates_no_cache_and_uses_heuristics() {
    let app = TestOrigin::start().await;
    let long_ago = httpdate::fmt_http_date(std::time::SystemTime::now() - std::time::Duration::from_secs(864_000));
    for prefix in ["/rfc", ""] {
        app.route(
            &format!("{prefix}/nc"),
            Reply::with(200, &[("cache-control", "no-cache")], "n").etag("\"n1\""),
        );
        app.route(
            &format!("{prefix}/lm"),
            Reply::with(200, &[("last-modified", &long_ago)], "l"),
        );
    }
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        let q = format!("?{}", name.len());
        // no-cache: stored, and each use revalidated with its ETag (CloudFront: not stored).
        let (x, _) = twice(&client, &format!("{base}/rfc/nc{q}")).await;
        assert!(x.starts_with("RefreshHit"), "{name}: {x}");
        let last = app.last("/rfc/nc").unwrap();
        assert_eq!(last.header("if-none-match"), Some("\"n1\""), "{name}");
        let (x, _) = twice(&client, &format!("{base}/nc{q}")).await;
        assert!(x.starts_with("Miss"), "{name}: {x}");
        assert_eq!(app.last("/nc").unwrap().header("if-none-match"), None, "{name}");
        // Heuristic freshness from Last-Modified (CloudFront: default_ttl, 0 here).
        let (x, _) = twice(&client, &format!("{base}/rfc/lm{q}")).await;
        assert!(x.starts_with("Hit"), "{name}: {x}");
        let (x, _) = twice(&client, &format!("{base}/lm{q}")).await;
        assert!(!x.starts_with("Hit"), "{name}: {x}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_that_ignores_ranges_still_gets_its_object_cached() {
    let app = TestOrigin::start().await;
    let body: Vec<u8> = (0..100_000).map(|i| (i % 199) as u8).collect();
    app.route(
        "/plain.bin",
        Reply::with(200, &[("cache-control", "max-age=600")], &body),
    );
    let hf = Homefront::start(&config(app.port));
    for (name, client, base) in viewers(&hf) {
        let url = format!("{base}/plain.bin?{}", name.len());
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            let resp = client.get(&url).header("range", "bytes=0-9").send().await.unwrap();
            let hit = resp.headers()["x-cache"].to_str().unwrap().starts_with("Hit");
            let status = resp.status().as_u16();
            let got = resp.bytes().await.unwrap();
            if hit {
                // From the cache, the range is cut from the stored object.
                assert_eq!((status, &got[..]), (206, &body[..10]), "{name}");
                break;
            }
            // From the origin, which ignores Range: the whole object, which is allowed.
            assert_eq!((status, got.len()), (200, body.len()), "{name}");
            assert!(tokio::time::Instant::now() < deadline, "{name}: never cached");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
