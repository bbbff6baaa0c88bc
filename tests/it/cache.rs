//! The edge cache, driven as viewers drive it: real homefront, a scripted HTTP origin that
//! counts what reaches it, the bucket store, restarts, damaged files and the admin CLI.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// One scripted answer of the test origin.
#[derive(Clone, Default)]
struct Route {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// Answer `304` when If-None-Match carries this ETag.
    etag: Option<String>,
    /// The body is this request header's value instead of `body`.
    echo_header: Option<String>,
    delay: Duration,
    /// Held until the test closes this semaphore (after the delay).
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

fn route(status: u16, headers: &[(&str, &str)], body: &str) -> Route {
    Route {
        status,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.to_string(),
        ..Route::default()
    }
}

#[derive(Default)]
struct OriginState {
    routes: HashMap<String, Route>,
    /// Requests per path (without query).
    hits: HashMap<String, usize>,
    /// Last request per path: URI and headers.
    last: HashMap<String, (String, HashMap<String, String>)>,
    down: bool,
    /// Requests being answered now, and the most there were at once.
    in_flight: usize,
    max_in_flight: usize,
}

/// An HTTP origin whose answers the test scripts per path, counting every request.
struct Origin {
    port: u16,
    state: Arc<Mutex<OriginState>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Origin {
    async fn start() -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(OriginState::default()));
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let st = st.clone();
                        async move { answer(&st, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Origin { port, state, accept }
    }

    fn set(&self, path: &str, r: Route) {
        self.state.lock().unwrap().routes.insert(path.to_string(), r);
    }

    fn hits(&self, path: &str) -> usize {
        self.state.lock().unwrap().hits.get(path).copied().unwrap_or(0)
    }

    fn in_flight(&self) -> usize {
        self.state.lock().unwrap().in_flight
    }

    fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    fn last(&self, path: &str) -> (String, HashMap<String, String>) {
        self.state.lock().unwrap().last.get(path).cloned().unwrap_or_default()
    }

    /// Stops accepting and breaks every open connection: the origin is down.
    fn stop(&self) {
        self.state.lock().unwrap().down = true;
        self.accept.abort();
    }
}

async fn answer(
    st: &Mutex<OriginState>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::io::Error> {
    let path = req.uri().path().to_string();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let r = {
        let mut s = st.lock().unwrap();
        if s.down {
            return Err(std::io::Error::other("origin is down"));
        }
        *s.hits.entry(path.clone()).or_default() += 1;
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        s.last.insert(path.clone(), (req.uri().to_string(), headers.clone()));
        s.routes.get(&path).cloned()
    };
    let r = r.unwrap_or_else(|| route(404, &[], "no such route"));
    tokio::time::sleep(r.delay).await;
    if let Some(gate) = &r.gate {
        // Closed: every waiter goes on.
        let _ = gate.acquire().await;
    }
    st.lock().unwrap().in_flight -= 1;
    let not_modified = r.etag.is_some() && headers.get("if-none-match") == r.etag.as_ref();
    let mut b = hyper::Response::builder().status(if not_modified { 304 } else { r.status });
    for (n, v) in &r.headers {
        b = b.header(n, v);
    }
    if let Some(e) = &r.etag {
        b = b.header("etag", e);
    }
    let body = match (&r.echo_header, not_modified) {
        (_, true) => String::new(),
        (Some(h), _) => headers.get(h).cloned().unwrap_or_else(|| "none".into()),
        (None, _) => r.body.clone(),
    };
    Ok(b.body(http_body_util::Full::new(bytes::Bytes::from(body))).unwrap())
}

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

struct Setup {
    hf: Homefront,
    origin: Origin,
    client: reqwest::Client,
}

async fn setup() -> Setup {
    let origin = Origin::start().await;
    let hf = Homefront::start(&CONFIG.replace("{app}", &origin.port.to_string()));
    let client = hf.client(&["a.test", "b.test", "spa.test"]);
    Setup { hf, origin, client }
}

impl Setup {
    /// `kill -9`, then `homefront serve` again on the same directory and ports.
    fn crash_and_restart(&mut self) {
        let args: Vec<String> = ["serve", "-c", "homefront.yaml"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        self.hf.crash();
        self.hf.restart(&args);
        self.hf.wait_port(self.hf.ports.https);
    }

    /// The cache's entry files whose names end with `suffix`, in every shard.
    fn cache_files(&self, suffix: &str) -> Vec<std::path::PathBuf> {
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
    async fn get_at_once(&self, path: &str, n: usize) -> Vec<(u16, String)> {
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.hf.https_base("a.test"))
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        self.get_with(path, &[]).await
    }

    /// GET with headers; returns status, X-Cache result (`Hit`, `Miss`, ...) and body.
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
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
        .set("/a.txt", route(200, &[("cache-control", "max-age=600")], "hello"));
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
        s.origin.hits("/a.txt"),
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
    s.origin.set(
        "/h2.txt",
        route(200, &[("cache-control", "max-age=600")], "twelve bytes"),
    );
    // The origin is asked with GET (to fill the cache); the viewer's HTTP/2 HEAD must still
    // get a header-only answer, not a reset stream.
    let r = s.client.head(s.url("/h2.txt")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "Miss from homefront");
    assert_eq!(r.headers()["content-length"], "12");
    assert_eq!(s.get("/h2.txt").await, (200, "Hit".into(), "twelve bytes".into()));
    assert_eq!(s.origin.hits("/h2.txt"), 1);
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
        s.origin.set(&p, route(200, &[("cache-control", cc)], "x"));
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
        s.origin.set(p, route(200, &[h], "x"));
        s.get(p).await;
        let second = s.get(p).await.1;
        assert_eq!(second == "Hit", cached, "{p}: {h:?}");
        assert_eq!(s.origin.hits(p), if cached { 1 } else { 2 }, "{p}");
    }
    // max_ttl 1s caps a max-age of an hour: two seconds later the origin is asked again.
    s.origin
        .set("/max/a", route(200, &[("cache-control", "max-age=3600")], "x"));
    assert_eq!(s.get("/max/a").await.1, "Miss");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_ne!(s.get("/max/a").await.1, "Hit");
    assert_eq!(s.origin.hits("/max/a"), 2);
    // A behavior with max_ttl 0 never stores.
    s.origin
        .set("/nocache/a", route(200, &[("cache-control", "max-age=600")], "x"));
    s.get("/nocache/a").await;
    assert_eq!(s.get("/nocache/a").await.1, "Miss");
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_key_policies_host_and_scheme() {
    let s = setup().await;
    for p in ["/q/a", "/qx/a", "/c/a", "/h/a", "/n/a"] {
        s.origin.set(p, route(200, &[("cache-control", "max-age=600")], p));
    }
    // Whitelisted query string: only `v` is in the key and reaches the origin.
    assert_eq!(s.get("/q/a?v=1&x=1").await.1, "Miss");
    assert_eq!(s.origin.last("/q/a").0, "/q/a?v=1");
    assert_eq!(s.get("/q/a?x=2&v=1").await.1, "Hit");
    assert_eq!(s.get("/q/a?v=2").await.1, "Miss");
    // all_except: everything but utm.
    assert_eq!(s.get("/qx/a?p=1&utm=a").await.1, "Miss");
    assert_eq!(s.get("/qx/a?p=1&utm=b").await.1, "Hit");
    assert_eq!(s.get("/qx/a?p=2").await.1, "Miss");
    // No query policy: the query is neither keyed nor forwarded.
    assert_eq!(s.get("/n/a?x=1").await.1, "Miss");
    assert_eq!(s.origin.last("/n/a").0, "/n/a");
    assert_eq!(s.get("/n/a?x=2").await.1, "Hit");
    // Cookies: only `lang`, and only it is forwarded.
    assert_eq!(s.get_with("/c/a", &[("cookie", "lang=fr; session=1")]).await.1, "Miss");
    assert_eq!(s.origin.last("/c/a").1["cookie"], "lang=fr");
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
    assert_eq!(s.origin.hits("/n/a"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_request_policy_forwards_without_keying_and_injects_origin() {
    let s = setup().await;
    s.origin
        .set("/or/a", route(200, &[("cache-control", "max-age=600")], "x"));
    let with_cookie = [("cookie", "session=abc; tracking=1")];
    assert_eq!(s.get_with("/or/a?v=1&page=2", &with_cookie).await.1, "Miss");
    let (uri, headers) = s.origin.last("/or/a");
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
        s.origin.last("/or/a").1["origin"],
        "https://app.example.com",
        "the viewer's wins"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vary_keeps_variants_apart_and_vary_star_is_not_stored() {
    let s = setup().await;
    s.origin.set(
        "/v",
        Route {
            echo_header: Some("origin".into()),
            ..route(200, &[("cache-control", "max-age=600"), ("vary", "Origin")], "")
        },
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
    assert_eq!(s.origin.hits("/v"), 3);

    s.origin.set(
        "/star",
        route(200, &[("cache-control", "max-age=600"), ("vary", "*")], "x"),
    );
    s.get("/star").await;
    assert_eq!(s.get("/star").await.1, "Miss");
    assert_eq!(s.origin.hits("/star"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_requests_and_revalidation() {
    let s = setup().await;
    let versioned = |cache_control: &str| Route {
        etag: Some("\"v1\"".into()),
        ..route(
            200,
            &[
                ("cache-control", cache_control),
                ("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT"),
            ],
            "body-v1",
        )
    };
    // Fresh for ten minutes: conditional requests are answered from the cache.
    s.origin.set("/e", versioned("max-age=600"));
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
    assert_eq!(s.origin.hits("/e"), 1);
    // Stale (fresh for a second, and more than that has passed): revalidated with the
    // stored ETag; the origin's 304 makes a RefreshHit. The 304 gives it ten minutes more.
    s.origin.set("/r", versioned("max-age=1"));
    assert_eq!(s.get("/r").await.1, "Miss");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    s.origin.set("/r", versioned("max-age=600"));
    assert_eq!(s.get("/r").await, (200, "RefreshHit".into(), "body-v1".into()));
    assert_eq!(s.origin.hits("/r"), 2);
    assert_eq!(s.origin.last("/r").1["if-none-match"], "\"v1\"");
    assert_eq!(
        s.origin.last("/r").1["if-modified-since"],
        "Mon, 02 Nov 2026 10:00:00 GMT"
    );
    assert_eq!(s.get("/r").await.1, "Hit", "the refreshed entry is fresh again");
    assert_eq!(s.origin.hits("/r"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_keeps_the_site_up_when_the_origin_is_down() {
    let s = setup().await;
    s.origin.set(
        "/s",
        route(200, &[("cache-control", "max-age=1, stale-if-error=600")], "still here"),
    );
    s.origin
        .set("/gone", route(200, &[("cache-control", "max-age=1")], "x"));
    assert_eq!(s.get("/s").await.1, "Miss");
    assert_eq!(s.get("/gone").await.1, "Miss");
    s.origin.stop();
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
    s.origin.set(
        "/s",
        route(200, &[("cache-control", "max-age=1, stale-if-error=600")], "still here"),
    );
    assert_eq!(s.get("/s").await.1, "Miss");
    s.origin.set("/s", route(503, &[], "busy"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Every request, not only the first: an uncacheable 503 must not make the next request
    // skip the stale entry.
    for _ in 0..3 {
        let (status, _, body) = s.get("/s").await;
        assert_eq!((status, body.as_str()), (200, "still here"), "served stale");
    }
    assert_eq!(s.origin.hits("/s"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_collapse_into_one_origin_request() {
    let s = setup().await;
    s.origin.set(
        "/slow",
        Route {
            delay: Duration::from_millis(500),
            ..route(200, &[("cache-control", "max-age=600")], "one")
        },
    );
    for answer in s.get_at_once("/slow", 100).await {
        assert_eq!(answer, (200, "one".to_string()));
    }
    assert_eq!(s.origin.hits("/slow"), 1, "100 concurrent viewers, one origin request");
}

/// Once a URL's answer could not be cached, its next requests go to the origin at once
/// instead of queueing behind one another for the cache lock; when the origin allows caching
/// again, the answer is stored.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_for_an_uncacheable_url_do_not_wait_for_each_other() {
    let s = setup().await;
    s.origin
        .set("/live", route(200, &[("cache-control", "no-store")], "now"));
    assert_eq!(s.get("/live").await, (200, "Miss".to_string(), "now".to_string()));
    // The origin holds every answer until all eight requests are at it at once. With the
    // lock, one would have gone alone and seven waited behind it (for the lock's 30 s), so
    // the wait here ends before the lock would give up, and within the client's timeout.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    s.origin.set(
        "/live",
        Route {
            gate: Some(gate.clone()),
            ..route(200, &[("cache-control", "no-store")], "now")
        },
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
        .set("/live", route(200, &[("cache-control", "max-age=600")], "later"));
    assert_eq!(s.get("/live").await, (200, "Miss".to_string(), "later".to_string()));
    assert_eq!(s.get("/live").await, (200, "Hit".to_string(), "later".to_string()));
    assert_eq!(s.origin.hits("/live"), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_cached_briefly_authorization_and_cookies_are_respected() {
    let s = setup().await;
    // 404 without freshness: cached for the error caching minimum TTL (10 s).
    s.get("/missing").await;
    assert_eq!(s.get("/missing").await.1, "Hit");
    assert_eq!(s.origin.hits("/missing"), 1);
    // 503 has error_caching_min_ttl 0: every request goes to the origin.
    s.origin.set("/busy", route(503, &[], "busy"));
    s.get("/busy").await;
    assert_eq!(s.get("/busy").await.1, "Miss");
    assert_eq!(s.origin.hits("/busy"), 2);
    // Authorization: stored only when the response allows a shared cache to.
    s.origin
        .set("/auth", route(200, &[("cache-control", "max-age=600")], "mine"));
    s.origin
        .set("/pub", route(200, &[("cache-control", "public, max-age=600")], "ours"));
    let auth = [("authorization", "Bearer x")];
    s.get_with("/auth", &auth).await;
    assert_eq!(s.get_with("/auth", &auth).await.1, "Miss");
    s.get_with("/pub", &auth).await;
    assert_eq!(s.get_with("/pub", &auth).await.1, "Hit");
    // Set-Cookie goes to the viewer who caused the miss, never to the next one.
    s.origin.set(
        "/ck",
        route(
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
    s.origin.set(
        "/errors/404.html",
        route(
            200,
            &[("content-type", "text/html"), ("cache-control", "max-age=600")],
            "<h1>not here</h1>",
        ),
    );
    s.origin
        .set("/spa.html", route(200, &[("content-type", "text/html")], "<app/>"));
    s.origin.set("/forbidden", route(403, &[], "AccessDenied"));
    s.origin.set("/empty-403", route(403, &[], ""));
    s.origin.set(
        "/boom",
        route(500, &[("content-type", "text/plain")], "origin exploded"),
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
    assert_eq!(s.origin.hits("/nowhere"), 1);
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
        .set("/w/doc", route(200, &[("cache-control", "max-age=600")], "doc"));
    s.get("/w/doc").await;
    assert_eq!(s.get("/w/doc").await.1, "Hit");
    let r = s.client.put(s.url("/w/doc")).body("new").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.get("/w/doc").await.1, "Miss");
}

fn invalidate_cli(s: &Setup, args: &[&str]) -> (bool, String, String) {
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
        s.origin.set(p, route(200, &[("cache-control", "max-age=600")], p));
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

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_hits_and_a_damaged_file_is_never_served() {
    let mut s = setup().await;
    // Larger than what is read whole (1 MiB): streamed from its file.
    let big: String = (0..1_500_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    s.origin
        .set("/small", route(200, &[("cache-control", "max-age=600")], "small body"));
    s.origin
        .set("/big", route(200, &[("cache-control", "max-age=600")], &big));
    s.get("/small").await;
    s.get("/big").await;
    s.crash_and_restart();
    assert_eq!(s.get("/small").await, (200, "Hit".into(), "small body".into()));
    let (status, xc, body) = s.get("/big").await;
    assert_eq!((status, xc.as_str()), (200, "Hit"));
    assert!(body == big, "the large body came back intact");
    assert_eq!(s.origin.hits("/small"), 1);

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
    s.origin.set(
        "/logged.txt",
        route(200, &[("cache-control", "max-age=600")], "twelve bytes"),
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
    s.origin.set(
        "/same.txt",
        Route {
            etag: Some("\"v1\"".into()),
            ..route(
                200,
                &[("cache-control", "max-age=600"), ("x-from", "origin")],
                "same body",
            )
        },
    );
    s.origin
        .set("/other.txt", route(200, &[("cache-control", "no-store")], "other"));
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
    assert_eq!(s.origin.hits("/same.txt"), 2);
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
    assert_eq!(s.origin.hits("/same.txt"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hit_path_serves_http2_streams_too() {
    let s = setup().await;
    s.origin
        .set("/h2.txt", route(200, &[("cache-control", "max-age=600")], "over h2"));
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
    assert_eq!(s.origin.hits("/h2.txt"), 1);
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
            .set(&format!("/small/{i}"), route(200, &cached, &format!("small {i}")));
        s.origin
            .set(&format!("/large/{i}"), route(200, &cached, &format!("{i}{large}")));
        s.origin
            .set(&format!("/nocache/{i}"), route(200, &[], &format!("fresh {i}")));
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
    assert_eq!(s.origin.hits("/nocache/3"), 3);
    assert_eq!(s.origin.hits("/large/3"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_hit_goes_out_with_sendfile_on_plain_http_and_as_before_on_tls() {
    let mut s = setup().await;
    let port = s.hf.ports.http;
    let body: String = (0..3 * 1024 * 1024 + 17)
        .map(|i| (b'a' + (i % 23) as u8) as char)
        .collect();
    s.origin
        .set("/big.bin", route(200, &[("cache-control", "max-age=600")], &body));
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
    assert_eq!(s.origin.hits("/big.bin"), 2);

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
    assert_eq!(s.origin.hits("/big.bin"), 2);
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
        .set("/mid.bin", route(200, &[("cache-control", "max-age=600")], &v1));
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
        .set("/mid.bin", route(200, &[("cache-control", "max-age=600")], &v2));
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
    assert_eq!(s.origin.hits("/mid.bin"), 3);
}
