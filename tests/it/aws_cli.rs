//! The real `aws` cli against the bucket store, then the uploaded file through the edge.
//! (`./dev.sh test` installs the aws cli when it is missing.)

use std::net::SocketAddr;
use std::process::Command;

use crate::common::*;

const CONFIG: &str = STORE_CONFIG;

fn aws(hf: &Homefront, args: &[&str]) -> (bool, String) {
    let out = Command::new("aws")
        .arg("--endpoint-url")
        .arg(format!("http://127.0.0.1:{}", hf.ports.origin))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(hf.dir.path())
        .output()
        .expect("the aws cli must be installed (./dev.sh test installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_cp_ls_rm_and_serve_through_the_edge() {
    let hf = Homefront::start(CONFIG);
    let file = hf.dir.path().join("hello.txt");
    std::fs::write(&file, "hello from the aws cli\n").unwrap();

    let (ok, out) = aws(&hf, &["s3", "cp", file.to_str().unwrap(), "s3://site/docs/hello.txt"]);
    assert!(ok, "aws s3 cp: {out}");
    let (ok, out) = aws(&hf, &["s3", "ls", "s3://site/docs/"]);
    assert!(ok && out.contains("hello.txt"), "aws s3 ls: {out}");
    let (ok, out) = aws(&hf, &["s3", "ls"]);
    assert!(ok && out.contains("site"), "aws s3 ls (buckets): {out}");

    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("cdn.test", SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();
    let r = client
        .get(format!("https://cdn.test:{}/docs/hello.txt", hf.ports.https))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from the aws cli\n");

    let back = hf.dir.path().join("back.txt");
    let (ok, out) = aws(&hf, &["s3", "cp", "s3://site/docs/hello.txt", back.to_str().unwrap()]);
    assert!(ok, "aws s3 cp down: {out}");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello from the aws cli\n");

    let (ok, out) = aws(&hf, &["s3", "rm", "s3://site/docs/hello.txt"]);
    assert!(ok, "aws s3 rm: {out}");
    let (ok, out) = aws(&hf, &["s3", "ls", "s3://site/docs/"]);
    assert!(!out.contains("hello.txt"), "still listed after rm (ok={ok}): {out}");
    // As on CloudFront, the edge keeps serving its cached copy until it is invalidated.
    let r = client
        .get(format!("https://cdn.test:{}/docs/hello.txt", hf.ports.https))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "Hit from homefront");
    let out = Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(["invalidate", "-c", "homefront.yaml", "--distribution", "d0", "/docs/*"])
        .current_dir(hf.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("invalidated 1 cached entry"));
    let r = client
        .get(format!("https://cdn.test:{}/docs/hello.txt", hf.ports.https))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn aws_cli_with_a_wrong_secret_is_refused() {
    let hf = Homefront::start(CONFIG);
    let out = Command::new("aws")
        .args([
            "--endpoint-url",
            &format!("http://127.0.0.1:{}", hf.ports.origin),
            "s3",
            "ls",
            "s3://site/",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the aws cli must be installed (./dev.sh test installs it)");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SignatureDoesNotMatch") || err.contains("AccessDenied") || err.contains("403"),
        "{err}"
    );
}

#[test]
fn aws_cli_large_files_go_multipart_and_batch_deletes_work() {
    let hf = Homefront::start(CONFIG);
    // 20 MiB: the cli splits it into 8 MiB parts (multipart upload).
    let data: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let big = hf.dir.path().join("big.bin");
    std::fs::write(&big, &data).unwrap();
    let (ok, out) = aws(&hf, &["s3", "cp", big.to_str().unwrap(), "s3://site/media/big.bin"]);
    assert!(ok, "aws s3 cp (multipart): {out}");
    let (ok, out) = aws(
        &hf,
        &["s3api", "head-object", "--bucket", "site", "--key", "media/big.bin"],
    );
    assert!(
        ok && out.contains("\"ContentLength\": 20971520") && out.contains("-3\\\""),
        "multipart ETag ends in -3: {out}"
    );
    let back = hf.dir.path().join("back.bin");
    let (ok, out) = aws(&hf, &["s3", "cp", "s3://site/media/big.bin", back.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(std::fs::read(&back).unwrap() == data, "downloaded bytes differ");

    // mv = CopyObject + DeleteObject; copy-object restores under another name.
    let (ok, out) = aws(
        &hf,
        &["s3", "mv", "s3://site/media/big.bin", "s3://site/archive/big.bin"],
    );
    assert!(ok, "aws s3 mv: {out}");
    let (ok, out) = aws(
        &hf,
        &[
            "s3api",
            "copy-object",
            "--bucket",
            "site",
            "--key",
            "media/copy.bin",
            "--copy-source",
            "site/archive/big.bin",
        ],
    );
    assert!(ok, "copy-object: {out}");

    // rm --recursive uses DeleteObjects.
    let (ok, out) = aws(&hf, &["s3", "rm", "--recursive", "s3://site/"]);
    assert!(ok, "aws s3 rm --recursive: {out}");
    let (_, out) = aws(&hf, &["s3", "ls", "--recursive", "s3://site/"]);
    assert!(out.trim().is_empty(), "bucket not empty after rm --recursive: {out}");
}

#[test]
fn aws_cli_lists_and_deletes_keys_with_special_characters() {
    // The cli lists with encoding-type=url and decodes with unquote_plus: a key with '+'
    // listed unencoded would come back as a space, and `rm --recursive` would then delete a
    // key that does not exist while the real one stays.
    let hf = Homefront::start(CONFIG);
    let file = hf.dir.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let key = "odd/a+b c%20d é.txt";
    let (ok, out) = aws(&hf, &["s3", "cp", file.to_str().unwrap(), &format!("s3://site/{key}")]);
    assert!(ok, "{out}");
    let (ok, out) = aws(&hf, &["s3", "ls", "s3://site/odd/"]);
    assert!(ok && out.contains("a+b c%20d é.txt"), "{out}");
    let (ok, out) = aws(&hf, &["s3", "rm", "--recursive", "s3://site/odd/"]);
    assert!(ok && out.contains("a+b c%20d é.txt"), "{out}");
    let (_, out) = aws(&hf, &["s3", "ls", "--recursive", "s3://site/"]);
    assert!(out.trim().is_empty(), "still there after rm --recursive: {out}");
}
