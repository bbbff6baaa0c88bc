//! `homefront origin -c FILE`: the bucket store alone, as it runs on another machine.

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn origin_command_runs_only_the_bucket_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), format!("{SECRET_KEY}\n")).unwrap();
    let ports = Ports::new();
    let cfg = ports.fill(
        r#"
listen: { http: "127.0.0.1:{http}" }
origins:
  media: { bucket: media }
distributions:
  - domains: ["*"]
    behaviors: [ { path_pattern: "*", origin: media } ]
buckets:
  media: {}
origin_server:
  listen: "127.0.0.1:{origin}"
  credentials: [ { access_key_id: testkey, secret_access_key_file: origin.key } ]
"#,
        dir.path(),
    );
    std::fs::write(dir.path().join("origin.yaml"), cfg).unwrap();
    let args = vec!["origin".to_string(), "-c".to_string(), "origin.yaml".to_string()];
    let mut hf = Homefront::spawn_args(dir, &args, ports);
    hf.wait_port(hf.ports.origin);

    let s3 = hf.s3();
    let buckets = s3.list_buckets().send().await.unwrap();
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["media"], "buckets from the config are created at start");
    s3.put_object()
        .bucket("media")
        .key("a/b.txt")
        .body(b"remote".to_vec().into())
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("media").key("a/b.txt").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"remote");
    assert!(
        hf.dir.path().join("data/buckets").is_dir(),
        "data_dir defaults to ./data beside the config"
    );

    // Only the bucket store runs: the edge's HTTP port stays closed.
    assert!(std::net::TcpStream::connect(("127.0.0.1", hf.ports.http)).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_command_needs_no_distributions_but_a_bucket_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), format!("{SECRET_KEY}\n")).unwrap();
    let ports = Ports::new();
    let cfg = ports.fill(
        r#"
buckets:
  media: {}
origin_server:
  listen: "127.0.0.1:{origin}"
  credentials: [ { access_key_id: testkey, secret_access_key_file: origin.key } ]
"#,
        dir.path(),
    );
    std::fs::write(dir.path().join("origin.yaml"), cfg).unwrap();
    std::fs::write(dir.path().join("no-store.yaml"), "buckets:\n  media: {}\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_homefront");
    // Without origin_server, `homefront origin` says what it needs.
    let out = std::process::Command::new(bin)
        .args(["origin", "-c", "no-store.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("origin_server") && !err.contains("distribution"), "{err}");
    // The whole server still requires a distribution.
    let out = std::process::Command::new(bin)
        .args(["check-config", "origin.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("define at least one distribution"));

    let args = vec!["origin".to_string(), "-c".to_string(), "origin.yaml".to_string()];
    let mut hf = Homefront::spawn_args(dir, &args, ports);
    hf.wait_port(hf.ports.origin);
    let s3 = hf.s3();
    let buckets = s3.list_buckets().send().await.unwrap();
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["media"]);
}
