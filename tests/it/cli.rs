//! The command line: help, version, and `check-config` reporting every error with file,
//! line, column and key path.

use std::process::Command;

fn homefront(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_homefront"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help_explain_themselves() {
    let (code, out, _) = homefront(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("homefront {}", env!("CARGO_PKG_VERSION")));
    let (code, out, _) = homefront(&["--help"]);
    assert_eq!(code, 0);
    for word in ["serve", "check-config", "origin", "CloudFront"] {
        assert!(out.contains(word), "--help lacks {word}:\n{out}");
    }
    let (code, out, _) = homefront(&["serve", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--config") && out.contains("embedded default"), "{out}");
}

#[test]
fn embedded_default_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = homefront(&["default-config"]);
    assert_eq!(code, 0);
    let path = dir.path().join("homefront.yaml");
    std::fs::write(&path, out).unwrap();
    let (code, out, err) = homefront(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("OK (1 distribution(s), 1 behavior(s), 1 origin(s), 1 bucket(s))"),
        "{out}"
    );
}

#[test]
fn check_config_reports_every_error_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: { http: \"127.0.0.1:notaport\" }\n\
         origins:\n  site: { bucket: site }\n\
         distributions:\n  - domains: [a.test]\n    behaviors:\n      - path_pattern: \"*\"\n        origin: nowhere\n        colour: blue\n\
         buckets:\n  site: {}\n",
    )
    .unwrap();
    let (code, _, err) = homefront(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let file = path.display().to_string();
    // Each error names file, line, column and key path.
    assert!(
        err.contains(&format!("{file}:1:")) && err.contains("listen.http"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:9:")) && err.contains("distributions[0].behaviors[0]") && err.contains("colour"),
        "{err}"
    );
    assert!(
        err.contains("distributions[0].behaviors[0].origin") && err.contains("nowhere"),
        "{err}"
    );
    assert!(err.lines().count() >= 4, "{err}");
}

#[test]
fn broken_yaml_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, "data_dir: ./data\nlisten: { http: \"127.0.0.1:8080\"\n").unwrap();
    let (code, _, err) = homefront(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(&path.display().to_string()), "{err}");
    let missing = dir.path().join("missing.yaml");
    let (code, _, err) = homefront(&["check-config", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn serve_refuses_a_bad_config_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "bogus_key: 1\n").unwrap();
    let (code, _, err) = homefront(&["serve", "-c", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bogus_key") && err.contains("not started"), "{err}");
}
