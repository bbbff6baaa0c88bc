//! Bucket CORS as S3 evaluates it: rules from YAML and from PutBucketCors (the official
//! SDK), preflights and actual requests at the bucket store, and through the edge's cache.

use crate::common::*;

const CONFIG: &str = r#"
listen: { http: "127.0.0.1:{http}", https: "127.0.0.1:{https}" }
admin: { listen: "127.0.0.1:{admin}" }
origins:
  site: { bucket: site }
distributions:
  - name: api
    domains: [api.test]
    behaviors:
      - path_pattern: "*"
        origin: site
        allowed_methods: [GET, HEAD, OPTIONS]
        response_headers:
          cors:
            allow_origins: ["https://*.example.com"]
            allow_methods: [GET, HEAD]
            allow_headers: [content-type]
            expose_headers: [ETag]
            max_age: 10m
          security:
            hsts: { max_age: 1y, include_subdomains: true }
            content_type_options: true
            frame_options: DENY
            referrer_policy: strict-origin-when-cross-origin
            csp: "default-src 'self'"
          add: { X-Served-By: homefront }
          remove: [last-modified]
  - domains: ["*"]
    behaviors:
      - { path_pattern: "*", origin: site }
buckets:
  site:
    cors:
      - allowed_origins: ["https://admin.example.com"]
        allowed_methods: [GET, PUT, HEAD]
        allowed_headers: [content-type, "x-amz-*"]
        expose_headers: [ETag]
        max_age_seconds: 3000
      - { allowed_origins: ["https://*.example.com"], allowed_methods: [GET] }
  other: {}
origin_server:
  listen: "127.0.0.1:{origin}"
  credentials: [ { access_key_id: testkey, secret_access_key_file: origin.key } ]
"#;

fn header(resp: &str, name: &str) -> Option<String> {
    resp.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn preflight(hf: &Homefront, path: &str, origin: &str, method: &str, headers: Option<&str>) -> String {
    let extra = headers
        .map(|h| format!("Access-Control-Request-Headers: {h}\r\n"))
        .unwrap_or_default();
    raw_http(
        hf.ports.origin,
        &format!(
            "OPTIONS {path} HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: {method}\r\n{extra}Connection: close\r\n\r\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn preflights_and_actual_requests_follow_the_bucket_rules() {
    let hf = Homefront::start(CONFIG);
    let ok = preflight(
        &hf,
        "/site/uploads/a.png",
        "https://admin.example.com",
        "PUT",
        Some("Content-Type, X-Amz-Meta-Owner"),
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(
        header(&ok, "access-control-allow-origin").as_deref(),
        Some("https://admin.example.com")
    );
    assert_eq!(
        header(&ok, "access-control-allow-methods").as_deref(),
        Some("GET, PUT, HEAD")
    );
    assert_eq!(
        header(&ok, "access-control-allow-headers").as_deref(),
        Some("content-type, x-amz-meta-owner")
    );
    assert_eq!(header(&ok, "access-control-max-age").as_deref(), Some("3000"));
    assert!(header(&ok, "vary").unwrap().contains("Origin"));

    let denied = preflight(&hf, "/site/a.png", "https://evil.test", "PUT", None);
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(denied.contains("<Code>AccessForbidden</Code>"));
    assert!(header(&denied, "access-control-allow-origin").is_none());
    // The second rule: any subdomain, GET only.
    let sub = preflight(&hf, "/site/a.png", "https://cdn.example.com", "GET", None);
    assert!(sub.starts_with("HTTP/1.1 200"), "{sub}");
    let sub_put = preflight(&hf, "/site/a.png", "https://cdn.example.com", "PUT", None);
    assert!(sub_put.starts_with("HTTP/1.1 403"));
    let none = preflight(&hf, "/other/a.png", "https://admin.example.com", "GET", None);
    assert!(none.contains("CORS is not enabled for this bucket"), "{none}");

    // An actual presigned PUT from the allowed origin carries the CORS headers.
    let s3 = hf.s3();
    let url = s3
        .put_object()
        .bucket("site")
        .key("uploads/a.png")
        .content_type("image/png")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .put(url.uri())
        .header("content-type", "image/png")
        .header("origin", "https://admin.example.com")
        .body("png")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://admin.example.com");
    assert_eq!(r.headers()["access-control-expose-headers"], "ETag");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_puts_gets_and_deletes_cors_rules() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let rule = CorsRule::builder()
        .allowed_origins("https://app.test")
        .allowed_methods("GET")
        .allowed_headers("*")
        .max_age_seconds(60)
        .build()
        .unwrap();
    s3.put_bucket_cors()
        .bucket("other")
        .cors_configuration(CorsConfiguration::builder().cors_rules(rule).build().unwrap())
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_cors().bucket("other").send().await.unwrap();
    let rules = got.cors_rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].allowed_origins(), ["https://app.test"]);
    assert_eq!(rules[0].max_age_seconds(), Some(60));
    let ok = preflight(&hf, "/other/x", "https://app.test", "GET", Some("x-anything"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    let bad = CorsRule::builder()
        .allowed_origins("*")
        .allowed_methods("PATCH")
        .build()
        .unwrap();
    let e = s3
        .put_bucket_cors()
        .bucket("other")
        .cors_configuration(CorsConfiguration::builder().cors_rules(bad).build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("PATCH"), "{e:?}");

    s3.delete_bucket_cors().bucket("other").send().await.unwrap();
    let e = s3.get_bucket_cors().bucket("other").send().await.unwrap_err();
    assert!(format!("{e:?}").contains("NoSuchCORSConfiguration"), "{e:?}");
    let none = preflight(&hf, "/other/x", "https://app.test", "GET", None);
    assert!(none.starts_with("HTTP/1.1 403"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_request_never_poisons_a_cors_request_through_the_cache() {
    let hf = Homefront::start(CONFIG);
    hf.s3()
        .put_object()
        .bucket("site")
        .key("img/cat.png")
        .body(b"meow".to_vec().into())
        .send()
        .await
        .unwrap();
    let client = hf.client(&["cdn.test"]);
    let get = |origin: Option<&'static str>| {
        let client = client.clone();
        let url = format!("{}/img/cat.png", hf.https_base("cdn.test"));
        async move {
            let mut rb = client.get(url);
            if let Some(o) = origin {
                rb = rb.header("origin", o);
            }
            let r = rb.send().await.unwrap();
            let acao = r
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_string());
            let x_cache = r.headers()["x-cache"].to_str().unwrap().to_string();
            // Read the body, as the browser does: the exchange completes before the next one.
            assert_eq!(r.bytes().await.unwrap().as_ref(), b"meow");
            (x_cache, acao)
        }
    };
    // An <img> first: cached without CORS headers.
    assert_eq!(get(None).await, ("Miss from homefront".into(), None));
    assert_eq!(get(None).await, ("Hit from homefront".into(), None));
    // Then fetch() from the admin page: never the plain copy.
    let admin = Some("https://admin.example.com");
    assert_eq!(
        get(admin).await,
        ("Miss from homefront".into(), Some("https://admin.example.com".into()))
    );
    assert_eq!(
        get(admin).await,
        ("Hit from homefront".into(), Some("https://admin.example.com".into()))
    );
    // Another allowed origin gets its own answer, a disallowed one none.
    assert_eq!(
        get(Some("https://cdn.example.com")).await.1.as_deref(),
        Some("https://cdn.example.com")
    );
    assert_eq!(get(Some("https://evil.test")).await.1, None);
    assert_eq!(get(None).await, ("Hit from homefront".into(), None));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_headers_policy_answers_cors_at_the_edge_and_adds_security_headers() {
    let hf = Homefront::start(CONFIG);
    hf.s3()
        .put_object()
        .bucket("site")
        .key("data.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .unwrap();
    let client = hf.client(&["api.test", "plain.test"]);
    let url = format!("{}/data.json", hf.https_base("api.test"));
    // Without the policy the origin's header is there.
    let plain = client
        .get(format!("{}/data.json", hf.https_base("plain.test")))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().contains_key("last-modified"), "{:?}", plain.headers());
    assert!(!plain.headers().contains_key("x-frame-options"));
    let pre = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "Content-Type")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    assert_eq!(pre.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(pre.headers()["access-control-allow-methods"], "GET, HEAD");
    assert_eq!(pre.headers()["access-control-allow-headers"], "content-type");
    assert_eq!(pre.headers()["access-control-max-age"], "600");
    let denied = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.test")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert!(!denied.headers().contains_key("access-control-allow-origin"));

    // The bucket's own rule would answer https://admin.example.com only; the edge policy
    // overrides it with its own decision, on misses and hits alike.
    for expect in ["Miss from homefront", "Hit from homefront"] {
        let r = client
            .get(&url)
            .header("origin", "https://cdn.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-cache"], expect);
        assert_eq!(r.headers()["access-control-allow-origin"], "https://cdn.example.com");
        assert_eq!(r.headers()["access-control-expose-headers"], "ETag");
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["referrer-policy"], "strict-origin-when-cross-origin");
        assert_eq!(r.headers()["content-security-policy"], "default-src 'self'");
        assert_eq!(r.headers()["x-served-by"], "homefront");
        assert!(!r.headers().contains_key("last-modified"));
        // The whole response, before the next request.
        r.bytes().await.unwrap();
    }
    let r = client
        .get(&url)
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}
