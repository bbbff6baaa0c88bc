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

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::bucket::{check_bucket_name, Versioning};
use crate::policy::cors::CorsRule;

/// What is stored beside each object: one version of it. The `.meta` file of a key holds its
/// current version, with the older ones (in a bucket that has had versioning) in `noncurrent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Hex MD5 of the content, without quotes.
    pub etag: String,
    /// Seconds since the epoch.
    pub last_modified: u64,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    /// HTTP date, as sent.
    pub expires: Option<String>,
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
    /// Object tags (at most 10).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Canned ACL `public-read`: anyone may GET/HEAD it without a signature.
    #[serde(default)]
    pub public_read: bool,
    /// File name of the data file in the same directory (empty for a delete marker).
    pub data_file: String,
    /// `None`: the `null` version (written while versioning was never enabled, or suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// A delete marker: no data; as the current version it makes the key read as deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    /// Older versions, newest first; only on the record of the current version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noncurrent: Vec<ObjectMeta>,
}

impl ObjectMeta {
    /// Every version of the key, newest first: this record's current version, then the older.
    pub fn versions(&self) -> impl Iterator<Item = &ObjectMeta> {
        std::iter::once(self).chain(self.noncurrent.iter())
    }

    /// This version without the older ones.
    pub fn alone(&self) -> ObjectMeta {
        let mut m = self.clone();
        m.noncurrent.clear();
        m
    }

    /// The version id as S3 shows it: `null` for the null version.
    pub fn version_label(&self) -> &str {
        self.version_id.as_deref().unwrap_or("null")
    }

    fn is_version(&self, id: &str) -> bool {
        self.version_label() == id
    }

    /// A record from versions listed newest first; `None` when there are none.
    fn from_versions(versions: Vec<ObjectMeta>) -> Option<ObjectMeta> {
        let mut it = versions.into_iter();
        let mut current = it.next()?;
        current.noncurrent = it.collect();
        Some(current)
    }

    /// Every version of the record, each alone, newest first.
    fn into_versions(self) -> Vec<ObjectMeta> {
        let mut current = self;
        let mut rest = std::mem::take(&mut current.noncurrent);
        rest.insert(0, current);
        rest
    }
}

/// What a DELETE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The version removed, or the version id of the delete marker created.
    pub version_id: Option<String>,
    /// A delete marker was created, or the version removed was one.
    pub delete_marker: bool,
}

/// A change to a key's record, decided from the record as it was.
enum Change<R> {
    Keep(R),
    /// New record, data files that no version names any more.
    Put(Box<ObjectMeta>, Vec<String>, R),
    Remove(Vec<String>, R),
}

/// `versionId` values we can have issued: `null` or our tokens; anything else is malformed.
fn check_version_id(v: &str) -> Result<(), StoreError> {
    if v == "null" || (!v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())) {
        Ok(())
    } else {
        Err(StoreError::InvalidVersionId)
    }
}

/// Which version of a key's record (`None`: no such key) a request reads, as its index in
/// [`ObjectMeta::versions`]: the current one without `version`, else the one with that id.
/// Missing: NoSuchKey (NoSuchVersion when an id was given); a delete marker: DeleteMarker.
fn select_version(record: Option<&ObjectMeta>, version: Option<&str>) -> Result<usize, StoreError> {
    let missing = if version.is_some() {
        StoreError::NoSuchVersion
    } else {
        StoreError::NoSuchKey
    };
    let record = record.ok_or(missing)?;
    let (i, m) = match version {
        None => (0, record),
        Some(v) => record
            .versions()
            .enumerate()
            .find(|(_, m)| m.is_version(v))
            .ok_or(StoreError::NoSuchVersion)?,
    };
    if m.delete_marker {
        return Err(StoreError::DeleteMarker {
            version_id: m.version_id.clone(),
            addressed: version.is_some(),
        });
    }
    Ok(i)
}

/// Adds `new` as the current version on top of `old`: the null version it replaces (when
/// `new` is null) leaves, its data file returned for removal.
fn push_version(old: Option<&ObjectMeta>, new: ObjectMeta) -> (ObjectMeta, Vec<String>) {
    let mut versions = old.map(|o| o.clone().into_versions()).unwrap_or_default();
    let mut garbage = Vec::new();
    if new.version_id.is_none() {
        versions.retain(|v| {
            if v.version_id.is_some() {
                return true;
            }
            if !v.data_file.is_empty() {
                garbage.push(v.data_file.clone());
            }
            false
        });
    }
    versions.insert(0, new);
    (ObjectMeta::from_versions(versions).unwrap_or_default(), garbage)
}

/// Why a key is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadKey(pub &'static str);

/// S3 allows nearly any key; we refuse those that only an attack would send.
pub fn check_key(key: &str) -> Result<(), BadKey> {
    if key.is_empty() {
        return Err(BadKey("the object key is empty"));
    }
    if key.len() > 1024 {
        return Err(BadKey("the object key is longer than 1024 bytes"));
    }
    if key.starts_with('/') {
        return Err(BadKey("the object key may not start with '/'"));
    }
    if key.contains('\0') {
        return Err(BadKey("the object key may not contain NUL"));
    }
    if key.split(['/', '\\']).any(|seg| seg == ".." || seg == ".") {
        return Err(BadKey("the object key may not contain '.' or '..' segments"));
    }
    Ok(())
}

type Index = Arc<RwLock<BTreeMap<String, Arc<ObjectMeta>>>>;

struct BucketState {
    index: Index,
    created: u64,
    /// `bucket.json`, as in memory; written through on every change.
    settings: RwLock<Arc<BucketSettings>>,
}

/// `<bucket>/bucket.json`: settings of the bucket itself.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct BucketSettings {
    /// Canned ACL `public-read` on the bucket: every object is readable without a signature.
    #[serde(default)]
    public_read: bool,
    /// CORS rules (PutBucketCors or `buckets.<name>.cors`); `None`: CORS is not enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cors: Option<Vec<CorsRule>>,
    /// `None`: versioning was never enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    versioning: Option<Versioning>,
}

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
            StoreError::Io(e) => write!(f, "{e}"),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
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

    fn load_bucket(dir: &Path) -> io::Result<BucketState> {
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        crate::util::create_private_dir_all(&tmp)?;
        let objects = dir.join("objects");
        crate::util::create_private_dir_all(&objects)?;
        let created = std::fs::metadata(dir)?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut index = BTreeMap::new();
        for fan in std::fs::read_dir(&objects)? {
            let fan = fan?.path();
            if !fan.is_dir() {
                continue;
            }
            let mut referenced = std::collections::HashSet::new();
            let mut files = Vec::new();
            for f in std::fs::read_dir(&fan)? {
                let path = f?.path();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.ends_with(".meta") {
                    let record = std::fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<ObjectMeta>(&b).ok())
                        .filter(|m| key_hash(&m.key) + ".meta" == name);
                    // Versions whose data file is gone cannot be served; the others stay.
                    let versions: Vec<ObjectMeta> = record
                        .map(|r| r.into_versions())
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|v| v.delete_marker || (!v.data_file.is_empty() && fan.join(&v.data_file).is_file()))
                        .collect();
                    match ObjectMeta::from_versions(versions) {
                        Some(meta) => {
                            for v in meta.versions() {
                                referenced.insert(v.data_file.clone());
                            }
                            index.insert(meta.key.clone(), Arc::new(meta));
                        }
                        None => {
                            tracing::warn!("bucket store: removing unreadable metadata {}", path.display());
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                } else {
                    files.push((name, path));
                }
            }
            for (name, path) in files {
                if !referenced.contains(&name) {
                    // A data file of an interrupted or superseded write.
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let settings: BucketSettings = std::fs::read(dir.join("bucket.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(BucketState {
            index: Arc::new(RwLock::new(index)),
            created,
            settings: RwLock::new(Arc::new(settings)),
        })
    }

    fn bucket(&self, name: &str) -> Result<Arc<BucketState>, StoreError> {
        self.buckets
            .read()
            .map_err(|_| StoreError::Io(io::Error::other("bucket table poisoned")))?
            .get(name)
            .cloned()
            .ok_or(StoreError::NoSuchBucket)
    }

    fn settings(&self, name: &str) -> Result<Arc<BucketSettings>, StoreError> {
        let b = self.bucket(name)?;
        let s = b
            .settings
            .read()
            .map_err(|_| StoreError::Io(io::Error::other("bucket settings poisoned")))?
            .clone();
        Ok(s)
    }

    /// Changes `bucket.json` crash-safely, then in memory.
    fn update_settings(&self, name: &str, change: impl FnOnce(&mut BucketSettings)) -> Result<(), StoreError> {
        let b = self.bucket(name)?;
        let mut guard = b
            .settings
            .write()
            .map_err(|_| StoreError::Io(io::Error::other("bucket settings poisoned")))?;
        let mut next = (**guard).clone();
        change(&mut next);
        let json = serde_json::to_vec(&next).map_err(|e| StoreError::Io(io::Error::other(e)))?;
        crate::util::write_file_atomic(
            &self.root.join(name).join("bucket.json"),
            &json,
            crate::util::PRIVATE_FILE_MODE,
        )?;
        *guard = Arc::new(next);
        Ok(())
    }

    /// Sets the bucket's canned ACL (`public-read` or private), persisted in `bucket.json`.
    pub fn set_bucket_public_read(&self, name: &str, public_read: bool) -> Result<(), StoreError> {
        self.update_settings(name, |s| s.public_read = public_read)
    }

    pub fn bucket_public_read(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.settings(name)?.public_read)
    }

    /// Sets (or with `None` removes) the bucket's CORS rules, persisted in `bucket.json`.
    pub fn set_bucket_cors(&self, name: &str, rules: Option<Vec<CorsRule>>) -> Result<(), StoreError> {
        self.update_settings(name, |s| s.cors = rules)
    }

    /// The bucket's CORS rules; `None` when CORS is not enabled.
    pub fn bucket_cors(&self, name: &str) -> Result<Option<Vec<CorsRule>>, StoreError> {
        Ok(self.settings(name)?.cors.clone())
    }

    /// Turns versioning on or suspends it, persisted in `bucket.json`.
    pub fn set_versioning(&self, name: &str, state: Versioning) -> Result<(), StoreError> {
        self.update_settings(name, |s| s.versioning = Some(state))
    }

    /// The bucket's versioning state; `None` when it was never enabled.
    pub fn versioning(&self, name: &str) -> Result<Option<Versioning>, StoreError> {
        Ok(self.settings(name)?.versioning)
    }

    /// May an unsigned request read this object? (Object or bucket is `public-read`.)
    /// (The ACL of the version read decides: an older version keeps its own.)
    pub fn anonymous_read_allowed(&self, bucket: &str, key: &str, version: Option<&str>) -> bool {
        if self.bucket_public_read(bucket).unwrap_or(false) {
            return true;
        }
        self.head_version(bucket, key, version)
            .map(|m| m.public_read)
            .unwrap_or(false)
    }

    pub fn bucket_exists(&self, name: &str) -> bool {
        self.bucket(name).is_ok()
    }

    /// Bucket names with their creation time (seconds), sorted.
    pub fn list_buckets(&self) -> Vec<(String, u64)> {
        let map = self
            .buckets
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.created)).collect::<Vec<_>>());
        let mut list = map.unwrap_or_default();
        list.sort();
        list
    }

    pub fn create_bucket(&self, name: &str) -> Result<(), StoreError> {
        if check_bucket_name(name).is_err() {
            return Err(StoreError::InvalidBucketName);
        }
        let mut map = self
            .buckets
            .write()
            .map_err(|_| StoreError::Io(io::Error::other("bucket table poisoned")))?;
        if map.contains_key(name) {
            return Err(StoreError::BucketExists);
        }
        let dir = self.root.join(name);
        crate::util::create_private_dir_all(&dir.join("objects"))?;
        crate::util::create_private_dir_all(&dir.join("tmp"))?;
        sync_dir(&self.root)?;
        map.insert(
            name.to_string(),
            Arc::new(BucketState {
                index: Arc::default(),
                created: now_secs(),
                settings: RwLock::default(),
            }),
        );
        Ok(())
    }

    /// Creates the bucket if it is missing.
    pub fn ensure_bucket(&self, name: &str) -> io::Result<()> {
        match self.create_bucket(name) {
            Ok(()) | Err(StoreError::BucketExists) => Ok(()),
            Err(StoreError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())),
        }
    }

    pub fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        let mut map = self
            .buckets
            .write()
            .map_err(|_| StoreError::Io(io::Error::other("bucket table poisoned")))?;
        let state = map.get(name).ok_or(StoreError::NoSuchBucket)?;
        if !state.index.read().map(|i| i.is_empty()).unwrap_or(false) {
            return Err(StoreError::BucketNotEmpty);
        }
        std::fs::remove_dir_all(self.root.join(name))?;
        map.remove(name);
        Ok(())
    }

    pub fn bucket_is_empty(&self, name: &str) -> io::Result<bool> {
        let b = self
            .bucket(name)
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?;
        let empty = b.index.read().map(|i| i.is_empty()).unwrap_or(true);
        Ok(empty)
    }

    /// The current version of `key`.
    pub fn head(&self, bucket: &str, key: &str) -> Result<Arc<ObjectMeta>, StoreError> {
        self.head_version(bucket, key, None)
    }

    /// A version of `key`: the current one, or the one with id `version` (`null` names the
    /// null version). A delete marker is an error ([`StoreError::DeleteMarker`]).
    pub fn head_version(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Arc<ObjectMeta>, StoreError> {
        check_key(key).map_err(StoreError::BadKey)?;
        if let Some(v) = version {
            check_version_id(v)?;
        }
        let b = self.bucket(bucket)?;
        let record = b.index.read().ok().and_then(|i| i.get(key).cloned());
        let i = select_version(record.as_deref(), version)?;
        match record {
            Some(record) if i == 0 => Ok(record),
            Some(record) => Ok(Arc::new(record.noncurrent[i - 1].alone())),
            None => Err(StoreError::NoSuchKey),
        }
    }

    /// The directory of `key`'s files and the hash they are named by. Public only for the
    /// fuzz targets (`fuzz/`).
    #[doc(hidden)]
    pub fn object_dir(&self, bucket: &str, key: &str) -> (PathBuf, String) {
        let h = key_hash(key);
        (self.root.join(bucket).join("objects").join(&h[..2]), h)
    }

    /// Opens a version's data (see [`Self::head_version`]) for reading, with its metadata.
    /// Retries once if a concurrent overwrite replaced the data file between the index lookup
    /// and the open.
    pub fn open_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(Arc<ObjectMeta>, std::fs::File), StoreError> {
        for _ in 0..2 {
            let meta = self.head_version(bucket, key, version)?;
            let (dir, _) = self.object_dir(bucket, key);
            match std::fs::File::open(dir.join(&meta.data_file)) {
                Ok(f) => return Ok((meta, f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NoSuchKey)
    }

    /// The directory of an existing bucket.
    pub fn bucket_dir(&self, bucket: &str) -> Result<PathBuf, StoreError> {
        self.bucket(bucket)?;
        Ok(self.root.join(bucket))
    }

    /// A temp file for an upload into `bucket`.
    pub fn temp_path(&self, bucket: &str) -> Result<PathBuf, StoreError> {
        self.bucket(bucket)?;
        Ok(self.root.join(bucket).join("tmp").join(random_token()))
    }

    /// Changes the record of `key` crash-safely: `decide` sees the record as it is and says
    /// what it becomes; the new `.meta` is written and fsynced outside the index lock, then
    /// renamed into place (the commit) under it, provided nobody changed the record meanwhile
    /// (else `decide` runs again on the newer one). Data files the change orphaned are
    /// removed after the commit. Returns the new record and `decide`'s answer.
    fn write_record<R>(
        &self,
        bucket: &str,
        key: &str,
        mut decide: impl FnMut(Option<&ObjectMeta>) -> Result<Change<R>, StoreError>,
    ) -> Result<(Option<Arc<ObjectMeta>>, R), StoreError> {
        let b = self.bucket(bucket)?;
        let (dir, hash) = self.object_dir(bucket, key);
        let meta_path = dir.join(format!("{hash}.meta"));
        loop {
            let old = b
                .index
                .read()
                .map_err(|_| StoreError::Io(io::Error::other("index poisoned")))?
                .get(key)
                .cloned();
            let change = decide(old.as_deref())?;
            let staged = match &change {
                Change::Put(record, _, _) => {
                    let json = serde_json::to_vec(record).map_err(|e| StoreError::Io(io::Error::other(e)))?;
                    let tmp = self
                        .root
                        .join(bucket)
                        .join("tmp")
                        .join(format!("{}.meta", random_token()));
                    use std::io::Write;
                    let mut f = crate::util::create_private_file(&tmp)?;
                    f.write_all(&json)?;
                    f.sync_all()?;
                    Some(tmp)
                }
                _ => None,
            };
            let mut index = b
                .index
                .write()
                .map_err(|_| StoreError::Io(io::Error::other("index poisoned")))?;
            let unchanged = match (index.get(key), &old) {
                (None, None) => true,
                (Some(now), Some(then)) => Arc::ptr_eq(now, then),
                _ => false,
            };
            if !unchanged {
                drop(index);
                if let Some(tmp) = staged {
                    let _ = std::fs::remove_file(tmp);
                }
                continue;
            }
            let (record, garbage, out) = match change {
                Change::Keep(out) => return Ok((old, out)),
                Change::Put(record, garbage, out) => {
                    let tmp = staged.unwrap_or_default();
                    if let Err(e) = std::fs::rename(&tmp, &meta_path) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.into());
                    }
                    let record = Arc::new(*record);
                    index.insert(key.to_string(), record.clone());
                    (Some(record), garbage, out)
                }
                Change::Remove(garbage, out) => {
                    match std::fs::remove_file(&meta_path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                    index.remove(key);
                    (None, garbage, out)
                }
            };
            drop(index);
            let _ = sync_dir(&dir);
            for file in garbage {
                let _ = std::fs::remove_file(dir.join(file));
            }
            return Ok((record, out));
        }
    }

    /// A fresh version id when the bucket has versioning enabled; `None` (the null version)
    /// otherwise.
    fn new_version_id(&self, bucket: &str) -> Result<Option<String>, StoreError> {
        Ok((self.versioning(bucket)? == Some(Versioning::Enabled)).then(random_token))
    }

    /// Commits a fully written and fsynced temp file as `key` with `meta` (whose `key`,
    /// `data_file`, `last_modified` and `version_id` are filled in here). In a bucket with
    /// versioning enabled it becomes a new version; otherwise it replaces the null version.
    pub fn commit(
        &self,
        bucket: &str,
        key: &str,
        temp: &Path,
        mut meta: ObjectMeta,
    ) -> Result<Arc<ObjectMeta>, StoreError> {
        check_key(key).map_err(StoreError::BadKey)?;
        let version_id = self.new_version_id(bucket)?;
        let (dir, hash) = self.object_dir(bucket, key);
        crate::util::create_private_dir_all(&dir)?;
        let data_file = format!("{hash}-{}.data", random_token());
        std::fs::rename(temp, dir.join(&data_file))?;
        meta.key = key.to_string();
        meta.data_file = data_file.clone();
        meta.last_modified = now_secs();
        meta.version_id = version_id;
        meta.delete_marker = false;
        meta.noncurrent.clear();
        let result = self.write_record(bucket, key, |old| {
            let (record, garbage) = push_version(old, meta.clone());
            Ok(Change::Put(Box::new(record), garbage, ()))
        });
        match result {
            Ok((Some(record), ())) => Ok(record),
            Ok((None, ())) => Err(StoreError::NoSuchKey),
            Err(e) => {
                let _ = std::fs::remove_file(dir.join(&data_file));
                Err(e)
            }
        }
    }

    /// Rewrites the metadata of a version (the current one when `version` is `None`), same
    /// data, atomically: e.g. its tags.
    pub fn update_meta(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        change: impl Fn(&mut ObjectMeta),
    ) -> Result<Arc<ObjectMeta>, StoreError> {
        check_key(key).map_err(StoreError::BadKey)?;
        if let Some(v) = version {
            check_version_id(v)?;
        }
        let (_, updated) = self.write_record(bucket, key, |old| {
            let i = select_version(old, version)?;
            let mut versions = old.ok_or(StoreError::NoSuchKey)?.clone().into_versions();
            change(&mut versions[i]);
            let updated = Arc::new(versions[i].clone());
            let record = ObjectMeta::from_versions(versions).unwrap_or_default();
            Ok(Change::Put(Box::new(record), Vec::new(), updated))
        })?;
        Ok(updated)
    }

    /// Deletes `key` as S3 does. Without `version`: unversioned, the object goes (deleting a
    /// missing key succeeds); versioning enabled, a delete marker becomes the current version;
    /// suspended, a null delete marker replaces the null version. With `version`: that version
    /// goes for good (the next older one becomes current); a missing version succeeds.
    pub fn delete(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Deleted, StoreError> {
        check_key(key).map_err(StoreError::BadKey)?;
        if let Some(v) = version {
            check_version_id(v)?;
        }
        let versioning = self.versioning(bucket)?;
        let (_, deleted) = self.write_record(bucket, key, |old| {
            if let Some(v) = version {
                let mut versions = old.map(|o| o.clone().into_versions()).unwrap_or_default();
                let Some(i) = versions.iter().position(|m| m.is_version(v)) else {
                    return Ok(Change::Keep(Deleted {
                        version_id: Some(v.to_string()),
                        delete_marker: false,
                    }));
                };
                let gone = versions.remove(i);
                let deleted = Deleted {
                    version_id: Some(v.to_string()),
                    delete_marker: gone.delete_marker,
                };
                let garbage = (!gone.data_file.is_empty())
                    .then_some(gone.data_file)
                    .into_iter()
                    .collect();
                return Ok(match ObjectMeta::from_versions(versions) {
                    Some(record) => Change::Put(Box::new(record), garbage, deleted),
                    None => Change::Remove(garbage, deleted),
                });
            }
            match versioning {
                None => {
                    let Some(old) = old else {
                        return Ok(Change::Keep(Deleted::default()));
                    };
                    let garbage = old
                        .versions()
                        .map(|m| m.data_file.clone())
                        .filter(|f| !f.is_empty())
                        .collect();
                    Ok(Change::Remove(garbage, Deleted::default()))
                }
                Some(state) => {
                    let marker = ObjectMeta {
                        key: key.to_string(),
                        last_modified: now_secs(),
                        version_id: (state == Versioning::Enabled).then(random_token),
                        delete_marker: true,
                        ..Default::default()
                    };
                    let deleted = Deleted {
                        version_id: Some(marker.version_label().to_string()),
                        delete_marker: true,
                    };
                    let (record, garbage) = push_version(old, marker);
                    Ok(Change::Put(Box::new(record), garbage, deleted))
                }
            }
        })?;
        Ok(deleted)
    }

    /// Records (a key's current version with its older ones) after `after` (exclusive, or
    /// inclusive when `inclusive`) starting with `prefix`, in key order, at most `limit`,
    /// those `keep` accepts. Returns them and whether more follow.
    pub fn list_records(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        inclusive: bool,
        limit: usize,
        mut keep: impl FnMut(&ObjectMeta) -> bool,
    ) -> Result<(Vec<Arc<ObjectMeta>>, bool), StoreError> {
        let b = self.bucket(bucket)?;
        let index = b
            .index
            .read()
            .map_err(|_| StoreError::Io(io::Error::other("index poisoned")))?;
        let start = match after {
            Some(a) if a >= prefix && inclusive => std::ops::Bound::Included(a.to_string()),
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a.to_string()),
            _ => std::ops::Bound::Included(prefix.to_string()),
        };
        let mut out = Vec::new();
        for (k, meta) in index.range((start, std::ops::Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if !keep(meta) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(meta.clone());
        }
        Ok((out, false))
    }

    /// Current objects (keys whose current version is not a delete marker) after `after`
    /// (exclusive) starting with `prefix`, in order, at most `limit`. Returns the entries and
    /// whether more follow.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&ObjectMeta) -> bool,
    ) -> Result<(Vec<Arc<ObjectMeta>>, bool), StoreError> {
        self.list_records(bucket, prefix, after, false, limit, |m| !m.delete_marker && keep(m))
    }

    /// Writes `data` as an object through the same crash-safe path as a PUT.
    pub fn put_object_bytes(&self, bucket: &str, key: &str, content_type: &str, data: &[u8]) -> io::Result<()> {
        let to_io = |e: StoreError| match e {
            StoreError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        };
        let temp = self.temp_path(bucket).map_err(to_io)?;
        {
            use std::io::Write;
            let mut f = crate::util::create_private_file(&temp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        let meta = ObjectMeta {
            size: data.len() as u64,
            etag: hex::encode(<md5::Md5 as md5::Digest>::digest(data)),
            content_type: Some(content_type.to_string()),
            ..Default::default()
        };
        self.commit(bucket, key, &temp, meta).map_err(to_io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("a").is_ok());
        assert!(check_key("a/b/c.txt").is_ok());
        assert!(check_key("a..b/...").is_ok());
        assert!(check_key("ünïcödé/ключ").is_ok());
        for bad in ["", "/abs", "../../etc/passwd", "a/../b", "a/./b", "a\0b", "..\\x"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn put_get_list_delete_and_coexisting_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("site").unwrap();
        s.ensure_bucket("site").unwrap();
        assert!(s.bucket_is_empty("site").unwrap());
        s.put_object_bytes("site", "a", "text/plain", b"A").unwrap();
        s.put_object_bytes("site", "a/b", "text/plain", b"AB").unwrap();
        s.put_object_bytes("site", "b", "text/plain", b"B").unwrap();
        let m = s.head("site", "a/b").unwrap();
        assert_eq!(m.size, 2);
        assert_eq!(m.etag, "b86fc6b051f63d73de262d4c34e3a0a9");
        let (all, more) = s.list("site", "", None, 10, |_| true).unwrap();
        assert_eq!(
            all.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            ["a", "a/b", "b"]
        );
        assert!(!more);
        let (page, more) = s.list("site", "", Some("a"), 1, |_| true).unwrap();
        assert_eq!((page[0].key.as_str(), more), ("a/b", true));
        let (pre, _) = s.list("site", "a/", None, 10, |_| true).unwrap();
        assert_eq!(pre.len(), 1);
        s.delete("site", "a", None).unwrap();
        s.delete("site", "a", None).unwrap();
        assert!(matches!(s.head("site", "a"), Err(StoreError::NoSuchKey)));
        assert!(matches!(s.head("nope", "a"), Err(StoreError::NoSuchBucket)));
        assert!(matches!(s.head("site", "../x"), Err(StoreError::BadKey(_))));

        // Reopening rebuilds the same index.
        drop(s);
        let s = DiskStore::open(dir.path()).unwrap();
        let (all, _) = s.list("site", "", None, 10, |_| true).unwrap();
        assert_eq!(all.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(), ["a/b", "b"]);
        let (m, mut f) = s.open_object("site", "b", None).unwrap();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut f, &mut body).unwrap();
        assert_eq!((m.size, body.as_str()), (1, "B"));
    }

    #[test]
    fn overwrite_replaces_data_and_removes_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("site").unwrap();
        s.put_object_bytes("site", "k", "text/plain", b"one").unwrap();
        s.put_object_bytes("site", "k", "text/plain", b"two!").unwrap();
        let (m, _) = s.open_object("site", "k", None).unwrap();
        assert_eq!(m.size, 4);
        let (objdir, _) = s.object_dir("site", "k");
        assert_eq!(std::fs::read_dir(objdir).unwrap().count(), 2, "one .meta and one .data");
    }

    #[test]
    fn leftovers_of_interrupted_writes_are_cleaned_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("site").unwrap();
        s.put_object_bytes("site", "k", "text/plain", b"whole").unwrap();
        let (objdir, hash) = s.object_dir("site", "k");
        drop(s);
        // A crash after the data rename but before the metadata commit.
        std::fs::write(objdir.join(format!("{hash}-deadbeef.data")), b"half").unwrap();
        // A crash mid-upload.
        std::fs::write(dir.path().join("site/tmp/upload"), b"partial").unwrap();
        // Metadata of a key that was never committed (torn write of the .meta temp).
        std::fs::create_dir_all(dir.path().join("site/objects/zz")).unwrap();
        std::fs::write(dir.path().join("site/objects/zz/garbage.meta"), b"{not json").unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("site/tmp")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&objdir).unwrap().count(), 2);
        assert!(!dir.path().join("site/objects/zz/garbage.meta").exists());
        let (m, _) = s.open_object("site", "k", None).unwrap();
        assert_eq!(m.size, 5);
    }

    #[test]
    fn buckets() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        assert!(matches!(
            s.create_bucket("Bad_Name"),
            Err(StoreError::InvalidBucketName)
        ));
        s.create_bucket("one").unwrap();
        assert!(matches!(s.create_bucket("one"), Err(StoreError::BucketExists)));
        s.put_object_bytes("one", "x", "text/plain", b"x").unwrap();
        assert!(matches!(s.delete_bucket("one"), Err(StoreError::BucketNotEmpty)));
        s.delete("one", "x", None).unwrap();
        s.delete_bucket("one").unwrap();
        assert!(s.list_buckets().is_empty());
    }

    fn read(s: &DiskStore, key: &str, version: Option<&str>) -> String {
        let (_, mut f) = s.open_object("site", key, version).unwrap();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut f, &mut body).unwrap();
        body
    }

    #[test]
    fn versioning_keeps_versions_delete_markers_and_the_null_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("site").unwrap();
        s.put_object_bytes("site", "k", "text/plain", b"null-1").unwrap();
        assert_eq!(s.versioning("site").unwrap(), None);
        s.set_versioning("site", Versioning::Enabled).unwrap();
        s.put_object_bytes("site", "k", "text/plain", b"v2").unwrap();
        s.put_object_bytes("site", "k", "text/plain", b"v3").unwrap();
        let v3 = s.head("site", "k").unwrap();
        let ids: Vec<String> = v3.versions().map(|m| m.version_label().to_string()).collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[2], "null", "the object from before versioning is the null version");
        assert_eq!(read(&s, "k", None), "v3");
        assert_eq!(read(&s, "k", Some(&ids[1])), "v2");
        assert_eq!(read(&s, "k", Some("null")), "null-1");
        assert!(matches!(
            s.head_version("site", "k", Some("abc123")),
            Err(StoreError::NoSuchVersion)
        ));
        assert!(matches!(
            s.head_version("site", "k", Some("../x")),
            Err(StoreError::InvalidVersionId)
        ));

        // DELETE adds a marker: the key reads as deleted and leaves listings, versions stay.
        let d = s.delete("site", "k", None).unwrap();
        assert!(d.delete_marker);
        let marker = d.version_id.clone().unwrap();
        assert!(matches!(
            s.head("site", "k"),
            Err(StoreError::DeleteMarker { addressed: false, .. })
        ));
        assert!(matches!(
            s.head_version("site", "k", Some(&marker)),
            Err(StoreError::DeleteMarker { addressed: true, .. })
        ));
        assert!(s.list("site", "", None, 10, |_| true).unwrap().0.is_empty());
        assert_eq!(
            s.list_records("site", "", None, false, 10, |_| true).unwrap().0.len(),
            1
        );
        assert!(matches!(s.delete_bucket("site"), Err(StoreError::BucketNotEmpty)));
        assert_eq!(read(&s, "k", Some(&ids[0])), "v3");

        // Removing the marker by id brings v3 back; removing v3 by id makes v2 current.
        let d = s.delete("site", "k", Some(&marker)).unwrap();
        assert!(d.delete_marker);
        assert_eq!(read(&s, "k", None), "v3");
        s.delete("site", "k", Some(&ids[0])).unwrap();
        assert_eq!(read(&s, "k", None), "v2");
        let (objdir, _) = s.object_dir("site", "k");
        assert_eq!(
            std::fs::read_dir(&objdir).unwrap().count(),
            3,
            "one .meta and two .data"
        );

        // Suspended: writes replace the null version only.
        s.set_versioning("site", Versioning::Suspended).unwrap();
        s.put_object_bytes("site", "k", "text/plain", b"null-2").unwrap();
        let now = s.head("site", "k").unwrap();
        assert_eq!(
            now.versions().map(|m| m.version_label()).collect::<Vec<_>>(),
            ["null", ids[1].as_str()]
        );
        assert_eq!(read(&s, "k", Some("null")), "null-2");
        assert_eq!(std::fs::read_dir(&objdir).unwrap().count(), 3, "null-1's data is gone");
        let d = s.delete("site", "k", None).unwrap();
        assert_eq!((d.version_id.as_deref(), d.delete_marker), (Some("null"), true));
        assert_eq!(std::fs::read_dir(&objdir).unwrap().count(), 2, "null-2's data is gone");

        // All of it survives a restart.
        drop(s);
        let s = DiskStore::open(dir.path()).unwrap();
        assert_eq!(s.versioning("site").unwrap(), Some(Versioning::Suspended));
        assert!(matches!(s.head("site", "k"), Err(StoreError::DeleteMarker { .. })));
        assert_eq!(read(&s, "k", Some(&ids[1])), "v2");
        // Deleting every version removes the key.
        s.delete("site", "k", Some("null")).unwrap();
        s.delete("site", "k", Some(&ids[1])).unwrap();
        assert!(s
            .list_records("site", "", None, false, 10, |_| true)
            .unwrap()
            .0
            .is_empty());
        assert_eq!(std::fs::read_dir(&objdir).unwrap().count(), 0);
        s.delete_bucket("site").unwrap();
    }

    #[test]
    fn metadata_from_before_versioning_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("site").unwrap();
        s.put_object_bytes("site", "k", "text/plain", b"old").unwrap();
        let (objdir, hash) = s.object_dir("site", "k");
        let json = std::fs::read_to_string(objdir.join(format!("{hash}.meta"))).unwrap();
        assert!(!json.contains("version_id") && !json.contains("noncurrent"), "{json}");
        drop(s);
        let s = DiskStore::open(dir.path()).unwrap();
        assert_eq!(read(&s, "k", None), "old");
    }
}
