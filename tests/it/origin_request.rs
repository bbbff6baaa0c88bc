//! Origin request policies: which viewer headers reach the origin of a caching behavior
//! without entering the key (default CORS-S3Origin, a list, the all-viewer preset), and
//! that a behavior with caching off forwards everything.

use crate::common::*;

const CONFIG: &str = r#"
listen: { https: "127.0.0.1:{https}" }
origins:
  app: { http: "127.0.0.1:{app}" }
distributions:
  - domains: [site.test]
    behaviors:
      - { path_pattern: "/listed/*", origin: app, origin_request: { headers: [X-Debug], query_strings: [v] } }
      - { path_pattern: "/viewer/*", origin: app, origin_request: { preset: all-viewer } }
      - { path_pattern: "/keyed/*", origin: app, cache: { headers: [Accept-Language] } }
      - { path_pattern: "/nocache/*", origin: app, cache: { max_ttl: 0 } }
      - { path_pattern: "*", origin: app }
"#;

async fn seen(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let r = client
        .get(url)
        .header("origin", "https://app.test")
        .header("accept-language", "fr")
        .header("x-debug", "1")
        .header("access-control-request-method", "GET")
        .header("cookie", "session=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_headers_reach_the_origin_only_as_the_policy_says() {
    let app = start_echo_origin().await;
    let hf = Homefront::start(&CONFIG.replace("{app}", &app.to_string()));
    let client = hf.client(&["site.test"]);
    let base = hf.https_base("site.test");
    let has = |echo: &serde_json::Value, name: &str| !echo["headers"][name].is_null();

    // Default (CORS-S3Origin): Origin and the preflight header go; the rest stays.
    let e = seen(&client, &format!("{base}/default/a?v=1")).await;
    assert!(has(&e, "origin") && has(&e, "access-control-request-method"), "{e}");
    assert!(
        !has(&e, "accept-language") && !has(&e, "x-debug") && !has(&e, "cookie"),
        "{e}"
    );
    assert_eq!(e["uri"], "/default/a", "no query string in the key, none forwarded");

    // A list: exactly those (and the query string named), Origin no longer.
    let e = seen(&client, &format!("{base}/listed/a?v=1&w=2")).await;
    assert!(
        has(&e, "x-debug") && !has(&e, "origin") && !has(&e, "accept-language"),
        "{e}"
    );
    assert_eq!(e["uri"], "/listed/a?v=1");

    // all-viewer: headers, cookies and query strings, none of them in the key.
    let e = seen(&client, &format!("{base}/viewer/a?w=2")).await;
    assert!(
        has(&e, "x-debug") && has(&e, "accept-language") && has(&e, "origin"),
        "{e}"
    );
    assert_eq!(e["headers"]["cookie"], "session=abc");
    assert_eq!(e["uri"], "/viewer/a?w=2");

    // A keyed header is forwarded (the origin may vary on it: the key does too).
    let e = seen(&client, &format!("{base}/keyed/a")).await;
    assert!(has(&e, "accept-language") && !has(&e, "x-debug"), "{e}");

    // Caching off: everything, as CloudFront's AllViewer with CachingDisabled.
    let e = seen(&client, &format!("{base}/nocache/a?w=2")).await;
    assert!(
        has(&e, "x-debug") && has(&e, "accept-language") && has(&e, "cookie"),
        "{e}"
    );
}

#[test]
fn an_unknown_preset_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homefront.yaml");
    std::fs::write(
        &path,
        CONFIG
            .replace("{app}", "8080")
            .replace("{https}", "8443")
            .replace("preset: all-viewer", "preset: everything"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_homefront"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("homefront.yaml:9") && err.contains("origin_request.preset") && err.contains("everything"),
        "{err}"
    );
}
