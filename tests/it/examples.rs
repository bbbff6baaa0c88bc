//! The files in `examples/`: the Grafana dashboard queries only metrics homefront exports,
//! and the systemd unit runs, checks and reloads it the way the README says.

use std::time::Duration;

use crate::common::*;

/// An origin whose answers may be served stale while they revalidate.
async fn start_origin() -> TestOrigin {
    let cached = [("cache-control", "max-age=1, stale-while-revalidate=60")];
    TestOrigin::answering(Reply::with(200, &cached, "hello")).await
}

/// Metric names in a PromQL expression (`homefront_...`, histogram suffixes removed).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("homefront_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches("_bucket").to_string();
        out.push(name);
        rest = &tail[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_queries_is_exported() {
    let app = start_origin().await;
    let origin = app.port;
    let hf = Homefront::start(&format!(
        r#"
listen: {{ https: "127.0.0.1:{{https}}" }}
metrics: {{ listen: "127.0.0.1:{{metrics}}" }}
origins:
  app: {{ http: "127.0.0.1:{origin}" }}
distributions:
  - name: main
    domains: ["*"]
    behaviors: [ {{ path_pattern: "*", origin: app }} ]
"#
    ));
    let client = hf.client(&["site.test"]);
    let url = format!("{}/a", hf.https_base("site.test"));
    client.get(&url).send().await.unwrap().text().await.unwrap();
    client.get(&url).send().await.unwrap().text().await.unwrap();
    // Past max-age: served stale while it revalidates.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    client.get(&url).send().await.unwrap().text().await.unwrap();
    let exposition = hf
        .metrics_when(|m| m.contains("homefront_cache_stale_served_total{"))
        .await;

    let dash: serde_json::Value = serde_json::from_str(include_str!("../../examples/grafana-dashboard.json")).unwrap();
    let mut queried = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            queried.extend(metric_names(t["expr"].as_str().unwrap()));
        }
    }
    queried.sort();
    queried.dedup();
    assert!(queried.len() >= 8, "{queried:?}");
    for name in &queried {
        let exported = exposition.lines().any(|l| {
            l.starts_with(&format!("{name}{{"))
                || l.starts_with(&format!("{name} "))
                || l.starts_with(&format!("{name}_bucket{{"))
        });
        assert!(
            exported,
            "the dashboard queries {name}, which /metrics does not export:\n{exposition}"
        );
    }
}

#[test]
fn the_systemd_unit_starts_checks_and_reloads() {
    let unit = include_str!("../../examples/homefront.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/homefront serve -c /etc/homefront/homefront.yaml"));
    assert!(unit.contains("ExecStartPre=/usr/local/bin/homefront check-config /etc/homefront/homefront.yaml"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // The commands it runs exist in this binary.
    for sub in ["serve", "check-config"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_homefront"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "homefront {sub} --help");
    }
}
