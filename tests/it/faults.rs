//! Faults around the edge and the bucket store: an origin that resets mid-body or is too
//! slow, a full disk under the cache and under the bucket store, damaged cache files, and a
//! data directory homefront may not write. The full disks are real: a small tmpfs mounted in
//! a mount namespace of homefront's own (`unshare -m`, as root; `unshare -rm` otherwise).

use std::time::Duration;

use crate::common::*;

const EDGE: &str = r#"
listen: { http: "127.0.0.1:{http}" }
metrics: { listen: "127.0.0.1:{metrics}" }
origins:
  app: { http: "127.0.0.1:{app}", response_timeout: 1s, connection_attempts: 1 }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "*", origin: app }
"#;

/// The body `/big` sends: 3 MiB.
fn big_body() -> Vec<u8> {
    (0..3 << 20).map(|i| (i % 251) as u8).collect()
}

/// The test origin, one request per connection: `/reset` sends half its body and resets the
/// connection, `/stall` sends half and waits before resetting it, `/slow` answers after 5 s,
/// `/big` sends 3 MiB, any other path 100 kB.
async fn scripted_origin() -> TestOrigin {
    let origin = TestOrigin::start().await;
    origin.without_date();
    origin.fallback(|r| {
        let reply = |body: Vec<u8>| {
            let fields = [
                ("Cache-Control", "max-age=600"),
                ("Content-Type", "application/octet-stream"),
            ];
            Reply::with(200, &fields, body)
        };
        match r.path.as_str() {
            "/reset" => reply(vec![b'r'; 100_000]).length(200_000).reset(),
            "/stall" => reply(vec![b's'; 100_000])
                .length(200_000)
                .close_after(Duration::from_secs(30))
                .reset(),
            "/slow" => reply(b"slow reply".to_vec()).delay(Duration::from_secs(5)).close(),
            "/big" => reply(big_body()).close(),
            _ => reply(vec![b'k'; 100_000]).close(),
        }
    });
    origin
}

/// GET through the edge: status, X-Cache, and the body, or the error that cut it off.
async fn get(port: u16, path: &str) -> (u16, String, Result<Vec<u8>, String>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let xc = r
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string();
    let body = r.bytes().await.map(|b| b.to_vec()).map_err(|e| format!("{e:?}"));
    (status, xc, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_cut_off_or_too_slow_is_never_cached() {
    let origin = scripted_origin().await;
    let app = origin.port;
    let hf = Homefront::start(&EDGE.replace("{app}", &app.to_string()));
    let port = hf.ports.http;

    // Reset mid-body: the viewer sees a truncated transfer, and the next viewer gets a fresh
    // attempt, not the half body from the cache.
    for attempt in 1..=2 {
        let (status, xc, body) = get(port, "/reset").await;
        assert_eq!((status, xc.as_str()), (200, "Miss"));
        assert!(
            body.is_err(),
            "a truncated body was delivered as whole: {:?}",
            body.map(|b| b.len())
        );
        assert_eq!(origin.count("/reset"), attempt);
    }

    // Headers, half the body, then nothing (longer than the response timeout): cut off,
    // not cached.
    for attempt in 1..=2 {
        let (status, _, body) = get(port, "/stall").await;
        assert_eq!(status, 200);
        assert!(body.is_err(), "a stalled body was delivered as whole");
        assert_eq!(origin.count("/stall"), attempt);
    }

    // No answer within the response timeout: 504 with CloudFront's body.
    let (status, xc, body) = get(port, "/slow").await;
    assert_eq!((status, xc.as_str()), (504, "Error"));
    let body = String::from_utf8(body.unwrap()).unwrap();
    assert!(body.contains("<Code>GatewayTimeout</Code>"), "{body}");

    // A whole answer is cached as usual.
    assert_eq!(get(port, "/ok").await.1, "Miss");
    assert_eq!(get(port, "/ok").await.1, "Hit");
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// `unshare` arguments that run homefront with a `size` tmpfs mounted on `dir/sub` in a
/// mount namespace of its own.
fn on_small_disk(dir: &std::path::Path, sub: &str, size: &str) -> Vec<String> {
    let root = is_root();
    std::fs::create_dir_all(dir.join(sub)).unwrap();
    let mount = format!(
        "mount -t tmpfs -o size={size} homefront-test '{}' && exec \"$@\"",
        dir.join(sub).display()
    );
    let mut args = vec!["unshare".to_string(), if root { "-m" } else { "-rm" }.to_string()];
    args.extend(["sh".into(), "-c".into(), mount, "sh".into()]);
    args
}

/// A file inside homefront's mount namespace.
fn inside(hf: &Homefront, path: &std::path::Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/{}/root{}", hf.child.id(), path.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_cache_disk_serves_from_the_origin_and_keeps_running() {
    let origin = scripted_origin().await;
    let app = origin.port;
    let dir = tempfile::tempdir().unwrap();
    let wrapper = on_small_disk(dir.path(), "data/cache", "1m");
    let hf = Homefront::start_wrapped(
        dir,
        Ports::new(),
        &EDGE.replace("{app}", &app.to_string()),
        &[],
        &[],
        &wrapper,
    );
    let port = hf.ports.http;
    let expected = big_body();
    // 3 MiB cannot be cached on a 1 MiB disk: each viewer still gets all of it.
    for attempt in 1..=3 {
        let (status, xc, body) = get(port, "/big").await;
        assert_eq!((status, xc.as_str()), (200, "Miss"));
        assert!(body.unwrap() == expected, "attempt {attempt}: the body differs");
        assert_eq!(origin.count("/big"), attempt);
    }
    // What fits is cached as usual.
    assert_eq!(get(port, "/small").await.1, "Miss");
    assert_eq!(get(port, "/small").await.1, "Hit");
    let m = hf.metrics();
    assert!(
        m.lines()
            .any(|l| l.starts_with("homefront_cache_discarded_total{reason=\"write_failed\"}") && !l.ends_with(" 0")),
        "{m}"
    );
    // Nothing half-written is left behind on the small disk.
    let tmp = inside(&hf, &hf.dir.path().join("data/cache/tmp"));
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_bucket_disk_refuses_uploads_with_507_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), SECRET_KEY).unwrap();
    let wrapper = on_small_disk(dir.path(), "data/buckets", "4m");
    let hf = Homefront::start_wrapped(dir, Ports::new(), STORE_CONFIG, &[], &[], &wrapper);
    let s3 = hf.s3();
    let big = vec![7u8; 6 << 20];
    let err = s3
        .put_object()
        .bucket("site")
        .key("big.bin")
        .body(big.clone().into())
        .send()
        .await
        .expect_err("6 MiB fit on a 4 MiB disk");
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(507), "{err:?}");
    let code = err
        .as_service_error()
        .and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::code(e));
    assert_eq!(code, Some("InsufficientStorage"));

    // A multipart upload whose parts run out of space fails the same way.
    let up = s3
        .create_multipart_upload()
        .bucket("site")
        .key("parts.bin")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut refused = false;
    for n in 1..=3 {
        let r = s3
            .upload_part()
            .bucket("site")
            .key("parts.bin")
            .upload_id(id)
            .part_number(n)
            .body(vec![n as u8; 5 << 20].into())
            .send()
            .await;
        if let Err(e) = r {
            assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(507), "{e:?}");
            refused = true;
            break;
        }
    }
    assert!(refused, "15 MiB of parts fit on a 4 MiB disk");
    s3.abort_multipart_upload()
        .bucket("site")
        .key("parts.bin")
        .upload_id(id)
        .send()
        .await
        .unwrap();

    // Nothing was stored and nothing half-written is left; what fits still goes in.
    let listed = s3.list_objects_v2().bucket("site").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0));
    let tmp = inside(&hf, &hf.dir.path().join("data/buckets/site/tmp"));
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "{left:?}");
    let small = vec![1u8; 100_000];
    s3.put_object()
        .bucket("site")
        .key("small.bin")
        .body(small.clone().into())
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("site").key("small.bin").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), small);
}

#[test]
fn a_data_dir_homefront_cannot_write_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    let ports = Ports::new();
    let cfg = dir.path().join("homefront.yaml");
    let text = EDGE.replace("{app}", "1");
    std::fs::write(&cfg, ports.fill(&text, dir.path())).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Root may write anywhere: run as nobody then.
    let mut command = if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(env!("CARGO_BIN_EXE_homefront"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_homefront"))
    };
    let out = command
        .args(["serve", "-c"])
        .arg(&cfg)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a read-only data dir: {stderr}");
    assert!(
        stderr.contains(&data.display().to_string()),
        "the path is not named: {stderr}"
    );
    assert!(
        stderr.contains("is not writable") && stderr.contains("Permission denied"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
