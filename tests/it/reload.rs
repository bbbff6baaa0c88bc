//! Live reload: a new config goes live on SIGHUP or `POST /reload` without dropping a
//! request; a broken file is refused and the running config keeps serving.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

fn config(version: &str) -> String {
    let behaviors = match version {
        // /t/* does not cache; /v2/* does not exist yet.
        "v1" => {
            r#"
      - { path_pattern: "/t/*", origin: app, cache: { max_ttl: 0 } }
      - { path_pattern: "*", origin: app, cache: { max_ttl: 0 } }"#
        }
        // /t/* caches for an hour; /v2/* goes to the origin under /next.
        _ => {
            r#"
      - { path_pattern: "/t/*", origin: app, cache: { min_ttl: 1h, default_ttl: 1h } }
      - { path_pattern: "/v2/*", origin: next, cache: { max_ttl: 0 } }
      - { path_pattern: "*", origin: app, cache: { max_ttl: 0 } }"#
        }
    };
    format!(
        r#"
listen: {{ https: "127.0.0.1:{{https}}" }}
admin: {{ listen: "127.0.0.1:{{admin}}" }}
origins:
  app: {{ http: "127.0.0.1:{{app}}" }}
  next: {{ http: "127.0.0.1:{{app}}", origin_path: /next }}
distributions:
  - domains: [site.test]
    behaviors:{behaviors}
"#
    )
}

async fn echo_uri(client: &reqwest::Client, url: &str) -> Result<(String, String), String> {
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("status {}", r.status()));
    }
    let xc = r.headers()["x-cache"].to_str().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).map_err(|e| e.to_string())?;
    Ok((v["uri"].as_str().unwrap_or("").to_string(), xc))
}

fn write_config(hf: &Homefront, app: u16, text: &str) {
    let filled = hf.ports.fill(&text.replace("{app}", &app.to_string()), hf.dir.path());
    let path = hf.dir.path().join("homefront.yaml");
    // Replace atomically, as editors and config management do.
    std::fs::write(hf.dir.path().join("homefront.yaml.new"), filled).unwrap();
    std::fs::rename(hf.dir.path().join("homefront.yaml.new"), path).unwrap();
}

/// How many reloads the log reports (each is logged once the new config is in use).
fn reloads(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("reloaded ") && l.contains("behavior(s)"))
        .count()
}

fn hup(hf: &Homefront) {
    let ok = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(hf.child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_and_post_reload_apply_a_new_config_without_failing_a_request() {
    let app = start_echo_origin().await;
    let hf = Homefront::start(&config("v1").replace("{app}", &app.to_string()));
    let client = hf.client(&["site.test"]);
    let base = hf.https_base("site.test");

    // A steady load for the whole test; every request must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url, stop, done) = (client.clone(), format!("{base}/v2/x"), stop.clone(), done.clone());
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = echo_uri(&client, &url).await {
                    failures.push(e);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }

    assert_eq!(echo_uri(&client, &format!("{base}/v2/x")).await.unwrap().0, "/v2/x");
    assert_eq!(
        echo_uri(&client, &format!("{base}/t/a")).await.unwrap().1,
        "Miss from homefront"
    );
    assert_eq!(
        echo_uri(&client, &format!("{base}/t/a")).await.unwrap().1,
        "Miss from homefront"
    );

    // v2 by SIGHUP: once the reload is logged (after the new config is swapped in), the new
    // path pattern and TTL are live for the next request.
    write_config(&hf, app, &config("v2"));
    let before = reloads(&hf.stderr());
    let sent = Instant::now();
    hup(&hf);
    let log = hf.log_when(|log| reloads(log) > before).await;
    assert!(reloads(&log) > before, "no reload logged:\n{log}");
    eprintln!("reloaded after {:?}", sent.elapsed());
    assert_eq!(
        echo_uri(&client, &format!("{base}/v2/x")).await.unwrap().0,
        "/next/v2/x",
        "not live after the reload:\n{log}"
    );
    echo_uri(&client, &format!("{base}/t/a")).await.unwrap();
    assert_eq!(
        echo_uri(&client, &format!("{base}/t/a")).await.unwrap().1,
        "Hit from homefront"
    );

    // A broken file: refused, with file, line and key in the log; v2 keeps serving.
    write_config(
        &hf,
        app,
        &config("v2").replace("path_pattern: \"/v2/*\"", "path_pattern: \"/v2/*\", ttl: 5"),
    );
    hup(&hf);
    let log = hf.log_when(|log| log.contains("config reload refused")).await;
    assert!(log.contains("config reload refused"), "no refusal logged:\n{log}");
    assert!(log.contains("homefront.yaml:") && log.contains("ttl"), "{log}");
    assert_eq!(
        echo_uri(&client, &format!("{base}/v2/x")).await.unwrap().0,
        "/next/v2/x"
    );

    // POST /reload says why, and reloads a fixed file.
    let token = std::fs::read_to_string(hf.dir.path().join("data/secrets/admin.token")).unwrap();
    let post = |auth: Option<String>| {
        let auth = auth
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        raw_http(
            hf.ports.admin,
            &format!("POST /reload HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"),
        )
    };
    assert!(post(None).starts_with("HTTP/1.1 401"));
    let refused = post(Some(token.trim().to_string()));
    assert!(
        refused.starts_with("HTTP/1.1 400") && refused.contains("ttl"),
        "{refused}"
    );
    write_config(&hf, app, &config("v1"));
    let ok = post(Some(token.trim().to_string()));
    assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("\"reloaded\""), "{ok}");
    assert_eq!(echo_uri(&client, &format!("{base}/v2/x")).await.unwrap().0, "/v2/x");

    // The load ran across the reloads; on a slow machine, let it reach its count first.
    let deadline = Instant::now() + EVENT_DEADLINE;
    while done.load(Ordering::Relaxed) <= 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for t in load {
        failures.extend(t.await.unwrap());
    }
    let total = done.load(Ordering::Relaxed);
    assert!(total > 20, "the load loop ran ({total} requests)");
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {failures:?}",
        failures.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_config_file_reloads_itself_and_a_broken_one_is_refused() {
    let app = start_echo_origin().await;
    let watched = |v: &str| format!("reload: {{ watch: true }}\n{}", config(v));
    let hf = Homefront::start(&watched("v1").replace("{app}", &app.to_string()));
    let client = hf.client(&["site.test"]);
    let base = hf.https_base("site.test");
    assert_eq!(echo_uri(&client, &format!("{base}/v2/x")).await.unwrap().0, "/v2/x");

    // Saved, no signal: reloaded (and logged so, after the swap), then live.
    write_config(&hf, app, &watched("v2"));
    let log = hf.log_when(|log| reloads(log) > 0).await;
    assert!(reloads(&log) > 0, "the edit was not picked up:\n{log}");
    assert_eq!(
        echo_uri(&client, &format!("{base}/v2/x")).await.unwrap().0,
        "/next/v2/x",
        "not live after the reload:\n{log}"
    );

    // A broken save: refused and logged; the running config stays.
    write_config(
        &hf,
        app,
        &watched("v2").replace("path_pattern: \"/v2/*\"", "path_pattern: \"/v2/*\", ttl: 5"),
    );
    let log = hf.log_when(|log| log.contains("config reload refused")).await;
    assert!(log.contains("config reload refused"), "no refusal logged:\n{log}");
    assert_eq!(
        echo_uri(&client, &format!("{base}/v2/x")).await.unwrap().0,
        "/next/v2/x"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn renewed_certificate_files_are_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path(), "site", &["site.test"]);
    let app = start_echo_origin().await;
    let cfg = config("v1").replace("{app}", &app.to_string()).replace(
        "admin:",
        "tls: { certificates: [ { domains: [site.test], cert: site.pem, key: site.key } ] }\nadmin:",
    );
    let hf = Homefront::start_in(dir, &cfg, &[]);
    assert_eq!(handshake(hf.ports.https, "site.test", b"\x08http/1.1").0, "site.test");
    // A renewal rewrites both files (here with a certificate whose subject differs, to tell
    // them apart); no signal, no reload of the config.
    make_cert(hf.dir.path(), "site", &["renewed.site.test", "site.test"]);
    let deadline = Instant::now() + EVENT_DEADLINE;
    while handshake(hf.ports.https, "site.test", b"\x08http/1.1").0 != "renewed.site.test" {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served:\n{}",
            hf.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Requests still work on the new certificate.
    let client = hf.client(&["site.test"]);
    assert_eq!(
        echo_uri(&client, &format!("{}/a", hf.https_base("site.test")))
            .await
            .unwrap()
            .0,
        "/a"
    );
}
