//! CORS through the cache, in a real browser (headless Chromium): a page from another origin
//! shows an image through the edge as a plain `<img>`, then `fetch()`es the same URL with
//! CORS and reads it as a blob. Each step runs in a fresh browser profile, so the only cache
//! that could replay the `<img>` copy (without CORS headers) to the `fetch()` is the edge's.
//! `./dev.sh test` installs Chromium (Debian package `chromium`) when it is missing.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::*;

/// A small image (SVG, so that the test needs no image encoder).
const IMAGE: &str =
    r#"<svg xmlns="http://www.w3.org/2000/svg" width="3" height="2"><rect width="3" height="2" fill="red"/></svg>"#;

fn config(page_port: u16) -> String {
    format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
origins:
  site: {{ bucket: site }}
distributions:
  - name: cdn
    domains: [cdn.test]
    behaviors:
      - {{ path_pattern: "*", origin: site }}
buckets:
  site:
    cors:
      - {{ allowed_origins: ["http://app.test:{page_port}"], allowed_methods: [GET, HEAD], allowed_headers: ["*"] }}
origin_server:
  listen: "127.0.0.1:{{origin}}"
  credentials: [ {{ access_key_id: testkey, secret_access_key_file: origin.key }} ]
"#
    )
}

/// Serves `/img.html` (the image only) and `/fetch.html` (a CORS fetch of it) for any host.
async fn start_pages(image_url: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = Arc::new(image_url);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let url = url.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let url = url.clone();
                    async move {
                        let html = match req.uri().path() {
                            "/img.html" => format!(
                                r#"<html><head><title>loading</title></head><body>
<img src="{url}" onload="document.title='img-ok:'+this.naturalWidth" onerror="document.title='img-error'">
</body></html>"#
                            ),
                            _ => format!(
                                r#"<html><head><title>loading</title></head><body><script>
fetch("{url}", {{ mode: "cors" }})
  .then(r => r.blob())
  .then(b => {{ document.title = "fetch-ok:" + b.size + ":" + b.type; }})
  .catch(e => {{ document.title = "fetch-blocked:" + e.message; }});
</script></body></html>"#
                            ),
                        };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "text/html")
                                .body(http_body_util::Full::new(bytes::Bytes::from(html)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name.to_string();
        }
    }
    panic!("headless Chromium is needed (Debian package chromium; ./dev.sh test installs it)");
}

/// Loads `url` in a fresh headless Chromium profile and returns the page's final title.
fn browse(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--ignore-certificate-errors",
            "--host-resolver-rules=MAP *.test 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    dom.split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("no title; stderr: {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_img_then_a_cors_fetch_of_the_same_url_works_through_the_cache() {
    // The page names the edge's port and the edge's CORS rule the page's: ports first.
    let hf_ports = Ports::new();
    let image_url = format!("https://cdn.test:{}/img/cat.svg", hf_ports.https);
    let page_port = start_pages(image_url).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), SECRET_KEY).unwrap();
    std::fs::write(
        dir.path().join("homefront.yaml"),
        hf_ports.fill(&config(page_port), dir.path()),
    )
    .unwrap();
    let args: Vec<String> = ["serve", "-c", "homefront.yaml"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut hf = Homefront::spawn_args(dir, &args, hf_ports);
    hf.wait_port(hf.ports.https);
    hf.wait_port(hf.ports.origin);
    hf.s3()
        .put_object()
        .bucket("site")
        .key("img/cat.svg")
        .content_type("image/svg+xml")
        .body(IMAGE.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();

    let page = |host: &str, path: &str| format!("http://{host}:{page_port}{path}");
    // 1. A plain <img>: fetched without an Origin, cached without CORS headers.
    assert_eq!(browse(&page("app.test", "/img.html")), "img-ok:3");
    // 2. The allowed page fetch()es the same URL with CORS and reads the blob.
    let ok = format!("fetch-ok:{}:image/svg+xml", IMAGE.len());
    assert_eq!(browse(&page("app.test", "/fetch.html")), ok);
    // 3. Again: now from the edge's cache, still with the CORS headers.
    assert_eq!(browse(&page("app.test", "/fetch.html")), ok);
    // 4. A page from an origin the bucket does not allow is blocked by the browser.
    let blocked = browse(&page("evil.test", "/fetch.html"));
    assert!(blocked.starts_with("fetch-blocked:"), "{blocked}");

    let m = hf
        .metrics_when(|m| {
            m.lines()
                .any(|l| l.starts_with("homefront_requests_total{") && l.contains("cache=\"Hit\""))
        })
        .await;
    let hits = m
        .lines()
        .find(|l| l.starts_with("homefront_requests_total{") && l.contains("cache=\"Hit\""))
        .unwrap_or_else(|| panic!("no cache hits counted:\n{m}"));
    assert!(hits.ends_with(" 1") || hits.ends_with(" 2"), "{hits}");
}
