//! Presigned URLs for the bucket store: `homefront presign`, boto3's presigner, and AWS's
//! rules (Content-Type enforced when signed, expiry bounds, expired URLs).

use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::common::*;

const CONFIG: &str = STORE_CONFIG;

fn presign_cli(hf: &Homefront, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_homefront"))
        .arg("presign")
        .arg("-c")
        .arg(hf.dir.path().join("homefront.yaml"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_put_then_get_through_the_edge() {
    let hf = Homefront::start(CONFIG);
    let client = reqwest::Client::new();
    let url = presign_cli(
        &hf,
        &[
            "--method",
            "PUT",
            "--content-type",
            "image/png",
            "--expires",
            "5m",
            "s3://site/up/a b.png",
        ],
    );

    // The signed Content-Type is enforced.
    let r = client
        .put(&url)
        .header("content-type", "image/jpeg")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("<Code>SignatureDoesNotMatch</Code>"), "{body}");
    assert!(body.contains("signed with the header(s) content-type"), "{body}");
    assert!(body.contains("this request sent content-type: image/jpeg"), "{body}");
    let r = client
        .put(&url)
        .header("content-type", "image/png")
        .body("PNG!")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let r = client
        .get(format!("http://127.0.0.1:{}/up/a%20b.png", hf.ports.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.text().await.unwrap(), "PNG!");

    // A presigned GET works without credentials; the same URL for another key does not.
    let get = presign_cli(&hf, &["s3://site/up/a b.png"]);
    let r = client.get(&get).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "PNG!");
    let other = get.replace("a%20b.png", "c.png");
    assert_eq!(client.get(&other).send().await.unwrap().status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_rules() {
    let hf = Homefront::start(CONFIG);
    let client = reqwest::Client::new();
    let server = homefront::config::model::OriginServer {
        listen: format!("127.0.0.1:{}", hf.ports.origin).parse().unwrap(),
        credentials: vec![homefront::config::model::Credential {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
        }],
    };
    let req = homefront::origin::presign::PresignRequest {
        method: "GET",
        bucket: "site",
        key: "x.txt",
        content_type: None,
        expires: Duration::from_secs(60),
        endpoint: None,
    };
    // Signed an hour ago for a minute: expired (the signer's clock is injected).
    let old =
        homefront::origin::presign::presign(&server, &req, SystemTime::now() - Duration::from_secs(3600)).unwrap();
    let r = client.get(&old).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Request has expired"));

    // More than a week is refused before the signature is even looked at.
    let week_plus = old.replace("X-Amz-Expires=60", "X-Amz-Expires=604801");
    let r = client.get(&week_plus).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("AuthorizationQueryParametersError"));

    // The CLI refuses it too, with a clear message.
    let out = Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(["presign", "-c"])
        .arg(hf.dir.path().join("homefront.yaml"))
        .args(["--expires", "8d", "s3://site/x.txt"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("7 days"));
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_presigned_put_with_content_type_then_get_through_the_edge() {
    let hf = Homefront::start(CONFIG);
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/presigned_put.py"))
        .args([
            &format!("http://127.0.0.1:{}", hf.ports.origin),
            ACCESS_KEY,
            SECRET_KEY,
            "site",
            "uploads/report.csv",
        ])
        .args(["text/csv", "a,b\n1,2\n"])
        .output()
        .expect("python3 with boto3 (./dev.sh test installs it)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = reqwest::get(format!("http://127.0.0.1:{}/uploads/report.csv", hf.ports.http))
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv");
    assert_eq!(r.text().await.unwrap(), "a,b\n1,2\n");
}

/// POSTs JSON to the admin API; returns status and body.
async fn admin_post(hf: &Homefront, path: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut rb = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}{path}", hf.ports.admin))
        .body(body.to_string());
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_hands_out_upload_urls() {
    let hf = Homefront::start(CONFIG);
    let token = std::fs::read_to_string(hf.dir.path().join("data/secrets/admin.token")).unwrap();
    let token = token.trim();
    let ask = r#"{"method":"PUT","bucket":"site","key":"uploads/photo.png","content_type":"image/png","expires":"5m"}"#;

    assert_eq!(admin_post(&hf, "/presign", None, ask).await.0, 401);
    assert_eq!(admin_post(&hf, "/presign", Some("wrong"), ask).await.0, 401);
    let (status, v) = admin_post(&hf, "/presign", Some(token), ask).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["expires_in"], 300);
    assert_eq!(v["headers"]["Content-Type"], "image/png");
    let url = v["url"].as_str().unwrap();

    // The browser's PUT, straight to the bucket store; the signed Content-Type is enforced.
    let client = reqwest::Client::new();
    let r = client
        .put(url)
        .header("content-type", "image/jpeg")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .put(url)
        .header("content-type", "image/png")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = hf
        .client(&["site.test"])
        .get(format!("{}/uploads/photo.png", hf.https_base("site.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[1u8, 2, 3]);

    let (status, v) = admin_post(&hf, "/presign", Some(token), r#"{"bucket":"nope","key":"k"}"#).await;
    assert_eq!((status, v["error"].as_str()), (404, Some("NoSuchBucket")));
    let (status, v) = admin_post(
        &hf,
        "/presign",
        Some(token),
        r#"{"bucket":"site","key":"k","expires":"30d"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().contains("7 days"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_upload_is_refused_and_leaves_nothing() {
    let hf = Homefront::start(CONFIG);
    // Large enough to be flushed to disk in the middle (every 8 MiB) before the cut.
    let url = presign_cli(&hf, &["--method", "PUT", "s3://site/big.bin"]);
    let path_and_query = url.splitn(4, '/').nth(3).unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", hf.ports.origin)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "PUT /{path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\r\n",
        hf.ports.origin,
        20 << 20
    )
    .unwrap();
    s.write_all(&vec![7u8; 12 << 20]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "a cut body is never a success: {answer}"
    );
    let err = hf
        .s3()
        .head_object()
        .bucket("site")
        .key("big.bin")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    // The partial data is removed, not left in tmp/ until the next start.
    let tmp = hf.dir.path().join("data/buckets/site/tmp");
    let deadline = std::time::Instant::now() + EVENT_DEADLINE;
    while std::fs::read_dir(&tmp).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "tmp/ still holds the partial upload"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
