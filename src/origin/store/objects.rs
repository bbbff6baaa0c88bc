//! Objects: reading a version, the crash-safe write of a key's record (commit of a PUT,
//! metadata updates, deletes and delete markers).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::keys::{check_key, key_hash};
use super::meta::{check_version_id, push_version, select_version, ConditionFailed, ObjectMeta, WriteCondition};
use super::{now_secs, random_token, sync_dir, DiskStore, StoreError};
use crate::policy::bucket::Versioning;

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

impl DiskStore {
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
                    // A key's first record may be a delete marker: its directory may not
                    // exist yet (a PUT creates it for its data file).
                    let renamed =
                        crate::util::create_private_dir_all(&dir).and_then(|()| std::fs::rename(&tmp, &meta_path));
                    if let Err(e) = renamed {
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
        meta: ObjectMeta,
    ) -> Result<Arc<ObjectMeta>, StoreError> {
        self.commit_if(bucket, key, temp, meta, &WriteCondition::default())
    }

    /// Checks a write condition on the key's record as it is now, before the body is
    /// received: [`StoreError::NoSuchKey`] for `If-Match` on a missing key (S3's 404),
    /// [`StoreError::PreconditionFailed`] otherwise (412). The commit checks it again
    /// ([`Self::commit_if`]).
    pub fn check_condition(&self, bucket: &str, key: &str, condition: &WriteCondition) -> Result<(), StoreError> {
        if condition.is_none() {
            return Ok(());
        }
        let current = match self.head(bucket, key) {
            Ok(m) => Some(m),
            Err(StoreError::NoSuchKey | StoreError::DeleteMarker { .. }) => None,
            Err(e) => return Err(e),
        };
        condition.check(current.as_deref()).map_err(|f| match f {
            ConditionFailed::Missing => StoreError::NoSuchKey,
            ConditionFailed::Failed => StoreError::PreconditionFailed,
        })
    }

    /// [`Self::commit`], provided `condition` holds on the key's record at the commit; else
    /// [`StoreError::ConditionalConflict`] (the caller checked it before receiving the body:
    /// it became false meanwhile) and nothing changes.
    pub fn commit_if(
        &self,
        bucket: &str,
        key: &str,
        temp: &Path,
        mut meta: ObjectMeta,
        condition: &WriteCondition,
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
            condition.check(old).map_err(|_| StoreError::ConditionalConflict)?;
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
        self.update_meta_if(bucket, key, version, |m| {
            change(m);
            Ok(())
        })
    }

    /// [`Self::update_meta`] with a change that may refuse (seeing the version as it is at
    /// the commit): nothing is written then.
    pub fn update_meta_if(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        change: impl Fn(&mut ObjectMeta) -> Result<(), StoreError>,
    ) -> Result<Arc<ObjectMeta>, StoreError> {
        check_key(key).map_err(StoreError::BadKey)?;
        if let Some(v) = version {
            check_version_id(v)?;
        }
        let (_, updated) = self.write_record(bucket, key, |old| {
            let i = select_version(old, version)?;
            let mut versions = old.ok_or(StoreError::NoSuchKey)?.clone().into_versions();
            change(&mut versions[i])?;
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
        self.delete_as(bucket, key, version, false)
    }

    /// [`Self::delete`]; a version removed for good must not be locked (Object Lock: a legal
    /// hold, or retention that has not ended, GOVERNANCE unless `bypass_governance`). Delete
    /// markers are never locked.
    pub fn delete_as(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        bypass_governance: bool,
    ) -> Result<Deleted, StoreError> {
        check_key(key).map_err(StoreError::BadKey)?;
        let now = super::now_ms();
        let removable = |m: &ObjectMeta| m.removable(now, bypass_governance).map_err(StoreError::Locked);
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
                removable(&versions[i])?;
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
                    for v in old.versions() {
                        removable(v)?;
                    }
                    let garbage = old
                        .versions()
                        .map(|m| m.data_file.clone())
                        .filter(|f| !f.is_empty())
                        .collect();
                    Ok(Change::Remove(garbage, Deleted::default()))
                }
                Some(state) => {
                    // Suspended: the null delete marker replaces the null version.
                    if state == Versioning::Suspended {
                        for v in old.iter().flat_map(|o| o.versions()).filter(|v| v.version_id.is_none()) {
                            removable(v)?;
                        }
                    }
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

    fn read(s: &DiskStore, key: &str, version: Option<&str>) -> String {
        let (_, mut f) = s.open_object("site", key, version).unwrap();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut f, &mut body).unwrap();
        body
    }

    #[test]
    fn a_delete_marker_can_be_a_keys_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("site").unwrap();
        s.set_versioning("site", Versioning::Enabled).unwrap();
        let d = s.delete("site", "never-written", None).unwrap();
        assert!(d.delete_marker);
        drop(s);
        // It is on disk: after a restart the key still reads as deleted, by its marker.
        let s = DiskStore::open(dir.path()).unwrap();
        assert!(matches!(
            s.head("site", "never-written"),
            Err(StoreError::DeleteMarker { .. })
        ));
    }

    #[test]
    fn locked_versions_are_not_removed() {
        use super::super::meta::{LockMode, Retention};
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.create_bucket_with("vault", true).unwrap();
        s.put_object_bytes("vault", "k", "text/plain", b"v1").unwrap();
        let v1 = s.head("vault", "k").unwrap().version_label().to_string();
        let far = super::super::now_ms() + 3_600_000;
        let lock = |mode| {
            move |m: &mut ObjectMeta| {
                m.retention = Some(Retention { mode, until_ms: far });
            }
        };
        s.update_meta("vault", "k", Some(&v1), lock(LockMode::Compliance))
            .unwrap();
        // A delete without a version only adds a marker; removing the version is refused,
        // bypass or not.
        assert!(s.delete("vault", "k", None).unwrap().delete_marker);
        for bypass in [false, true] {
            assert!(matches!(
                s.delete_as("vault", "k", Some(&v1), bypass),
                Err(StoreError::Locked(_))
            ));
        }
        s.update_meta("vault", "k", Some(&v1), lock(LockMode::Governance))
            .unwrap();
        assert!(s.delete_as("vault", "k", Some(&v1), false).is_err());
        s.delete_as("vault", "k", Some(&v1), true).unwrap();
        // A legal hold holds whatever the bypass.
        s.put_object_bytes("vault", "h", "text/plain", b"h").unwrap();
        let h = s.head("vault", "h").unwrap().version_label().to_string();
        s.update_meta("vault", "h", Some(&h), |m| m.legal_hold = true).unwrap();
        assert!(s.delete_as("vault", "h", Some(&h), true).is_err());
        // Versioning stays enabled on a bucket with Object Lock.
        assert!(matches!(
            s.set_versioning("vault", Versioning::Suspended),
            Err(StoreError::InvalidBucketState(_))
        ));
    }

    #[test]
    fn conditional_commits() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("site").unwrap();
        let commit = |data: &[u8], c: &WriteCondition| {
            let temp = s.temp_path("site").unwrap();
            std::fs::write(&temp, data).unwrap();
            let meta = ObjectMeta {
                size: data.len() as u64,
                etag: hex::encode(<md5::Md5 as md5::Digest>::digest(data)),
                ..Default::default()
            };
            s.commit_if("site", "k", &temp, meta, c)
        };
        let none_match = WriteCondition {
            if_none_match_any: true,
            ..Default::default()
        };
        let first = commit(b"one", &none_match).unwrap();
        assert!(matches!(
            commit(b"two", &none_match),
            Err(StoreError::ConditionalConflict)
        ));
        let if_match = |etag: &str| WriteCondition {
            if_match: Some(etag.to_string()),
            ..Default::default()
        };
        assert!(commit(b"two", &if_match("0000")).is_err());
        commit(b"two", &if_match(&first.etag)).unwrap();
        let (_, mut f) = s.open_object("site", "k", None).unwrap();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut f, &mut got).unwrap();
        assert_eq!(got, "two");
        // Nothing of a refused write is left behind.
        let files = std::fs::read_dir(s.object_dir("site", "k").0).unwrap().count();
        assert_eq!(files, 2, "one .meta, one .data");
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
