//! The bucket store's names → paths: object keys (`check_key`, `DiskStore::object_dir`),
//! bucket names (`check_bucket_name`) and multipart upload ids (`valid_upload_id`).
//!
//! Input: two object keys, a bucket name and an upload id, drawn from the bytes.
//!
//! Checked: `check_key` refuses exactly the keys the store's rules name (empty, over 1024
//! bytes, a leading `/`, NUL, a `.` or `..` segment between `/` or `\`); for an accepted
//! key, its `.meta` and `.data` files lie exactly two plain components below
//! `<bucket>/objects/` (no `..`, no root, no NUL), in the fan-out directory named by the
//! first two digits of the key's hex SHA-256, which names the files (the documented disk
//! layout); two different keys never share a path, the same key always gets the same one;
//! an accepted bucket name or upload id is one plain path component.
#![no_main]

use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use homefront::origin::multipart::valid_upload_id;
use homefront::origin::store::{check_key, DiskStore};
use homefront::policy::bucket::check_bucket_name;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const BUCKET: &str = "bkt";

static STORE: LazyLock<(PathBuf, DiskStore)> = LazyLock::new(|| {
    let root = tempfile::Builder::new()
        .prefix("homefront-fuzz-store")
        .tempdir()
        .expect("scratch directory")
        .keep();
    let store = DiskStore::open(&root).expect("store");
    store.ensure_bucket(BUCKET).expect("bucket");
    (root, store)
});

/// The rules as the store's documentation states them.
fn key_allowed(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && !key.contains('\0')
        && key.split(['/', '\\']).all(|segment| segment != "." && segment != "..")
}

fn is_one_plain_component(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(parts.next(), Some(Component::Normal(n)) if n == name) && parts.next().is_none()
}

/// Where `key`'s metadata and one of its data files live; checks they are well placed.
fn files_of(key: &str) -> [PathBuf; 2] {
    let (root, store) = &*STORE;
    let (dir, hash) = store.object_dir(BUCKET, key);
    assert_eq!(
        store.object_dir(BUCKET, key),
        (dir.clone(), hash.clone()),
        "not deterministic"
    );

    let sha256 = openssl::sha::sha256(key.as_bytes());
    let expected: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, expected, "files are named by the key's hex SHA-256");

    let objects = root.join(BUCKET).join("objects");
    let files = [
        dir.join(format!("{hash}.meta")),
        dir.join(format!("{hash}-0123456789abcdef01234567.data")),
    ];
    for file in &files {
        let below = file.strip_prefix(&objects).expect("outside the bucket's objects/");
        let parts: Vec<Component<'_>> = below.components().collect();
        assert_eq!(parts.len(), 2, "{below:?}");
        assert!(parts.iter().all(|c| matches!(c, Component::Normal(_))), "{below:?}");
        assert_eq!(parts[0].as_os_str(), &hash[..2], "fan-out directory");
        assert!(!file.as_os_str().as_encoded_bytes().contains(&0), "NUL in {file:?}");
    }
    files
}

fn check(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let keys: [String; 2] = [u.arbitrary()?, u.arbitrary()?];
    let mut placed = Vec::new();
    for key in &keys {
        let accepted = check_key(key).is_ok();
        assert_eq!(accepted, key_allowed(key), "check_key({key:?})");
        if accepted {
            placed.push((key, files_of(key)));
        }
    }
    if let [(a, files_a), (b, files_b)] = placed.as_slice() {
        let shared = files_a.iter().any(|f| files_b.contains(f));
        assert_eq!(shared, a == b, "keys {a:?} and {b:?}");
    }

    let bucket: String = u.arbitrary()?;
    if check_bucket_name(&bucket).is_ok() {
        assert!(is_one_plain_component(&bucket), "bucket {bucket:?}");
    }
    let upload_id: String = u.arbitrary()?;
    if valid_upload_id(&upload_id) {
        assert!(is_one_plain_component(&upload_id), "upload id {upload_id:?}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = check(data);
});
