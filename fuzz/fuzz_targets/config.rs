//! The config loader on arbitrary text (invalid UTF-8 is replaced, as any text file could
//! hold it).
//!
//! Checked: loading never panics; a refused config has at least one error and every error
//! names the file, a line and a column (1-based) and says something, in file order; loading
//! the same text again gives the same result, accepted or refused (a reload of an unchanged
//! file changes nothing). Relative paths resolve in a scratch directory that holds the files
//! and the environment holds the variables the seeds (the README's reference, the shipped
//! examples) name, so that those load and mutations start from accepted configs.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use homefront::config::{load_str, ConfigErrors};
use libfuzzer_sys::fuzz_target;

const SOURCE: &str = "fuzz.yaml";

/// A directory standing in for the config file's.
static BASE_DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = tempfile::Builder::new()
        .prefix("homefront-fuzz-config")
        .tempdir()
        .expect("scratch directory")
        .keep();
    let rsa = include_bytes!("../../tests/vectors/keys/trusted-rsa.pub.pem");
    let ec = include_bytes!("../../tests/vectors/keys/trusted-ec.pub.pem");
    // The loader only checks that certificates exist; TLS reads them later.
    for (name, content) in [
        ("keys/media.pub.pem", &rsa[..]),
        ("keys/trusted-rsa.pub.pem", rsa),
        ("keys/trusted-ec.pub.pem", ec),
        ("certs/cdn.pem", b"certificate"),
        ("certs/cdn.key", b"key"),
        ("pebble-ca.pem", b"CA"),
        ("secrets/s3.key", b"s3-secret"),
        ("secrets/minio.key", b"minio-secret"),
    ] {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("in a directory")).expect("directory");
        std::fs::write(path, content).expect("file");
    }
    for var in ["MEDIA_SECRET", "HOMEFRONT_CI_SECRET"] {
        std::env::set_var(var, "env-secret");
    }
    dir
});

fn check_errors(errors: &ConfigErrors) {
    assert!(!errors.0.is_empty(), "refused without a reason");
    for e in &errors.0 {
        assert_eq!(e.file, SOURCE);
        assert!(e.line >= 1 && e.column >= 1, "error not located: {e:?}");
        assert!(!e.message.trim().is_empty(), "error without a message: {e:?}");
    }
    assert!(
        errors
            .0
            .windows(2)
            .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)),
        "errors out of file order: {errors:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let first = load_str(SOURCE, &text, &BASE_DIR);
    let again = load_str(SOURCE, &text, &BASE_DIR);
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "a reload compiled differently"),
        (Err(a), Err(b)) => {
            check_errors(a);
            assert_eq!(a, b, "a reload reported differently");
        }
        _ => panic!(
            "accepted once and refused once: {:?} / {:?}",
            first.as_ref().err(),
            again.as_ref().err()
        ),
    }
});
