//! The bucket store through the other S3 clients home servers use: rclone (sync, check, copy
//! back, multipart) and s3cmd (multipart put, ls, info, get, del). `./dev.sh test` installs
//! both (Debian packages) when they are missing.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (./dev.sh test installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub dir")).unwrap();
    std::fs::write(dir.join("a.txt"), "hello\n").unwrap();
    std::fs::write(dir.join("sub dir/ü + b.txt"), "spaces, plus and umlaut\n").unwrap();
    // Over the 5 MiB part size below: a multipart upload.
    let big: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("big.bin"), big).unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    for rel in ["a.txt", "sub dir/ü + b.txt", "big.bin"] {
        assert_eq!(
            std::fs::read(a.join(rel)).unwrap(),
            std::fs::read(b.join(rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn rclone_syncs_checks_and_copies_back() {
    let hf = Homefront::start(STORE_CONFIG);
    let work = tempfile::tempdir().unwrap();
    let (src, back) = (work.path().join("src"), work.path().join("back"));
    tree(&src);
    let rclone = |args: &[&str]| {
        let mut c = Command::new("rclone");
        c.args(args)
            .args(["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"])
            .env("RCLONE_CONFIG", "/dev/null")
            .env("RCLONE_CONFIG_HF_TYPE", "s3")
            .env("RCLONE_CONFIG_HF_PROVIDER", "Other")
            .env("RCLONE_CONFIG_HF_ACCESS_KEY_ID", ACCESS_KEY)
            .env("RCLONE_CONFIG_HF_SECRET_ACCESS_KEY", SECRET_KEY)
            .env(
                "RCLONE_CONFIG_HF_ENDPOINT",
                format!("http://127.0.0.1:{}", hf.ports.origin),
            )
            .env("RCLONE_CONFIG_HF_REGION", "us-east-1")
            // A CA bundle in the environment makes some rclone builds refuse a plain-HTTP endpoint.
            .env_remove("AWS_CA_BUNDLE");
        run(&mut c)
    };
    rclone(&["sync", src.to_str().unwrap(), "hf:site/backup"]);
    let checked = rclone(&["check", src.to_str().unwrap(), "hf:site/backup"]);
    assert!(checked.contains("0 differences found"), "{checked}");
    // A second sync has nothing to do; a changed file is sent again.
    std::fs::write(src.join("a.txt"), "hello again\n").unwrap();
    rclone(&["sync", src.to_str().unwrap(), "hf:site/backup"]);
    rclone(&["copy", "hf:site/backup", back.to_str().unwrap()]);
    same_tree(&src, &back);
    let listed = rclone(&["lsf", "-R", "hf:site/backup"]);
    assert!(listed.contains("sub dir/ü + b.txt"), "{listed}");
}

#[test]
fn s3cmd_puts_lists_gets_and_deletes() {
    let hf = Homefront::start(STORE_CONFIG);
    let work = tempfile::tempdir().unwrap();
    let (src, back) = (work.path().join("src"), work.path().join("back"));
    tree(&src);
    std::fs::create_dir_all(&back).unwrap();
    let cfg = work.path().join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = 127.0.0.1:{p}\nhost_bucket = 127.0.0.1:{p}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n",
            p = hf.ports.origin
        ),
    )
    .unwrap();
    let s3cmd = |args: &[&str]| run(Command::new("s3cmd").arg("-c").arg(&cfg).args(args));
    s3cmd(&[
        "put",
        "--recursive",
        "--multipart-chunk-size-mb=5",
        src.to_str().unwrap(),
        "s3://site/s3cmd/",
    ]);
    let listed = s3cmd(&["ls", "--recursive", "s3://site/s3cmd/"]);
    assert!(listed.contains("s3://site/s3cmd/src/sub dir/ü + b.txt"), "{listed}");
    assert!(listed.contains("12000000"), "{listed}");
    let info = s3cmd(&["info", "s3://site/s3cmd/src/a.txt"]);
    assert!(info.contains("b1946ac92492d2347c6235b4d2611184"), "MD5 sum: {info}");
    s3cmd(&[
        "get",
        "--recursive",
        "s3://site/s3cmd/src/",
        &format!("{}/", back.display()),
    ]);
    same_tree(&src, &back);
    s3cmd(&["del", "--recursive", "--force", "s3://site/s3cmd/"]);
    let empty = s3cmd(&["ls", "--recursive", "s3://site/s3cmd/"]);
    assert!(empty.trim().is_empty(), "{empty}");
}
