//! Listings, served from the in-memory index of a bucket.

use std::io;
use std::sync::Arc;

use super::meta::ObjectMeta;
use super::{DiskStore, StoreError};

impl DiskStore {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
