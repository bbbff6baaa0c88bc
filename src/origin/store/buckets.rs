//! Buckets: their state in memory (the index of their keys, `bucket.json`), loading one at
//! start, their settings (ACL, CORS, versioning), creating, deleting and listing them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::keys::key_hash;
use super::meta::{LockMode, ObjectMeta, Retention};
use super::{now_secs, random_token, sync_dir, DiskStore, StoreError};
use crate::policy::bucket::{check_bucket_name, Versioning};
use crate::policy::cors::CorsRule;

type Index = Arc<RwLock<BTreeMap<String, Arc<ObjectMeta>>>>;

pub(super) struct BucketState {
    pub(super) index: Index,
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
    /// Object Lock; `None`: the bucket was created without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object_lock: Option<ObjectLock>,
    /// Bucket tags (PutBucketTagging).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
}

/// A bucket's Object Lock configuration: enabled, with an optional default retention for new
/// versions.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<DefaultRetention>,
}

/// The retention new versions get when their upload names none: a mode and a period in days
/// or years (one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: LockMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
}

impl DefaultRetention {
    /// The retention of a version written at `now_ms`.
    pub fn from(&self, now_ms: i64) -> Retention {
        const DAY_MS: i64 = 86_400_000;
        let days = i64::from(self.days.unwrap_or(0)) + 365 * i64::from(self.years.unwrap_or(0));
        Retention {
            mode: self.mode,
            until_ms: now_ms.saturating_add(days.saturating_mul(DAY_MS)),
        }
    }
}

/// Writes a bucket's `bucket.json` crash-safely.
fn write_settings(dir: &Path, settings: &BucketSettings) -> Result<(), StoreError> {
    let json = serde_json::to_vec(settings).map_err(|e| StoreError::Io(io::Error::other(e)))?;
    crate::util::write_file_atomic(&dir.join("bucket.json"), &json, crate::util::PRIVATE_FILE_MODE)?;
    Ok(())
}

impl DiskStore {
    pub(super) fn load_bucket(dir: &Path) -> io::Result<BucketState> {
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

    pub(super) fn bucket(&self, name: &str) -> Result<Arc<BucketState>, StoreError> {
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
        write_settings(&self.root.join(name), &next)?;
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
    /// A bucket with Object Lock keeps versioning enabled.
    pub fn set_versioning(&self, name: &str, state: Versioning) -> Result<(), StoreError> {
        let mut refused = false;
        self.update_settings(name, |s| {
            if s.object_lock.is_some() && state != Versioning::Enabled {
                refused = true;
            } else {
                s.versioning = Some(state);
            }
        })?;
        if refused {
            return Err(StoreError::InvalidBucketState(
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
            ));
        }
        Ok(())
    }

    /// The bucket's versioning state; `None` when it was never enabled.
    pub fn versioning(&self, name: &str) -> Result<Option<Versioning>, StoreError> {
        Ok(self.settings(name)?.versioning)
    }

    /// The bucket's Object Lock configuration; `None` when it has none.
    pub fn object_lock(&self, name: &str) -> Result<Option<ObjectLock>, StoreError> {
        Ok(self.settings(name)?.object_lock.clone())
    }

    /// Sets the Object Lock configuration. Versioning must be enabled (it stays so: see
    /// [`Self::set_versioning`]).
    pub fn set_object_lock(&self, name: &str, lock: ObjectLock) -> Result<(), StoreError> {
        let mut refused = false;
        self.update_settings(name, |s| {
            if s.versioning == Some(Versioning::Enabled) {
                s.object_lock = Some(lock);
            } else {
                refused = true;
            }
        })?;
        if refused {
            return Err(StoreError::InvalidBucketState(
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
            ));
        }
        Ok(())
    }

    /// The bucket's tags.
    pub fn bucket_tags(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(self.settings(name)?.tags.clone())
    }

    /// Replaces the bucket's tags (empty: removes them).
    pub fn set_bucket_tags(&self, name: &str, tags: BTreeMap<String, String>) -> Result<(), StoreError> {
        self.update_settings(name, |s| s.tags = tags)
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
        self.create_bucket_with(name, false)
    }

    /// Creates a bucket; with `object_lock`, with Object Lock (and so versioning) enabled from
    /// the start: `bucket.json` says so before the bucket exists for anyone.
    pub fn create_bucket_with(&self, name: &str, object_lock: bool) -> Result<(), StoreError> {
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
        let mut settings = BucketSettings::default();
        if object_lock {
            settings.versioning = Some(Versioning::Enabled);
            settings.object_lock = Some(ObjectLock::default());
            write_settings(&dir, &settings)?;
        }
        sync_dir(&self.root)?;
        map.insert(
            name.to_string(),
            Arc::new(BucketState {
                index: Arc::default(),
                created: now_secs(),
                settings: RwLock::new(Arc::new(settings)),
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
