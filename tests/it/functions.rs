//! CloudFront Functions through the real edge: AWS's own sample functions
//! (`tests/fixtures/cloudfront-functions/`, unchanged), on viewer requests and responses,
//! misses and hits, plus the error and limit cases, `check-config` and `test-function`.

use std::process::Command;

use crate::common::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudfront-functions");

const JWT_SECRET: &str = "LzdWGpAToQ1DqYuzHxE6YOqi7G3X2yvNBot9mCXfx5k";

fn config(origin: u16) -> String {
    format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}", https: "127.0.0.1:{{https}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
origins:
  app: {{ http: "127.0.0.1:{origin}" }}
  other: {{ http: "127.0.0.1:{origin}", origin_path: /other }}
functions:
  index: {{ file: {FIXTURES}/url-rewrite-single-page-apps.js }}
  index1: {{ file: {FIXTURES}/docs2023-add-index.js, runtime: cloudfront-js-1.0 }}
  redirect: {{ file: {FIXTURES}/redirect-based-on-country.js }}
  redirect1: {{ file: {FIXTURES}/docs2023-redirect-url.js, runtime: cloudfront-js-1.0 }}
  security: {{ file: {FIXTURES}/add-security-headers.js }}
  client-ip: {{ file: {FIXTURES}/add-true-client-ip-header.js }}
  origin-header: {{ file: {FIXTURES}/add-origin-header.js }}
  cors: {{ file: {FIXTURES}/add-cors-header.js }}
  normalize: {{ file: {FIXTURES}/normalize-query-string-parameters.js }}
  kvs: {{ file: {FIXTURES}/kvs-key-value-pairs.js, kvs: {{dir}}/store.json }}
  jwt: {{ file: {FIXTURES}/kvs-jwt-verify.js, kvs: {{dir}}/secrets.json }}
  jwt1: {{ file: {FIXTURES}/verify-jwt.js, runtime: cloudfront-js-1.0 }}
  throws: {{ file: {{dir}}/throws.js }}
  spins: {{ file: {{dir}}/spins.js, compute_budget: 20ms }}
  invalid: {{ file: {{dir}}/invalid.js }}
  chooser: {{ file: {{dir}}/chooser.js }}
  tagger: {{ file: {{dir}}/tagger.js }}
  replacer: {{ file: {{dir}}/replacer.js }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "/spa/*", origin: app, function_associations: {{ viewer_request: index }} }}
      - {{ path_pattern: "/spa1/*", origin: app, function_associations: {{ viewer_request: index1 }} }}
      - {{ path_pattern: "/geo/*", origin: app, function_associations: {{ viewer_request: redirect }} }}
      - {{ path_pattern: "/geo1/*", origin: app, function_associations: {{ viewer_request: redirect1 }} }}
      - {{ path_pattern: "/secure/*", origin: app, function_associations: {{ viewer_response: security }} }}
      - {{ path_pattern: "/ip/*", origin: app, cache: {{ max_ttl: 0 }}, function_associations: {{ viewer_request: client-ip }} }}
      - path_pattern: "/cors/*"
        origin: app
        cache: {{ max_ttl: 0 }}
        function_associations: {{ viewer_request: origin-header, viewer_response: cors }}
      - path_pattern: "/qs/*"
        origin: app
        cache: {{ query_strings: all }}
        function_associations: {{ viewer_request: normalize }}
      - {{ path_pattern: "/greeting/*", origin: app, function_associations: {{ viewer_request: kvs }} }}
      - {{ path_pattern: "/private/*", origin: app, cache: {{ query_strings: all }}, function_associations: {{ viewer_request: jwt }} }}
      - {{ path_pattern: "/private1/*", origin: app, cache: {{ query_strings: all }}, function_associations: {{ viewer_request: jwt1 }} }}
      - {{ path_pattern: "/throws/*", origin: app, function_associations: {{ viewer_request: throws }} }}
      - {{ path_pattern: "/spins/*", origin: app, function_associations: {{ viewer_request: spins }} }}
      - {{ path_pattern: "/invalid/*", origin: app, function_associations: {{ viewer_response: invalid }} }}
      - {{ path_pattern: "/choose/*", origin: app, cache: {{ max_ttl: 0 }}, function_associations: {{ viewer_request: chooser }} }}
      - {{ path_pattern: "/replaced/*", origin: app, function_associations: {{ viewer_response: replacer }} }}
      - {{ path_pattern: "/tag/*", origin: app, cache: {{ max_ttl: 0 }}, function_associations: {{ viewer_request: tagger }} }}
      - {{ path_pattern: "*", origin: app }}
"#
    )
}

const THROWS: &str = "function handler(event) {\n  throw new Error('no entry for ' + event.request.uri);\n}\n";
const SPINS: &str = "function handler(event) { while (true) {} }\n";
const INVALID: &str =
    "function handler(event) { event.response.headers['via'] = {value: 'me'}; return event.response; }\n";
const TAGGER: &str = "function handler(event) { event.request.headers['x-request-id'] = {value: event.context.requestId}; return event.request; }\n";
const REPLACER: &str = "function handler(event) {\n  var r = event.response;\n  r.body = {data: 'cmVwbGFjZWQ=', encoding: 'base64'};\n  r.headers['content-type'] = {value: 'text/plain'};\n  return r;\n}\n";
const CHOOSER: &str = "import cf from 'cloudfront';\nfunction handler(event) { cf.selectRequestOriginById('other'); return event.request; }\n";

fn jwt(secret: &str, exp: u64) -> String {
    let b64 = |b: &[u8]| {
        openssl::base64::encode_block(b)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    };
    let head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64(format!(r#"{{"sub":"viewer","exp":{exp}}}"#).as_bytes());
    let key = openssl::pkey::PKey::hmac(secret.as_bytes()).unwrap();
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    signer.update(format!("{head}.{body}").as_bytes()).unwrap();
    format!("{head}.{body}.{}", b64(&signer.sign_to_vec().unwrap()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn start() -> (Homefront, TestOrigin) {
    let origin = TestOrigin::start().await;
    origin.fallback(|_| Reply::echo().header("cache-control", "max-age=60"));
    let store = br#"{"data":[{"key":"greeting","value":"hello"}]}"#;
    let secrets = format!(r#"{{"data":[{{"key":"jwt.secret","value":"{JWT_SECRET}"}}]}}"#);
    let hf = Homefront::start_in(
        tempfile::tempdir().unwrap(),
        &config(origin.port),
        &[
            ("store.json", store),
            ("secrets.json", secrets.as_bytes()),
            ("throws.js", THROWS.as_bytes()),
            ("spins.js", SPINS.as_bytes()),
            ("invalid.js", INVALID.as_bytes()),
            ("chooser.js", CHOOSER.as_bytes()),
            ("tagger.js", TAGGER.as_bytes()),
            ("replacer.js", REPLACER.as_bytes()),
        ],
    );
    (hf, origin)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("site.test", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn aws_sample_functions_run_unchanged_through_the_edge() {
    let (hf, origin) = start().await;
    let base = hf.http_base("site.test");
    let c = client();
    let get = |path: &str| c.get(format!("{base}{path}")).header("host", "site.test").send();

    // Directory index rewrite, both runtimes: the origin is asked for index.html.
    for (prefix, _) in [("/spa", "2.0"), ("/spa1", "1.0")] {
        let r = get(&format!("{prefix}/docs/")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            origin.requests(&format!("{prefix}/docs/index.html")).len(),
            1,
            "{prefix}"
        );
        get(&format!("{prefix}/about")).await.unwrap();
        assert_eq!(
            origin.requests(&format!("{prefix}/about/index.html")).len(),
            1,
            "{prefix}"
        );
        get(&format!("{prefix}/app.js")).await.unwrap();
        assert_eq!(origin.requests(&format!("{prefix}/app.js")).len(), 1, "{prefix}");
        // The rewritten request is cached under what the function made of it: a hit.
        let r = get(&format!("{prefix}/docs/")).await.unwrap();
        assert_eq!(r.headers()["x-cache"], "Hit from homefront");
        assert_eq!(
            origin.requests(&format!("{prefix}/docs/index.html")).len(),
            1,
            "{prefix}"
        );
    }

    // A redirect generated at the edge, never reaching the origin; other viewers go on.
    for prefix in ["/geo", "/geo1"] {
        let r = c
            .get(format!("{base}{prefix}/page"))
            .header("host", "site.test")
            .header("cloudfront-viewer-country", "DE")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{prefix}");
        assert_eq!(r.headers()["location"], "https://site.test/de/index.html");
        assert_eq!(r.headers()["x-cache"], "FunctionGeneratedResponse from homefront");
        assert!(origin.requests(&format!("{prefix}/page")).is_empty());
        let r = get(&format!("{prefix}/page")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(origin.requests(&format!("{prefix}/page")).len(), 1);
    }

    // Security headers on a viewer response: on the miss and on the hit.
    for want in ["Miss from homefront", "Hit from homefront"] {
        let r = get("/secure/page").await.unwrap();
        assert_eq!(r.headers()["x-cache"], want);
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=63072000; includeSubdomains; preload"
        );
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["referrer-policy"], "same-origin");
        assert!(r.text().await.unwrap().contains(r#""uri":"/secure/page""#));
    }

    // True client IP: the origin gets the viewer's address.
    get("/ip/x").await.unwrap();
    let seen = origin.requests("/ip/x");
    assert_eq!(seen[0].header("true-client-ip"), Some("127.0.0.1"));

    // CORS: the request gets an Origin, the response the header that allows it.
    let r = get("/cors/x").await.unwrap();
    assert_eq!(
        origin.requests("/cors/x")[0].header("origin"),
        Some("https://site.test")
    );
    assert_eq!(r.headers()["access-control-allow-origin"], "https://site.test");

    // Query-string normalization: two orders, one cache entry, one origin request.
    let r = get("/qs/x?b=2&a=1").await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss from homefront");
    let r = get("/qs/x?a=1&b=2").await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit from homefront");
    let seen = origin.requests("/qs/x");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/qs/x?a=1&b=2");

    // A KeyValueStore lookup: the first path segment is the key.
    get("/greeting/x").await.unwrap();
    assert_eq!(origin.requests("/hello/x").len(), 1);
    // A key the store does not have leaves the path as it is.
    get("/nothing/x").await.unwrap();
    assert_eq!(origin.requests("/nothing/x").len(), 1);

    // The JWT check, with its secret from the store (2.0) or in the code (1.0).
    for prefix in ["/private", "/private1"] {
        let r = get(&format!("{prefix}/doc.pdf")).await.unwrap();
        assert_eq!(r.status(), 401, "{prefix}: no token");
        let expired = jwt(JWT_SECRET, now() - 60);
        let r = get(&format!("{prefix}/doc.pdf?jwt={expired}")).await.unwrap();
        assert_eq!(r.status(), 401, "{prefix}: expired");
        let forged = jwt("not the secret", now() + 3600);
        let r = get(&format!("{prefix}/doc.pdf?jwt={forged}")).await.unwrap();
        assert_eq!(r.status(), 401, "{prefix}: forged");
        assert!(origin.requests(&format!("{prefix}/doc.pdf")).is_empty());
        let valid = jwt(JWT_SECRET, now() + 3600);
        let r = get(&format!("{prefix}/doc.pdf?jwt={valid}")).await.unwrap();
        assert_eq!(r.status(), 200, "{prefix}: valid");
        // The token is taken off before the origin (and the cache key) sees the request.
        let seen = origin.requests(&format!("{prefix}/doc.pdf"));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].target, format!("{prefix}/doc.pdf"));
    }

    // Over HTTP/2 too: the changed request reaches the origin, then the hit path serves it.
    let h2 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("site.test", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();
    for want in ["Miss from homefront", "Hit from homefront"] {
        let r = h2
            .get(format!("{}/spa/h2/", hf.https_base("site.test")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.headers()["x-cache"], want);
    }
    assert_eq!(origin.requests("/spa/h2/index.html").len(), 1);

    // Each request's own id, though the function's result for the same event is reused
    // when it reads nothing that changes between requests.
    for _ in 0..2 {
        get("/tag/x").await.unwrap();
    }
    let seen = origin.requests("/tag/x");
    let ids: Vec<&str> = seen.iter().map(|r| r.header("x-request-id").unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(Some(ids[1]), seen[1].header("x-amz-cf-id"));

    // A viewer-response function's body replaces the origin's, on the miss and the hit;
    // a HEAD gets the length it would have.
    for want in ["Miss from homefront", "Hit from homefront"] {
        let r = get("/replaced/page").await.unwrap();
        assert_eq!(r.headers()["x-cache"], want);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert_eq!(r.headers()["content-length"], "8");
        assert_eq!(r.text().await.unwrap(), "replaced");
    }
    let r = c
        .head(format!("{base}/replaced/page"))
        .header("host", "site.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], "8");
    assert_eq!(r.bytes().await.unwrap().len(), 0);

    // An origin the function chose among the configured ones.
    get("/choose/x").await.unwrap();
    assert_eq!(origin.requests("/other/choose/x").len(), 1);

    let metrics = hf
        .metrics_when(|m| {
            m.contains(r#"homefront_function_invocations_total{event="viewer-request",function="index"}"#)
        })
        .await;
    assert!(
        metrics.contains(r#"homefront_function_invocations_total{event="viewer-response",function="security"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_function_that_throws_spins_or_returns_something_invalid_is_answered_as_cloudfront_does() {
    let (hf, origin) = start().await;
    let base = hf.http_base("site.test");
    let c = client();
    let get = |path: &str| c.get(format!("{base}{path}")).header("host", "site.test").send();

    let r = get("/throws/a").await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-cache"], "Error from homefront");
    assert!(r.text().await.unwrap().contains("<Code>FunctionExecutionError</Code>"));
    let r = get("/spins/a").await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("<Code>FunctionThrottledError</Code>"));
    // Neither reached the origin.
    assert!(origin.requests("/throws/a").is_empty() && origin.requests("/spins/a").is_empty());
    // A viewer-response function that changes a read-only header: 502, the origin's body
    // replaced, on the miss and on the hit.
    for _ in 0..2 {
        let r = get("/invalid/a").await.unwrap();
        assert_eq!(r.status(), 502);
        assert!(r.text().await.unwrap().contains("<Code>FunctionValidationError</Code>"));
    }
    // The edge keeps serving; each failure is counted and logged with the function's name.
    assert_eq!(get("/plain").await.unwrap().status(), 200);
    let metrics = hf.metrics_when(|m| m.contains("FunctionValidationError")).await;
    for want in [
        r#"homefront_function_errors_total{event="viewer-request",function="throws",kind="FunctionExecutionError"} 1"#,
        r#"homefront_function_errors_total{event="viewer-request",function="spins",kind="FunctionThrottledError"} 1"#,
        r#"homefront_function_errors_total{event="viewer-response",function="invalid",kind="FunctionValidationError"} 2"#,
    ] {
        assert!(metrics.contains(want), "{want}\n{metrics}");
    }
    let log = hf.log_when(|l| l.contains("no entry for /throws/a")).await;
    assert!(
        log.contains("function=\"throws\"") || log.contains("function=throws"),
        "{log}"
    );
}

#[test]
fn check_config_names_the_scripts_line_and_test_function_prints_the_result() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.js"),
        "function handler(event) {\n  return event.request\n}}\n",
    )
    .unwrap();
    let cfg = dir.path().join("homefront.yaml");
    let yaml = format!(
        r#"
origins: {{ app: {{ http: "127.0.0.1:9" }} }}
functions:
  bad: {{ file: bad.js }}
  index: {{ file: {FIXTURES}/url-rewrite-single-page-apps.js }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "*", origin: app, function_associations: {{ viewer_request: bad }} }}
"#
    );
    std::fs::write(&cfg, &yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(["check-config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.js:3"), "{err}");
    assert!(err.contains("function 'bad'"), "{err}");

    // test-function on AWS's own test event.
    std::fs::write(
        &cfg,
        yaml.replace("viewer_request: bad", "viewer_request: index")
            .replace("  bad: { file: bad.js }\n", ""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(["test-function", "index", "--event"])
        .arg(format!(
            "{FIXTURES}/url-rewrite-single-page-apps.test-objects.no-file-name.json"
        ))
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let test = &result["TestResult"];
    assert_eq!(test["FunctionSummary"]["Name"], "index");
    assert_eq!(
        test["FunctionSummary"]["FunctionConfig"]["Runtime"],
        "cloudfront-js-2.0"
    );
    assert_eq!(test["FunctionErrorMessage"], "");
    let utilization: u32 = test["ComputeUtilization"].as_str().unwrap().parse().unwrap();
    assert!(utilization <= 100);
    let output: serde_json::Value = serde_json::from_str(test["FunctionOutput"].as_str().unwrap()).unwrap();
    assert_eq!(output["request"]["uri"], "/index.html");
    // The test event's lower-case "multivalue" is read as CloudFront reads it.
    assert_eq!(
        output["request"]["querystring"]["arg"]["multiValue"][1]["value"],
        "val2"
    );
}

#[tokio::test]
async fn a_reload_brings_the_new_code_live_and_refuses_code_that_does_not_load() {
    let origin = TestOrigin::start().await;
    origin.fallback(|_| Reply::echo());
    let version = |v: &str| {
        format!("function handler(event) {{ event.request.headers['x-version'] = {{value: '{v}'}}; return event.request; }}\n")
    };
    let yaml = format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}" }}
origins: {{ app: {{ http: "127.0.0.1:{}" }} }}
functions:
  versioned: {{ file: versioned.js }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "*", origin: app, cache: {{ max_ttl: 0 }}, function_associations: {{ viewer_request: versioned }} }}
"#,
        origin.port
    );
    let v1 = version("1");
    let hf = Homefront::start_in(tempfile::tempdir().unwrap(), &yaml, &[("versioned.js", v1.as_bytes())]);
    let base = hf.http_base("site.test");
    let c = client();
    let seen = |n: usize| origin.requests("/x")[n].header("x-version").map(str::to_string);
    c.get(format!("{base}/x")).send().await.unwrap();
    assert_eq!(seen(0).as_deref(), Some("1"));

    let hup = |hf: &Homefront| {
        assert!(Command::new("kill")
            .arg("-HUP")
            .arg(hf.child.id().to_string())
            .status()
            .unwrap()
            .success());
    };
    // New code, reloaded: live.
    std::fs::write(hf.dir.path().join("versioned.js"), version("2")).unwrap();
    hup(&hf);
    hf.log_when(|l| l.contains("reloaded ")).await;
    c.get(format!("{base}/x")).send().await.unwrap();
    assert_eq!(seen(1).as_deref(), Some("2"));

    // Code that does not load: refused, with its line; the running version stays.
    std::fs::write(
        hf.dir.path().join("versioned.js"),
        "function handler(event) {\n  return event.request;\n",
    )
    .unwrap();
    hup(&hf);
    let log = hf.log_when(|l| l.contains("config reload refused")).await;
    assert!(log.contains("versioned.js:"), "{log}");
    c.get(format!("{base}/x")).send().await.unwrap();
    assert_eq!(seen(2).as_deref(), Some("2"));
}
