//! The disk backend of the bucket store.
//!
//! Layout under `data_dir/buckets/`:
//!
//! ```text
//! <bucket>/                      one directory per bucket (S3 bucket-name rules make it safe)
//!   bucket.json                  settings: canned ACL, CORS rules, versioning state
//!   objects/<hh>/<hash>.meta     JSON: the key's current version (key, size, ETag, Last-Modified,
//!                                Content-Type, ..., user metadata, version id, the name of its
//!                                data file), older versions and delete markers in `noncurrent`
//!   objects/<hh>/<hash>-<ver>.data   the bytes of one version
//!   tmp/                         uploads in progress; emptied at start
//!   uploads/<upload-id>/         multipart uploads: upload.json (key, metadata) and
//!                                part-NNNNN + part-NNNNN.json (size, ETag), until completed
//!                                (parts concatenated into one object) or aborted
//! ```
//!
//! `<hash>` is the hex SHA-256 of the object key and `<hh>` its first two digits, so any
//! key — `a` beside `a/b`, `../../etc/passwd`, any UTF-8 — maps to a fixed, safe file name
//! inside the bucket directory. Keys that S3 clients could not mean (`..` or `.` segments, a
//! leading `/`, NUL, over 1024 bytes) are refused before they reach the disk anyway.
//!
//! Crash safety: a PUT streams into `tmp/`, fsyncs, renames the data file into place under a
//! fresh `<ver>`, then writes the new `.meta` (temp + fsync + rename): the rename of the
//! metadata is the commit. A crash before it leaves an unreferenced data file, deleted at
//! the next start; after it, the object is whole. A DELETE removes the metadata (commit), then
//! the data. At start every bucket is scanned into an in-memory index (key → metadata) that
//! serves listings; data files no metadata names are removed.

mod buckets;
mod keys;
mod list;
mod meta;
mod objects;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::policy::bucket::check_bucket_name;
use buckets::BucketState;

pub use buckets::{DefaultRetention, ObjectLock};
pub use keys::{check_key, BadKey};
pub use meta::{ConditionFailed, LockMode, Locked, ObjectMeta, PartRecord, Retention, WriteCondition};
pub use objects::Deleted;

/// The bucket store on disk.
pub struct DiskStore {
    root: PathBuf,
    buckets: RwLock<HashMap<String, Arc<BucketState>>>,
}

/// Store errors, mapped to S3 errors by the API layer.
#[derive(Debug)]
pub enum StoreError {
    NoSuchBucket,
    NoSuchKey,
    NoSuchVersion,
    InvalidVersionId,
    /// The version read is a delete marker: `addressed` when the request named it by id
    /// (S3: 405), else it is the current version (404 NoSuchKey).
    DeleteMarker {
        version_id: Option<String>,
        addressed: bool,
    },
    BucketNotEmpty,
    BucketExists,
    InvalidBucketName,
    BadKey(BadKey),
    /// A conditional write's precondition does not hold (S3: 412 PreconditionFailed).
    PreconditionFailed,
    /// A conditional write whose precondition another write made false while it was being
    /// received (S3: 409 ConditionalRequestConflict).
    ConditionalConflict,
    /// Object Lock: the version is protected.
    Locked(Locked),
    /// Object Lock settings on a bucket created without it.
    ObjectLockNotEnabled,
    /// S3's 409 InvalidBucketState, with its message.
    InvalidBucketState(&'static str),
    Io(io::Error),
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NoSuchBucket => f.write_str("no such bucket"),
            StoreError::NoSuchKey => f.write_str("no such key"),
            StoreError::NoSuchVersion => f.write_str("no such version"),
            StoreError::InvalidVersionId => f.write_str("invalid version id"),
            StoreError::DeleteMarker { .. } => f.write_str("the version is a delete marker"),
            StoreError::BucketNotEmpty => f.write_str("bucket not empty"),
            StoreError::BucketExists => f.write_str("bucket exists"),
            StoreError::InvalidBucketName => f.write_str("invalid bucket name"),
            StoreError::BadKey(b) => f.write_str(b.0),
            StoreError::PreconditionFailed => f.write_str("a precondition does not hold"),
            StoreError::ConditionalConflict => f.write_str("a concurrent write made the precondition false"),
            StoreError::Locked(_) => f.write_str("the version is locked"),
            StoreError::ObjectLockNotEnabled => f.write_str("the bucket has no object lock"),
            StoreError::InvalidBucketState(m) => f.write_str(m),
            StoreError::Io(e) => write!(f, "{e}"),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn random_token() -> String {
    let mut b = [0u8; 12];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b.copy_from_slice(&t.to_le_bytes()[..12]);
    }
    hex::encode(b)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl DiskStore {
    /// Opens (creating) the store at `root`, indexes every bucket and removes leftovers of
    /// interrupted writes.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<DiskStore> {
        let root = root.into();
        crate::util::create_private_dir_all(&root)?;
        let mut buckets = HashMap::new();
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type()?.is_dir() || check_bucket_name(&name).is_err() {
                continue;
            }
            let state = Self::load_bucket(&entry.path())?;
            buckets.insert(name, Arc::new(state));
        }
        Ok(DiskStore {
            root,
            buckets: RwLock::new(buckets),
        })
    }
}
