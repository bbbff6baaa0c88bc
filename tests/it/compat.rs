//! The compatibility script: boto3 and the aws cli drive every bucket-store flow against a
//! running homefront, then read the results through the edge (`tests/compat/s3_clients.py`;
//! `./dev.sh test` installs boto3 and the aws cli when they are missing).

use std::process::Command;

use crate::common::*;

#[test]
fn boto3_and_the_aws_cli_drive_every_bucket_store_flow() {
    let hf = Homefront::start(STORE_CONFIG);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/s3_clients.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("--endpoint")
        .arg(format!("http://127.0.0.1:{}", hf.ports.origin))
        .arg("--edge")
        .arg(format!("http://127.0.0.1:{}", hf.ports.http))
        .arg("--access-key")
        .arg(ACCESS_KEY)
        .arg("--secret")
        .arg(SECRET_KEY)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the compatibility script failed:\n{text}\n{}",
        hf.stderr()
    );
    assert!(text.contains("all S3 client flows passed"), "{text}");
}
