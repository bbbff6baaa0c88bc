//! The index of both tiers: entries, LRU order, sizes, eviction down to the limits, and
//! the invalidations fills in flight are checked against.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use bytes::Bytes;
use pingora::cache::key::HashBinary;

use super::format::EntryLabel;
use super::memory::{mem_size, MemEntry, MemMeta};
use super::DiskCache;
use crate::policy::cache_policy::InvalidationPath;
use crate::telemetry;

pub(super) struct DiskEntry {
    pub(super) tick: u64,
    pub(super) gen: u64,
    pub(super) body_len: u64,
    pub(super) body_crc: u32,
    /// Bytes on disk, body and meta.
    pub(super) size: u64,
    /// The body was written by this process or has been checked against its CRC.
    pub(super) verified: bool,
    pub(super) label: Arc<EntryLabel>,
}

#[derive(Default)]
pub(super) struct Index {
    pub(super) tick: u64,
    pub(super) disk: HashMap<HashBinary, DiskEntry>,
    pub(super) disk_lru: BTreeMap<u64, HashBinary>,
    pub(super) disk_bytes: u64,
    pub(super) mem: HashMap<HashBinary, MemEntry>,
    pub(super) mem_lru: BTreeMap<u64, HashBinary>,
    pub(super) mem_bytes: u64,
    /// Invalidations so far, and the latest ones: a fill that started before one that
    /// covers it is not stored when it finishes.
    pub(super) invalidations: u64,
    pub(super) recent_invalidations: std::collections::VecDeque<RecentInvalidation>,
}

/// One invalidation, remembered for the fills in flight: its number, distribution, host
/// (`None`: every host) and paths.
type RecentInvalidation = (u64, String, Option<String>, Vec<InvalidationPath>);

/// Invalidations remembered for fills still in flight; an older fill is not stored.
const RECENT_INVALIDATIONS: usize = 256;

impl Index {
    /// Whether an invalidation after number `since` covers `label`.
    pub(super) fn invalidated_since(&self, since: u64, label: &EntryLabel) -> bool {
        if since == self.invalidations {
            return false;
        }
        let oldest_known = self.recent_invalidations.front().map_or(u64::MAX, |(n, ..)| *n);
        if since + 1 < oldest_known {
            return true;
        }
        self.recent_invalidations
            .iter()
            .filter(|(n, ..)| *n > since)
            .any(|(_, d, h, paths)| label.invalidated_by(d, h.as_deref(), paths))
    }

    pub(super) fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    pub(super) fn touch(&mut self, key: &HashBinary) {
        let t = self.next_tick();
        if let Some(e) = self.disk.get_mut(key) {
            self.disk_lru.remove(&e.tick);
            e.tick = t;
            self.disk_lru.insert(t, *key);
        }
        if let Some(m) = self.mem.get_mut(key) {
            self.mem_lru.remove(&m.tick);
            m.tick = t;
            self.mem_lru.insert(t, *key);
        }
    }

    pub(super) fn remove_mem(&mut self, key: &HashBinary) {
        if let Some(m) = self.mem.remove(key) {
            self.mem_lru.remove(&m.tick);
            self.mem_bytes -= mem_size(&m);
        }
    }

    pub(super) fn remove(&mut self, key: &HashBinary) -> Option<DiskEntry> {
        self.remove_mem(key);
        let e = self.disk.remove(key)?;
        self.disk_lru.remove(&e.tick);
        self.disk_bytes -= e.size;
        Some(e)
    }
}

/// Sizes and counts per tier, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub disk_bytes: u64,
    pub disk_entries: u64,
    pub memory_bytes: u64,
    pub memory_entries: u64,
}

impl DiskCache {
    /// Changes the size limits (on a config reload) and evicts down to them.
    pub fn set_limits(&self, disk_limit: u64, mem_limit: u64) {
        self.disk_limit.store(disk_limit, Ordering::Relaxed);
        self.mem_limit.store(mem_limit, Ordering::Relaxed);
        self.evict();
    }

    /// The largest object the cache accepts: a quarter of the disk tier.
    pub fn max_object_size(&self) -> u64 {
        self.disk_limit.load(Ordering::Relaxed) / 4
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock leaves a consistent index (every mutation is
        // complete before anything can fail), so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> Stats {
        let i = self.lock();
        Stats {
            disk_bytes: i.disk_bytes,
            disk_entries: i.disk.len() as u64,
            memory_bytes: i.mem_bytes,
            memory_entries: i.mem.len() as u64,
        }
    }

    pub(super) fn publish(&self, i: &Index) {
        telemetry::CACHE_SIZE
            .with_label_values(&["disk"])
            .set(i.disk_bytes as i64);
        telemetry::CACHE_SIZE
            .with_label_values(&["memory"])
            .set(i.mem_bytes as i64);
        telemetry::CACHE_ENTRIES
            .with_label_values(&["disk"])
            .set(i.disk.len() as i64);
        telemetry::CACHE_ENTRIES
            .with_label_values(&["memory"])
            .set(i.mem.len() as i64);
    }

    /// Evicts least recently used entries until both tiers fit their limits.
    pub(super) fn evict(&self) {
        let disk_limit = self.disk_limit.load(Ordering::Relaxed);
        let mem_limit = self.mem_limit.load(Ordering::Relaxed);
        let mut doomed = Vec::new();
        {
            let mut i = self.lock();
            let mut mem_evicted = 0u64;
            while i.mem_bytes > mem_limit {
                let Some((_, key)) = i.mem_lru.pop_first() else { break };
                if let Some(m) = i.mem.remove(&key) {
                    i.mem_bytes -= mem_size(&m);
                    mem_evicted += 1;
                }
            }
            while i.disk_bytes > disk_limit {
                let Some((_, key)) = i.disk_lru.first_key_value().map(|(t, k)| (*t, *k)) else {
                    break;
                };
                if let Some(e) = i.remove(&key) {
                    doomed.push((key, e.gen));
                }
            }
            telemetry::CACHE_EVICTIONS
                .with_label_values(&["memory"])
                .inc_by(mem_evicted);
            telemetry::CACHE_EVICTIONS
                .with_label_values(&["disk"])
                .inc_by(doomed.len() as u64);
            self.publish(&i);
        }
        for (key, gen) in doomed {
            self.delete_files(&key, gen);
        }
    }

    /// Removes every entry of `distribution` whose path one of `paths` covers, every Vary
    /// variant included. Returns how many entries went.
    pub fn invalidate(&self, distribution: &str, paths: &[InvalidationPath]) -> usize {
        self.invalidate_host(distribution, None, paths)
    }

    /// As [`Self::invalidate`], for the entries stored for `host` only when one is given (a
    /// write through the edge invalidates its own host's copies, never another's).
    pub fn invalidate_host(&self, distribution: &str, host: Option<&str>, paths: &[InvalidationPath]) -> usize {
        let doomed: Vec<(HashBinary, u64)> = {
            let mut i = self.lock();
            let keys: Vec<HashBinary> = i
                .disk
                .iter()
                .filter(|(_, e)| e.label.invalidated_by(distribution, host, paths))
                .map(|(k, _)| *k)
                .collect();
            let out = keys.iter().filter_map(|k| i.remove(k).map(|e| (*k, e.gen))).collect();
            i.invalidations += 1;
            let n = i.invalidations;
            i.recent_invalidations
                .push_back((n, distribution.to_string(), host.map(str::to_string), paths.to_vec()));
            if i.recent_invalidations.len() > RECENT_INVALIDATIONS {
                i.recent_invalidations.pop_front();
            }
            self.publish(&i);
            out
        };
        for (key, gen) in &doomed {
            self.delete_files(key, *gen);
        }
        doomed.len()
    }
}

impl DiskCache {
    pub(super) fn insert_mem(&self, i: &mut Index, key: HashBinary, gen: u64, meta: Arc<MemMeta>, body: Bytes) {
        i.remove_mem(&key);
        let t = i.next_tick();
        let m = MemEntry {
            tick: t,
            gen,
            meta,
            body,
            file: None,
        };
        i.mem_bytes += mem_size(&m);
        i.mem_lru.insert(t, key);
        i.mem.insert(key, m);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use bytes::Bytes;
    use pingora::cache::Storage;
    use std::fs;

    #[tokio::test]
    async fn evicts_least_recently_used_and_invalidates() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![7u8; 10_000];
        let c = leak(DiskCache::open(dir.path(), 35_000, 15_000).unwrap());
        put(c, "/img/1", &body).await;
        put(c, "/img/2", &body).await;
        put(c, "/img/3", &body).await;
        assert!(get(c, "/img/1").await.is_some(), "touch 1");
        put(c, "/css/4", &body).await;
        assert_eq!(c.stats().disk_entries, 3);
        assert!(get(c, "/img/2").await.is_none(), "2 was least recently used");
        assert!(c.stats().memory_bytes <= 15_000);
        let n = c.invalidate("d0", &[InvalidationPath::parse("/img/*").unwrap()]);
        assert_eq!(n, 2);
        assert!(get(c, "/img/1").await.is_none());
        assert!(get(c, "/css/4").await.is_some());
        assert_eq!(c.invalidate("other", &[InvalidationPath::parse("/*").unwrap()]), 0);
        let leftovers = fs::read_dir(dir.path().join("tmp")).unwrap().count();
        assert_eq!(leftovers, 0);
    }

    #[tokio::test]
    async fn a_fill_invalidated_while_in_flight_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let c = leak(DiskCache::open(dir.path(), 1 << 30, 1 << 20).unwrap());
        let span = pingora::cache::trace::Span::inactive().handle();
        let body = b"fetched before the invalidation";
        let mut m = c
            .get_miss_handler(&key("/a/x"), &meta(body.len()), &span)
            .await
            .unwrap();
        let mut other = c
            .get_miss_handler(&key("/b/y"), &meta(body.len()), &span)
            .await
            .unwrap();
        m.write_body(Bytes::from_static(body), false).await.unwrap();
        other.write_body(Bytes::from_static(body), false).await.unwrap();
        c.invalidate("d0", &[InvalidationPath::parse("/a/*").unwrap()]);
        m.finish().await.unwrap();
        other.finish().await.unwrap();
        assert_eq!(get(c, "/a/x").await, None, "the invalidated fill was stored");
        assert_eq!(
            get(c, "/b/y").await.as_deref(),
            Some(&body[..]),
            "a fill it does not cover is kept"
        );
        // A fill that starts after the invalidation is stored as usual.
        put(c, "/a/x", body).await;
        assert_eq!(get(c, "/a/x").await.as_deref(), Some(&body[..]));
        // Nothing is left of the dropped fill on disk.
        let c2 = leak(DiskCache::open(dir.path(), 1 << 30, 1 << 20).unwrap());
        assert_eq!(c2.stats().disk_entries, 2);
    }
}
