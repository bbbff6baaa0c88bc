//! The edge cache, driven as viewers drive it: real homefront, the scripted test origin
//! counting what reaches it, the bucket store and the admin CLI: TTLs, cache keys, variants,
//! revalidation, stale answers, collapsed misses, error caching and invalidation. What a
//! kept entry does afterwards (restarts, damage, the hit path) is in `cache_hits`.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

const CONFIG: &str = r#"
listen: { http: "127.0.0.1:{http}", https: "127.0.0.1:{https}" }
metrics: { listen: "127.0.0.1:{metrics}" }
admin: { listen: "127.0.0.1:{admin}" }
cache: { disk_size: 64MiB, memory_size: 8MiB }
origins:
  app: { http: "127.0.0.1:{app}" }
  site: { bucket: site }
distributions:
  - name: main
    domains: [a.test, b.test]
    access_log: cloudfront
    custom_error_responses:
      - { error_code: 503, error_caching_min_ttl: 0 }
      - { error_code: 404, response_page_path: /errors/404.html }
      - { error_code: 403, response_page_path: /spa.html, response_code: 200 }
      - { error_code: 500, response_page_path: /errors/missing.html }
    behaviors:
      - { path_pattern: "/min/*", origin: app, cache: { min_ttl: 1h, default_ttl: 1h } }
      - { path_pattern: "/max/*", origin: app, cache: { max_ttl: 1s } }
      - { path_pattern: "/q/*", origin: app, cache: { query_strings: [v] } }
      - { path_pattern: "/qx/*", origin: app, cache: { query_strings: { all_except: [utm] } } }
      - { path_pattern: "/c/*", origin: app, cache: { cookies: [lang] } }
      - { path_pattern: "/h/*", origin: app, cache: { headers: [X-Variant] } }
      - { path_pattern: "/nocache/*", origin: app, cache: { max_ttl: 0 } }
      - path_pattern: "/or/*"
        origin: app
        cache: { query_strings: [v] }
        origin_request: { query_strings: all, cookies: [session], origin: "https://cdn.example.com" }
      - path_pattern: "/w/*"
        origin: app
        allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE]
      - { path_pattern: "/site/*", origin: site }
      - { path_pattern: "*", origin: app }
  - name: spa
    domains: [spa.test]
    access_log: json
    custom_error_responses: [ { error_code: 404, response_page_path: /index.html, response_code: 200 } ]
    behaviors:
      - { path_pattern: "*", origin: site }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:{origin}"
  credentials: [ { access_key_id: testkey, secret_access_key_file: origin.key } ]
"#;

pub(super) struct Setup {
    pub(super) hf: Homefront,
    pub(super) origin: TestOrigin,
    pub(super) client: reqwest::Client,
}

pub(super) async fn setup() -> Setup {
    let origin = TestOrigin::start().await;
    let hf = Homefront::start(&CONFIG.replace("{app}", &origin.port.to_string()));
    let client = hf.client(&["a.test", "b.test", "spa.test"]);
    Setup { hf, origin, client }
}

impl Setup {
    /// `kill -9`, then `homefront serve` again on the same directory and ports.
    pub(super) fn crash_and_restart(&mut self) {
        let args: Vec<String> = ["serve", "-c", "homefront.yaml"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        self.hf.crash();
        self.hf.restart(&args);
        self.hf.wait_port(self.hf.ports.https);
    }

    /// The cache's entry files whose names end with `suffix`, in every shard.
    pub(super) fn cache_files(&self, suffix: &str) -> Vec<std::path::PathBuf> {
        let cache = self.hf.dir.path().join("data/cache");
        let mut out = Vec::new();
        for shard in std::fs::read_dir(&cache).unwrap().flatten() {
            if shard.file_name() == "tmp" {
                continue;
            }
            for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
                if f.file_name().to_string_lossy().ends_with(suffix) {
                    out.push(f.path());
                }
            }
        }
        out
    }

    /// `n` GETs of `path` at once: their statuses and bodies.
    pub(super) async fn get_at_once(&self, path: &str, n: usize) -> Vec<(u16, String)> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (c, url) = (self.client.clone(), self.url(path));
                tokio::spawn(async move {
                    let r = c.get(url).send().await.unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.hf.https_base("a.test"))
    }

    pub(super) async fn get(&self, path: &str) -> (u16, String, String) {
        self.get_with(path, &[]).await
    }

    /// GET with headers; returns status, X-Cache result (`Hit`, `Miss`, ...) and body.
    pub(super) async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let mut rb = self.client.get(self.url(path));
        for (n, v) in headers {
            rb = rb.header(*n, *v);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let xc = r
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap().trim_end_matches(" from homefront").to_string())
            .unwrap_or_default();
        (status, xc, r.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn miss_then_hit_with_age_head_and_metrics() {
    let s = setup().await;
    s.origin
        .route("/a.txt", Reply::with(200, &[("cache-control", "max-age=600")], "hello"));
    assert_eq!(s.get("/a.txt").await, (200, "Miss".into(), "hello".into()));
    let r = s.client.get(s.url("/a.txt")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit from homefront");
    assert!(r.headers().contains_key("age"), "hits carry Age");
    assert_eq!(r.text().await.unwrap(), "hello");
    let r = s.client.head(s.url("/a.txt")).send().await.unwrap();
    assert_eq!(
        r.headers()["x-cache"],
        "Hit from homefront",
        "HEAD is served from the GET entry"
    );
    assert_eq!(r.headers()["content-length"], "5");
    assert_eq!(
        s.origin.count("/a.txt"),
        1,
        "one origin request for three viewer requests"
    );

    let hits = r#"homefront_requests_total{behavior="*",cache="Hit",distribution="main",status_class="2xx"} 2"#;
    let from_cache = r#"homefront_cache_bytes_total{behavior="*",distribution="main",source="cache"} 5"#;
    let m = s.hf.metrics_when(|m| m.contains(hits) && m.contains(from_cache)).await;
    assert!(m.contains(hits), "{m}");
    assert!(m.contains(from_cache), "{m}");
    assert!(m.contains(r#"homefront_cache_bytes_total{behavior="*",distribution="main",source="origin"} 5"#));
    assert!(m.contains(r#"homefront_cache_entries{tier="disk"} 1"#), "{m}");
    assert!(m.contains(r#"homefront_cache_entries{tier="memory"} 1"#));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_miss_over_http2_fills_the_cache_and_answers() {
    let s = setup().await;
    s.origin.route(
        "/h2.txt",
        Reply::with(200, &[("cache-control", "max-age=600")], "twelve bytes"),
    );
    // The origin is asked with GET (to fill the cache); the viewer's HTTP/2 HEAD must still
    // get a header-only answer, not a reset stream.
    let r = s.client.head(s.url("/h2.txt")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "Miss from homefront");
    assert_eq!(r.headers()["content-length"], "12");
    assert_eq!(s.get("/h2.txt").await, (200, "Hit".into(), "twelve bytes".into()));
    assert_eq!(s.origin.count("/h2.txt"), 1);
    // The same from the bucket store, several times over.
    let body = "x".repeat(897);
    s.hf.s3()
        .put_object()
        .bucket("site")
        .key("site/page.html")
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    for _ in 0..5 {
        let (ok, _, err) = invalidate_cli(&s, &["--distribution", "main", "/site/*"]);
        assert!(ok, "{err}");
        let r = s.client.head(s.url("/site/page.html")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "Miss from homefront");
        assert_eq!(r.headers()["content-length"], "897");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ttl_follows_cache_control_within_min_and_max() {
    let s = setup().await;
    // min_ttl 1h: even no-store, no-cache, private and max-age=0 are cached.
    for (i, cc) in ["no-store", "no-cache", "private", "max-age=0"].iter().enumerate() {
        let p = format!("/min/{i}");
        s.origin.route(&p, Reply::with(200, &[("cache-control", cc)], "x"));
        assert_eq!(s.get(&p).await.1, "Miss");
        assert_eq!(s.get(&p).await.1, "Hit", "{cc} is clamped up to min_ttl");
    }
    // Default behavior (min 0): those are not cached; s-maxage beats max-age; Expires counts.
    let past = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(60));
    let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
    let cases: [(&str, (&str, &str), bool); 7] = [
        ("/t/no-store", ("cache-control", "no-store"), false),
        ("/t/private", ("cache-control", "private, max-age=600"), false),
        ("/t/zero", ("cache-control", "max-age=0"), false),
        ("/t/smax", ("cache-control", "max-age=600, s-maxage=0"), false),
        ("/t/expired", ("expires", &past), false),
        ("/t/expires", ("expires", &future), true),
        ("/t/none", ("x-nothing", "1"), true),
    ];
    for (p, h, cached) in cases {
        s.origin.route(p, Reply::with(200, &[h], "x"));
        s.get(p).await;
        let second = s.get(p).await.1;
        assert_eq!(second == "Hit", cached, "{p}: {h:?}");
        assert_eq!(s.origin.count(p), if cached { 1 } else { 2 }, "{p}");
    }
    // max_ttl 1s caps a max-age of an hour: two seconds later the origin is asked again.
    s.origin
        .route("/max/a", Reply::with(200, &[("cache-control", "max-age=3600")], "x"));
    assert_eq!(s.get("/max/a").await.1, "Miss");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_ne!(s.get("/max/a").await.1, "Hit");
    assert_eq!(s.origin.count("/max/a"), 2);
    // A behavior with max_ttl 0 never stores.
    s.origin
        .route("/nocache/a", Reply::with(200, &[("cache-control", "max-age=600")], "x"));
    s.get("/nocache/a").await;
    assert_eq!(s.get("/nocache/a").await.1, "Miss");
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_key_policies_host_and_scheme() {
    let s = setup().await;
    for p in ["/q/a", "/qx/a", "/c/a", "/h/a", "/n/a"] {
        s.origin
            .route(p, Reply::with(200, &[("cache-control", "max-age=600")], p));
    }
    // Whitelisted query string: only `v` is in the key and reaches the origin.
    assert_eq!(s.get("/q/a?v=1&x=1").await.1, "Miss");
    assert_eq!(s.origin.last("/q/a").unwrap().target, "/q/a?v=1");
    assert_eq!(s.get("/q/a?x=2&v=1").await.1, "Hit");
    assert_eq!(s.get("/q/a?v=2").await.1, "Miss");
    // all_except: everything but utm.
    assert_eq!(s.get("/qx/a?p=1&utm=a").await.1, "Miss");
    assert_eq!(s.get("/qx/a?p=1&utm=b").await.1, "Hit");
    assert_eq!(s.get("/qx/a?p=2").await.1, "Miss");
    // No query policy: the query is neither keyed nor forwarded.
    assert_eq!(s.get("/n/a?x=1").await.1, "Miss");
    assert_eq!(s.origin.last("/n/a").unwrap().target, "/n/a");
    assert_eq!(s.get("/n/a?x=2").await.1, "Hit");
    // Cookies: only `lang`, and only it is forwarded.
    assert_eq!(s.get_with("/c/a", &[("cookie", "lang=fr; session=1")]).await.1, "Miss");
    assert_eq!(s.origin.last("/c/a").unwrap().header_map()["cookie"], "lang=fr");
    assert_eq!(s.get_with("/c/a", &[("cookie", "session=2; lang=fr")]).await.1, "Hit");
    assert_eq!(s.get_with("/c/a", &[("cookie", "lang=en")]).await.1, "Miss");
    // Headers.
    assert_eq!(s.get_with("/h/a", &[("x-variant", "a")]).await.1, "Miss");
    assert_eq!(s.get_with("/h/a", &[("x-variant", "a")]).await.1, "Hit");
    assert_eq!(s.get_with("/h/a", &[("x-variant", "b")]).await.1, "Miss");
    // Host and scheme are always in the key.
    let other_host = s
        .client
        .get(format!("{}/n/a", s.hf.https_base("b.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(other_host.headers()["x-cache"], "Miss from homefront");
    let plain = s
        .client
        .get(format!("{}/n/a", s.hf.http_base("a.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.headers()["x-cache"], "Miss from homefront");
    assert_eq!(s.origin.count("/n/a"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_request_policy_forwards_without_keying_and_injects_origin() {
    let s = setup().await;
    s.origin
        .route("/or/a", Reply::with(200, &[("cache-control", "max-age=600")], "x"));
    let with_cookie = [("cookie", "session=abc; tracking=1")];
    assert_eq!(s.get_with("/or/a?v=1&page=2", &with_cookie).await.1, "Miss");
    let last = s.origin.last("/or/a").unwrap();
    let (uri, headers) = (last.target.clone(), last.header_map());
    assert_eq!(uri, "/or/a?v=1&page=2", "forwarded without being keyed");
    assert_eq!(headers["cookie"], "session=abc");
    assert_eq!(
        headers["origin"], "https://cdn.example.com",
        "injected when the viewer sent none"
    );
    assert_eq!(
        s.get_with("/or/a?v=1&page=3", &[("cookie", "session=xyz")]).await.1,
        "Hit"
    );
    assert_eq!(s.get("/or/a?v=2").await.1, "Miss", "v is keyed");
    s.get_with("/or/a?v=3", &[("origin", "https://app.example.com")]).await;
    assert_eq!(
        s.origin.last("/or/a").unwrap().header_map()["origin"],
        "https://app.example.com",
        "the viewer's wins"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vary_keeps_variants_apart_and_vary_star_is_not_stored() {
    let s = setup().await;
    s.origin.route(
        "/v",
        Reply::with(200, &[("cache-control", "max-age=600"), ("vary", "Origin")], "").echo_header("origin"),
    );
    let a = [("origin", "https://a.example")];
    let b = [("origin", "https://b.example")];
    assert_eq!(
        s.get_with("/v", &a).await,
        (200, "Miss".into(), "https://a.example".into())
    );
    assert_eq!(
        s.get_with("/v", &b).await,
        (200, "Miss".into(), "https://b.example".into())
    );
    assert_eq!(
        s.get_with("/v", &a).await,
        (200, "Hit".into(), "https://a.example".into())
    );
    assert_eq!(
        s.get_with("/v", &b).await,
        (200, "Hit".into(), "https://b.example".into())
    );
    assert_eq!(s.get("/v").await, (200, "Miss".into(), "none".into()));
    assert_eq!(s.get("/v").await, (200, "Hit".into(), "none".into()));
    // Again, in turns: the hit path remembers a request it matched, never another's.
    for _ in 0..2 {
        assert_eq!(s.get_with("/v", &a).await.2, "https://a.example");
        assert_eq!(s.get("/v").await.2, "none");
        assert_eq!(s.get_with("/v", &b).await.2, "https://b.example");
    }
    assert_eq!(s.origin.count("/v"), 3);

    s.origin.route(
        "/star",
        Reply::with(200, &[("cache-control", "max-age=600"), ("vary", "*")], "x"),
    );
    s.get("/star").await;
    assert_eq!(s.get("/star").await.1, "Miss");
    assert_eq!(s.origin.count("/star"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_requests_and_revalidation() {
    let s = setup().await;
    let versioned = |cache_control: &str| {
        Reply::with(
            200,
            &[
                ("cache-control", cache_control),
                ("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT"),
            ],
            "body-v1",
        )
        .etag("\"v1\"")
    };
    // Fresh for ten minutes: conditional requests are answered from the cache.
    s.origin.route("/e", versioned("max-age=600"));
    assert_eq!(s.get("/e").await.1, "Miss");
    // A conditional hit: 304 from the cache, nothing reaches the origin.
    let r = s
        .client
        .get(s.url("/e"))
        .header("if-none-match", "\"v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["x-cache"], "Hit from homefront");
    let r = s
        .client
        .get(s.url("/e"))
        .header("if-modified-since", "Mon, 02 Nov 2026 10:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = s
        .client
        .get(s.url("/e"))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.origin.count("/e"), 1);
    // Stale (fresh for a second, and more than that has passed): revalidated with the
    // stored ETag; the origin's 304 makes a RefreshHit. The 304 gives it ten minutes more.
    s.origin.route("/r", versioned("max-age=1"));
    assert_eq!(s.get("/r").await.1, "Miss");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    s.origin.route("/r", versioned("max-age=600"));
    assert_eq!(s.get("/r").await, (200, "RefreshHit".into(), "body-v1".into()));
    assert_eq!(s.origin.count("/r"), 2);
    assert_eq!(s.origin.last("/r").unwrap().header_map()["if-none-match"], "\"v1\"");
    assert_eq!(
        s.origin.last("/r").unwrap().header_map()["if-modified-since"],
        "Mon, 02 Nov 2026 10:00:00 GMT"
    );
    assert_eq!(s.get("/r").await.1, "Hit", "the refreshed entry is fresh again");
    assert_eq!(s.origin.count("/r"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_keeps_the_site_up_when_the_origin_is_down() {
    let s = setup().await;
    s.origin.route(
        "/s",
        Reply::with(200, &[("cache-control", "max-age=1, stale-if-error=600")], "still here"),
    );
    s.origin
        .route("/gone", Reply::with(200, &[("cache-control", "max-age=1")], "x"));
    assert_eq!(s.get("/s").await.1, "Miss");
    assert_eq!(s.get("/gone").await.1, "Miss");
    s.origin.stop().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, xc, body) = s.get("/s").await;
    assert_eq!((status, body.as_str()), (200, "still here"), "served stale");
    assert_eq!(xc, "Hit");
    // Without stale-if-error, an expired entry is not served when the origin fails.
    assert_eq!(s.get("/gone").await.0, 502);
    let stale = r#"homefront_cache_stale_served_total{behavior="*",distribution="main",reason="origin_error"} 1"#;
    let m = s.hf.metrics_when(|m| m.contains(stale)).await;
    assert!(m.contains(stale), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_outlasts_an_origin_answering_5xx() {
    let s = setup().await;
    s.origin.route(
        "/s",
        Reply::with(200, &[("cache-control", "max-age=1, stale-if-error=600")], "still here"),
    );
    assert_eq!(s.get("/s").await.1, "Miss");
    s.origin.route("/s", Reply::with(503, &[], "busy"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Every request, not only the first: an uncacheable 503 must not make the next request
    // skip the stale entry.
    for _ in 0..3 {
        let (status, _, body) = s.get("/s").await;
        assert_eq!((status, body.as_str()), (200, "still here"), "served stale");
    }
    assert_eq!(s.origin.count("/s"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_collapse_into_one_origin_request() {
    let s = setup().await;
    s.origin.route(
        "/slow",
        Reply::with(200, &[("cache-control", "max-age=600")], "one").delay(Duration::from_millis(500)),
    );
    for answer in s.get_at_once("/slow", 100).await {
        assert_eq!(answer, (200, "one".to_string()));
    }
    assert_eq!(s.origin.count("/slow"), 1, "100 concurrent viewers, one origin request");
}

/// Once a URL's answer could not be cached, its next requests go to the origin at once
/// instead of queueing behind one another for the cache lock; when the origin allows caching
/// again, the answer is stored.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_for_an_uncacheable_url_do_not_wait_for_each_other() {
    let s = setup().await;
    s.origin
        .route("/live", Reply::with(200, &[("cache-control", "no-store")], "now"));
    assert_eq!(s.get("/live").await, (200, "Miss".to_string(), "now".to_string()));
    // The origin holds every answer until all eight requests are at it at once. With the
    // lock, one would have gone alone and seven waited behind it (for the lock's 30 s), so
    // the wait here ends before the lock would give up, and within the client's timeout.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    s.origin.route(
        "/live",
        Reply::with(200, &[("cache-control", "no-store")], "now").hold(gate.clone()),
    );
    let all_at_origin = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while s.origin.in_flight() < 8 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gate.close();
    };
    let (answers, ()) = tokio::join!(s.get_at_once("/live", 8), all_at_origin);
    for answer in answers {
        assert_eq!(answer, (200, "now".to_string()));
    }
    assert_eq!(s.origin.max_in_flight(), 8, "all eight at the origin at once");
    s.origin
        .route("/live", Reply::with(200, &[("cache-control", "max-age=600")], "later"));
    assert_eq!(s.get("/live").await, (200, "Miss".to_string(), "later".to_string()));
    assert_eq!(s.get("/live").await, (200, "Hit".to_string(), "later".to_string()));
    assert_eq!(s.origin.count("/live"), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_cached_briefly_authorization_and_cookies_are_respected() {
    let s = setup().await;
    // 404 without freshness: cached for the error caching minimum TTL (10 s).
    s.get("/missing").await;
    assert_eq!(s.get("/missing").await.1, "Hit");
    assert_eq!(s.origin.count("/missing"), 1);
    // 503 has error_caching_min_ttl 0: every request goes to the origin.
    s.origin.route("/busy", Reply::with(503, &[], "busy"));
    s.get("/busy").await;
    assert_eq!(s.get("/busy").await.1, "Miss");
    assert_eq!(s.origin.count("/busy"), 2);
    // Authorization: stored only when the response allows a shared cache to.
    s.origin
        .route("/auth", Reply::with(200, &[("cache-control", "max-age=600")], "mine"));
    s.origin.route(
        "/pub",
        Reply::with(200, &[("cache-control", "public, max-age=600")], "ours"),
    );
    let auth = [("authorization", "Bearer x")];
    s.get_with("/auth", &auth).await;
    assert_eq!(s.get_with("/auth", &auth).await.1, "Miss");
    s.get_with("/pub", &auth).await;
    assert_eq!(s.get_with("/pub", &auth).await.1, "Hit");
    // Set-Cookie goes to the viewer who caused the miss, never to the next one.
    s.origin.route(
        "/ck",
        Reply::with(
            200,
            &[("cache-control", "max-age=600"), ("set-cookie", "sid=secret")],
            "x",
        ),
    );
    let r = s.client.get(s.url("/ck")).send().await.unwrap();
    assert_eq!(r.headers()["set-cookie"], "sid=secret");
    let r = s.client.get(s.url("/ck")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit from homefront");
    assert!(!r.headers().contains_key("set-cookie"));
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_error_pages_replace_origin_errors() {
    let s = setup().await;
    s.origin.route(
        "/errors/404.html",
        Reply::with(
            200,
            &[("content-type", "text/html"), ("cache-control", "max-age=600")],
            "<h1>not here</h1>",
        ),
    );
    s.origin.route(
        "/spa.html",
        Reply::with(200, &[("content-type", "text/html")], "<app/>"),
    );
    s.origin.route("/forbidden", Reply::with(403, &[], "AccessDenied"));
    s.origin.route("/empty-403", Reply::with(403, &[], ""));
    s.origin.route(
        "/boom",
        Reply::with(500, &[("content-type", "text/plain")], "origin exploded"),
    );

    let r = s.client.get(s.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.headers()["x-cache"], "Miss from homefront");
    assert_eq!(r.text().await.unwrap(), "<h1>not here</h1>");
    // The error is cached (10 s); the page still replaces it on the hit.
    assert_eq!(s.get("/nowhere").await, (404, "Hit".into(), "<h1>not here</h1>".into()));
    let r = s.client.head(s.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-length"], "17");
    assert_eq!(s.origin.count("/nowhere"), 1);
    // A 403 becomes the single-page app's index with 200, the usual SPA setup.
    assert_eq!(s.get("/forbidden").await, (200, "Miss".into(), "<app/>".into()));
    assert_eq!(s.get("/forbidden").await, (200, "Hit".into(), "<app/>".into()));
    // An error with an empty body has nothing to replace: it goes out as it is.
    assert_eq!(s.get("/empty-403").await, (403, "Miss".into(), String::new()));
    assert_eq!(s.get("/empty-403").await, (403, "Hit".into(), String::new()));
    // A page that is itself missing leaves the origin's error as it was.
    assert_eq!(s.get("/boom").await, (500, "Miss".into(), "origin exploded".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn unsafe_methods_invalidate_the_url() {
    let s = setup().await;
    s.origin
        .route("/w/doc", Reply::with(200, &[("cache-control", "max-age=600")], "doc"));
    s.get("/w/doc").await;
    assert_eq!(s.get("/w/doc").await.1, "Hit");
    let r = s.client.put(s.url("/w/doc")).body("new").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.get("/w/doc").await.1, "Miss");
}

pub(super) fn invalidate_cli(s: &Setup, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_homefront"))
        .arg("invalidate")
        .arg("-c")
        .arg(s.hf.dir.path().join("homefront.yaml"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn invalidation_with_wildcards_from_the_cli_and_the_api() {
    let s = setup().await;
    for p in ["/img/a.jpg", "/img/b.jpg", "/h/x.jpg", "/css/site.css", "/a.jpg"] {
        s.origin
            .route(p, Reply::with(200, &[("cache-control", "max-age=600")], p));
    }
    for p in ["/img/a.jpg", "/img/b.jpg", "/css/site.css", "/a.jpg"] {
        s.get(p).await;
    }
    // Two Vary-like variants of one path (header in the key): both go.
    s.get_with("/h/x.jpg", &[("x-variant", "1")]).await;
    s.get_with("/h/x.jpg", &[("x-variant", "2")]).await;

    let (ok, out, err) = invalidate_cli(&s, &["--distribution", "main", "/img/*", "/h/x.jpg"]);
    assert!(ok, "{err}");
    assert!(out.contains("invalidated 4 cached entries"), "{out}");
    assert_eq!(s.get("/img/a.jpg").await.1, "Miss");
    assert_eq!(s.get_with("/h/x.jpg", &[("x-variant", "2")]).await.1, "Miss");
    assert_eq!(s.get("/css/site.css").await.1, "Hit", "outside the wildcard");
    assert_eq!(s.get("/a.jpg").await.1, "Hit");

    let (ok, _, err) = invalidate_cli(&s, &["--distribution", "main", "/a*b"]);
    assert!(!ok);
    assert!(err.contains("only at the end"), "{err}");
    let (ok, _, err) = invalidate_cli(&s, &["--distribution", "nope", "/*"]);
    assert!(!ok);
    assert!(err.contains("no distribution named 'nope'"), "{err}");

    // The API itself: a token is required.
    let body = r#"{"distribution":"main","paths":["/*"]}"#;
    let anon = raw_http(
        s.hf.ports.admin,
        &format!(
            "POST /invalidations HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(anon.starts_with("HTTP/1.1 401"), "{anon}");
    let token = std::fs::read_to_string(s.hf.dir.path().join("data/secrets/admin.token")).unwrap();
    let ok = raw_http(
        s.hf.ports.admin,
        &format!(
            "POST /invalidations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            token.trim(),
            body.len()
        ),
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"removed\":4"), "{ok}");
    assert!(ok.contains("\"status\":\"Completed\""));
    assert_eq!(s.get("/css/site.css").await.1, "Miss");
}
