//! CORS through the cache, in a real browser (headless Chromium): a page from another origin
//! shows an image through the edge as a plain `<img>`, then `fetch()`es the same URL with
//! CORS and reads it as a blob. Each step runs in a fresh browser profile, so the only cache
//! that could replay the `<img>` copy (without CORS headers) to the `fetch()` is the edge's.
//! `./dev.sh test` installs Chromium (Debian package `chromium`) when it is missing.

use std::process::Command;
use std::sync::Arc;

use crate::common::*;
use md5::Digest as _;

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

/// An HTTP/1.1 server on an ephemeral loopback port answering every request with the HTML
/// that `page(target)` makes (the path with its query).
async fn serve_pages<F, Fut>(page: F) -> TestOrigin
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = String> + Send + 'static,
{
    let origin = TestOrigin::start().await;
    origin.fallback_async(move |r| {
        let html = page(r.target);
        async move { Reply::with(200, &[("content-type", "text/html")], html.await) }
    });
    origin
}

/// Serves `/img.html` (the image only) and `/fetch.html` (a CORS fetch of it) for any host.
async fn start_pages(image_url: String) -> TestOrigin {
    let url = Arc::new(image_url);
    serve_pages(move |path| {
        let url = url.clone();
        async move {
            match path.as_str() {
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
            }
        }
    })
    .await
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
    let pages = start_pages(image_url).await;
    let page_port = pages.port;
    let hf = Homefront::start_on(
        tempfile::tempdir().unwrap(),
        hf_ports,
        &config(page_port),
        &[("origin.key", SECRET_KEY.as_bytes())],
        &[],
    );
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

/// The backoffice upload: the app server asks the admin API for a presigned PUT URL (as a
/// Lambda would on AWS) and puts it in the page; the browser PUTs the file straight to the
/// bucket store, cross-origin, with the bucket's CORS rule allowing it; the file is then
/// served through the edge.
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_uploads_straight_to_the_bucket_store_with_a_presigned_put() {
    let hf_ports = Ports::new();
    let dir = tempfile::tempdir().unwrap();
    let admin = hf_ports.admin;
    let token_file = dir.path().join("data/secrets/admin.token");
    let pages = serve_pages(move |path| {
        let token_file = token_file.clone();
        async move {
            if path != "/upload.html" {
                return "<html><head><title>404</title></head></html>".to_string();
            }
            // The app server's side: a presigned PUT for this upload, from the admin API.
            let token = std::fs::read_to_string(&token_file).unwrap();
            let request = serde_json::json!({
                "method": "PUT", "bucket": "site", "key": "uploads/note.txt",
                "content_type": "text/plain", "expires": "5m"
            });
            let text = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{admin}/presign"))
                .bearer_auth(token.trim())
                .body(request.to_string())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
            let url = answer["url"].as_str().unwrap().to_string();
            format!(
                r#"<html><head><title>loading</title></head><body><script>
const file = new Blob(["written by the browser"], {{ type: "text/plain" }});
fetch({url:?}, {{ method: "PUT", body: file, headers: {{ "Content-Type": "text/plain" }} }})
  .then(r => {{ document.title = "put:" + r.status + ":" + (r.headers.get("ETag") || "no-etag"); }})
  .catch(e => {{ document.title = "put-blocked:" + e.message; }});
</script></body></html>"#
            )
        }
    })
    .await;
    let page_port = pages.port;
    let config = config(page_port)
        .replace(
            "allowed_methods: [GET, HEAD]",
            "allowed_methods: [GET, HEAD, PUT], expose_headers: [ETag]",
        )
        .replace("origins:\n", "admin: { listen: \"127.0.0.1:{admin}\" }\norigins:\n");
    let hf = Homefront::start_on(dir, hf_ports, &config, &[("origin.key", SECRET_KEY.as_bytes())], &[]);

    let title = browse(&format!("http://app.test:{page_port}/upload.html"));
    let etag = hex::encode(md5::Md5::digest(b"written by the browser"));
    assert_eq!(title, format!("put:200:\"{etag}\""), "{}", hf.stderr());
    let client = hf.client(&["cdn.test"]);
    let r = client
        .get(format!("{}/uploads/note.txt", hf.https_base("cdn.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "written by the browser");

    // A page from an origin the bucket does not allow cannot upload.
    let blocked = browse(&format!("http://evil.test:{page_port}/upload.html"));
    assert!(blocked.starts_with("put-blocked:"), "{blocked}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_uploads_with_a_real_form_and_a_presigned_post() {
    let hf_ports = Ports::new();
    let dir = tempfile::tempdir().unwrap();
    let admin = hf_ports.admin;
    let token_file = dir.path().join("data/secrets/admin.token");
    let pages = serve_pages(move |path| {
        let token_file = token_file.clone();
        async move {
            if let Some(query) = path.strip_prefix("/done.html?") {
                // Where the bucket store sends the browser after the upload (303).
                return format!(
                    "<html><head><title>done:{}</title></head></html>",
                    query.replace(['<', '>', '&'], " ")
                );
            }
            if !path.starts_with("/form.html") {
                return "<html><head><title>404</title></head></html>".to_string();
            }
            let page_host = path.split("page=").nth(1).unwrap_or("").to_string();
            // The app server's side: a signed form for uploads under photos/, from the admin API.
            let token = std::fs::read_to_string(&token_file).unwrap();
            let request = serde_json::json!({
                "method": "POST", "bucket": "site", "key": "photos/${filename}",
                "content_type": "text/plain", "max_size": 1000, "expires": "5m",
                "success_action_redirect": format!("http://{page_host}/done.html"),
            });
            let text = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{admin}/presign"))
                .bearer_auth(token.trim())
                .body(request.to_string())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
            let url = answer["url"].as_str().unwrap().to_string();
            let mut inputs = String::new();
            for (name, value) in answer["fields"].as_object().unwrap() {
                let value = value.as_str().unwrap().replace('"', "&quot;");
                inputs.push_str(&format!(r#"<input type="hidden" name="{name}" value="{value}">"#));
            }
            // A plain <form>: the file input is filled as a user's pick would fill it, then
            // the form is submitted (no fetch, no CORS: a navigation).
            format!(
                r#"<html><head><title>loading</title></head><body>
<form id="f" method="post" action="{url}" enctype="multipart/form-data">{inputs}<input type="file" name="file"></form>
<script>
const input = document.querySelector('input[type=file]');
const picked = new DataTransfer();
picked.items.add(new File(["a note from a form"], "note 1.txt", {{ type: "text/plain" }}));
input.files = picked.files;
document.getElementById("f").submit();
</script></body></html>"#
            )
        }
    })
    .await;
    let page_port = pages.port;
    let config = config(page_port).replace("origins:\n", "admin: { listen: \"127.0.0.1:{admin}\" }\norigins:\n");
    let hf = Homefront::start_on(dir, hf_ports, &config, &[("origin.key", SECRET_KEY.as_bytes())], &[]);

    let host = format!("app.test:{page_port}");
    let title = browse(&format!("http://{host}/form.html?page={host}"));
    let etag = hex::encode(md5::Md5::digest(b"a note from a form"));
    assert_eq!(
        title,
        format!("done:bucket=site key=photos%2Fnote+1.txt etag=%22{etag}%22"),
        "{}",
        hf.stderr()
    );
    // The file is in the bucket under its own name, with the form's Content-Type.
    let client = hf.client(&["cdn.test"]);
    let r = client
        .get(format!("{}/photos/note%201.txt", hf.https_base("cdn.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "a note from a form");
}
