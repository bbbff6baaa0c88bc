//! HTTP origins with several upstreams and origin groups: requests spread over the
//! upstreams, an upstream killed mid-load costs no request (the refused connection is
//! retried on the other, and the health check keeps it out), a group fails over to its
//! secondary when the primary answers 503 or is down, and 504 when both fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// An HTTP/1.1 server answering `<name>`, with `status` for paths containing `/group/`.
/// Dropping it stops it and closes every connection it holds.
async fn upstream(name: &'static str, status: u16) -> TestOrigin {
    upstream_on(0, name, status).await
}

async fn upstream_on(port: u16, name: &'static str, status: u16) -> TestOrigin {
    let origin = TestOrigin::start_on(port).await;
    origin.fallback(move |r| {
        let code = if r.path.contains("/group/") { status } else { 200 };
        Reply::with(code, &[("content-type", "text/plain")], name)
    });
    origin
}

/// Requests the upstream answered, health checks aside.
fn served(upstream: &TestOrigin) -> usize {
    upstream.all_requests().iter().filter(|r| r.path != "/healthz").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_upstream_costs_no_request() {
    let a = upstream("a", 200).await;
    let b = upstream("b", 200).await;
    let config = format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
origins:
  app:
    http: ["127.0.0.1:{}", "127.0.0.1:{}"]
    health_check: {{ path: /healthz, interval: 200ms }}
    connect_timeout: 1s
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "*", origin: app, cache: {{ max_ttl: 0 }} }}
"#,
        a.port, b.port
    );
    let hf = Homefront::start(&config);
    let client = hf.client(&["app.test"]);
    let url = format!("{}/page", hf.http_base("app.test"));

    // Round-robin: both serve.
    for _ in 0..40 {
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    }
    let (sa, sb) = (served(&a), served(&b));
    assert!(sa >= 15 && sb >= 15, "round-robin: a {sa}, b {sb}");

    // A bounded load from 8 clients; `a` dies after the first few hundred requests.
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (client, url, done) = (client.clone(), url.clone(), done.clone());
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..400 {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while done.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "the load does not progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let served_by_a = served(&a);
    drop(a);
    let mut failures = Vec::new();
    for t in load {
        failures.extend(t.await.unwrap());
    }
    assert_eq!(done.load(Ordering::Relaxed), 3200);
    assert!(
        failures.is_empty(),
        "{} of 3200 requests failed: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        hf.stderr()
    );
    assert!(served_by_a > 0);

    // The health check has it down; the metrics say so.
    let m = hf
        .metrics_when(|m| m.contains("homefront_origin_upstream_healthy{origin=\"app\""))
        .await;
    let down = m
        .lines()
        .filter(|l| l.starts_with("homefront_origin_upstream_healthy{origin=\"app\"") && l.ends_with(" 0"))
        .count();
    assert_eq!(down, 1, "{m}");
    drop(b);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_fails_over_to_its_secondary_and_gives_504_when_both_fail() {
    let primary = upstream("primary", 503).await;
    let secondary = upstream("secondary", 200).await;
    let dead = free_port();
    let config = format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
origins:
  primary: {{ http: "127.0.0.1:{}" }}
  secondary: {{ http: "127.0.0.1:{}" }}
  gone: {{ http: "127.0.0.1:{dead}", connect_timeout: 1s, connection_attempts: 1 }}
  main: {{ group: {{ primary: primary, secondary: secondary }} }}
  doomed: {{ group: {{ primary: primary, secondary: gone }} }}
  unreachable: {{ group: {{ primary: gone, secondary: secondary }} }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "/doomed/*", origin: doomed, cache: {{ max_ttl: 0 }} }}
      - {{ path_pattern: "/down/*", origin: unreachable, cache: {{ max_ttl: 0 }} }}
      - {{ path_pattern: "/cached/*", origin: main }}
      - {{ path_pattern: "*", origin: main, cache: {{ max_ttl: 0 }}, allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE] }}
"#,
        primary.port, secondary.port
    );
    let hf = Homefront::start(&config);
    let client = hf.client(&["app.test"]);
    let base = hf.http_base("app.test");

    // The primary answers other paths itself.
    let r = client.get(format!("{base}/page")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "primary".to_string())
    );
    // 503 from the primary: the secondary answers.
    let r = client.get(format!("{base}/group/x")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "secondary".to_string())
    );
    // Through the cache: the secondary's answer is stored, the primary's 503 never.
    for expect in ["Miss from homefront", "Hit from homefront"] {
        let r = client.get(format!("{base}/cached/group/y")).send().await.unwrap();
        assert_eq!(r.headers()["x-cache"], expect);
        assert_eq!(
            (r.status().as_u16(), r.text().await.unwrap()),
            (200, "secondary".to_string())
        );
    }
    // The primary cannot be reached at all: the secondary answers.
    let r = client.get(format!("{base}/down/group/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Not for writes: a POST gets the primary's answer.
    let r = client.post(format!("{base}/group/x")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 503);
    // Primary 503 and secondary down: 504, XML, X-Cache Error.
    let r = client.get(format!("{base}/doomed/group/x")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["x-cache"], "Error from homefront");
    let body = r.text().await.unwrap();
    assert!(body.contains("<Code>GatewayTimeout</Code>"), "{body}");

    let m = hf
        .metrics_when(|m| m.contains("homefront_origin_failures_total{origin=\"primary\""))
        .await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("homefront_origin_failures_total{origin=\"primary\"")
                && l.contains("reason=\"status\"")),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_health_checks_a_failed_upstream_gets_requests_again_once_back() {
    let a = upstream("a", 200).await;
    let b = upstream("b", 200).await;
    let a_port = a.port;
    let config = format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}" }}
origins:
  app: {{ http: ["127.0.0.1:{}", "127.0.0.1:{}"] }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "*", origin: app, cache: {{ max_ttl: 0 }} }}
"#,
        a.port, b.port
    );
    let hf = Homefront::start(&config);
    let client = hf.client(&["app.test"]);
    let url = format!("{}/page", hf.http_base("app.test"));
    drop(a);
    // Down: its requests go to b.
    for _ in 0..20 {
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    }
    // Back on the same port: with no health check to mark it up again, it must never have
    // been taken out for good.
    let a = upstream_on(a_port, "a", 200).await;
    for _ in 0..20 {
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    }
    assert!(served(&a) > 0, "a gets requests again");
    drop(b);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_resets_before_answering_is_passed_over() {
    // `a` accepts and resets every request before answering (as an upstream dying with the
    // request in hand); `b` answers. A GET or HEAD goes on to `b` on the same request, on
    // the pass path and on pingora's (a hop-by-hop header takes a request there), as nginx's
    // `proxy_next_upstream error` does; the viewer never sees the reset.
    let a = TestOrigin::start().await;
    a.fallback(|_| Reply::raw("").reset());
    let b = upstream("b", 200).await;
    let config = format!(
        r#"
listen: {{ http: "127.0.0.1:{{http}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
origins:
  app: {{ http: ["127.0.0.1:{}", "127.0.0.1:{}"] }}
distributions:
  - domains: ["*"]
    behaviors:
      - {{ path_pattern: "*", origin: app, cache: {{ max_ttl: 0 }} }}
"#,
        a.port, b.port
    );
    let hf = Homefront::start(&config);
    for extra in ["", "TE: trailers\r\n"] {
        for n in 0..6 {
            let r = pipelined(
                hf.ports.http,
                &[format!("GET /page{n} HTTP/1.1\r\nHost: app.test\r\n{extra}\r\n")],
            )
            .remove(0);
            assert_eq!((r.status, r.body.as_slice()), (200, &b"b"[..]), "{extra:?} {n}: {r:?}");
        }
    }
    // `a` was asked (round-robin sends it its share) and reset each time.
    assert!(a.count_all() > 0, "a never asked");
    let m = hf.metrics();
    assert!(
        m.contains("reason=\"error\""),
        "the resets are counted as origin failures: {m}"
    );
}
