//! The edge cache's storage: a pingora-cache `Storage` on disk under `data_dir/cache`, with
//! a memory tier for small hot objects, an LRU size limit per tier, and recovery after a
//! restart or a crash.
//!
//! Each entry is two files in `cache/<first byte of the key in hex>/`:
//! `<key>-<gen>.body` (the body as the origin sent it) and `<key>.meta` (the serialized
//! `CacheMeta`, the entry's distribution and path for invalidation, and the body's length
//! and CRC-32). Both are written to `cache/tmp/`, fsynced and renamed into place, body
//! first; a new body gets a new generation number so a meta file never points at a body
//! that is still being written. At start-up the directory is scanned: an entry whose meta
//! does not check out or whose body has the wrong length is deleted, and a body is checked
//! against its CRC before its first use, so a torn or corrupted entry is discarded, never
//! served.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::{CacheHashKey, CacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheMeta, Storage};
use pingora::prelude::*;

use crate::policy::cache_policy::InvalidationPath;
use crate::telemetry;

const MAGIC: &[u8; 4] = b"HFC2";
/// The meta format before entries recorded their host; still read.
const MAGIC_V1: &[u8; 4] = b"HFC1";
/// Memory-tier bodies from this size on are sent from their disk copy with `sendfile` where
/// the connection allows it, as nginx sends its cache files ([`DiskCache::body_file`]).
/// Written from memory, the copy into the socket was a third of homefront's CPU in the
/// 100 KiB hit row (`perf`: `_copy_from_iter` 30 %). Below it the copy costs less than a
/// `sendfile` call besides the header's write. Server CPU per hit (`wrk -c32`, two runs
/// each), from memory against with `sendfile`: 17–19 against 25–34 µs at 8 KiB, 18–25
/// against 25–29 at 24 KiB, 24–25 against 19–20 at 32 KiB, 33–41 against 27–31 at 100 KiB.
pub const FILE_BODY_MIN: usize = 32 * 1024;
/// Bodies up to this size are read whole, checked and served from memory.
const SMALL_BODY: u64 = 1 << 20;
/// Read size for larger bodies. (256 KiB halved the hops to the blocking pool but took 100
/// concurrent 100 MiB downloads from ~150 to ~360 MiB of RSS: pingora buffers several.)
const CHUNK: usize = 64 * 1024;

/// What invalidation matches an entry by: its distribution, the canonical host (authority)
/// it was stored for, and its path with the keyed query string. Carried in the cache key's
/// `user_tag` as `"<distribution> <host> <path>"` (no part holds a space: distribution names
/// are letters, digits, `_` and `-`, canonical hosts and paths have no raw space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryLabel {
    pub distribution: String,
    /// Empty for an entry written before hosts were recorded: any host's write covers it.
    pub host: String,
    pub path: String,
}

impl EntryLabel {
    pub fn tag(distribution: &str, host: &str, path: &str) -> String {
        format!("{distribution} {host} {path}")
    }

    fn from_tag(tag: &str) -> EntryLabel {
        let (d, rest) = tag.split_once(' ').unwrap_or(("", tag));
        let (h, p) = match rest.split_once(' ') {
            Some((h, p)) if !rest.starts_with('/') => (h, p),
            _ => ("", rest),
        };
        EntryLabel {
            distribution: d.to_string(),
            host: h.to_string(),
            path: p.to_string(),
        }
    }

    /// Whether an invalidation of `distribution` (for `host` only, if given) covering one
    /// of `paths` covers this entry.
    fn invalidated_by(&self, distribution: &str, host: Option<&str>, paths: &[InvalidationPath]) -> bool {
        self.distribution == distribution
            && host.is_none_or(|h| self.host.is_empty() || self.host == h)
            && paths.iter().any(|p| p.covers(&self.path))
    }
}

struct DiskEntry {
    tick: u64,
    gen: u64,
    body_len: u64,
    body_crc: u32,
    /// Bytes on disk, body and meta.
    size: u64,
    /// The body was written by this process or has been checked against its CRC.
    verified: bool,
    label: Arc<EntryLabel>,
}

struct MemEntry {
    tick: u64,
    /// The generation of the disk entry it is a copy of (every memory-tier entry is one).
    gen: u64,
    meta: Arc<MemMeta>,
    body: Bytes,
    /// That disk entry's body file, kept open once a hit sent it with `sendfile`
    /// ([`DiskCache::body_file`]).
    file: Option<Arc<File>>,
}

/// A memory-tier entry's meta, kept parsed: a hit then costs a clone of the response header
/// instead of decompressing it (pingora stores it zstd-compressed; that decode was a quarter
/// of the instructions of a small hit).
struct MemMeta {
    internal: Vec<u8>,
    /// Bytes of the serialized meta, for the tier's size limit.
    size: u64,
    parsed: Parsed,
    /// A request's variance input known to hash to this entry's variance
    /// ([`MemoryEntry::knows_variant`]).
    variant_input: std::sync::OnceLock<Box<[u8]>>,
}

/// What a memory-tier entry keeps of its meta already parsed: the header (cloned on a hit
/// instead of decompressed) and what the hit path checks.
struct Parsed {
    header: pingora::http::ResponseHeader,
    fresh_until: SystemTime,
    epoch: SystemTime,
    variance: Option<HashBinary>,
}

impl Parsed {
    fn of(meta: &CacheMeta) -> Parsed {
        Parsed {
            header: meta.response_header_copy(),
            fresh_until: meta.fresh_until(),
            epoch: meta.epoch(),
            variance: meta.variance(),
        }
    }
}

impl MemMeta {
    /// From the serialized internal meta, the serialized header's length, and the meta as
    /// pingora already had it parsed (no second decode).
    fn new(internal: Vec<u8>, header_len: usize, parsed: Parsed) -> MemMeta {
        MemMeta {
            size: (internal.len() + header_len) as u64,
            internal,
            parsed,
            variant_input: std::sync::OnceLock::new(),
        }
    }

    /// The `CacheMeta` pingora gets on a hit: the internal part decoded (small, cheap), with
    /// the parsed header put in place of a serialized empty one.
    fn to_cache_meta(&self) -> Result<CacheMeta> {
        let mut meta = decode_internal(&self.internal)?;
        *meta.response_header_mut() = self.parsed.header.clone();
        Ok(meta)
    }
}

/// A serialized internal meta, decoded with an empty response header.
fn decode_internal(internal: &[u8]) -> Result<CacheMeta> {
    static EMPTY_HEADER: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let now = SystemTime::now();
        let header = pingora::http::ResponseHeader::build(200, Some(0)).expect("a bare 200 header");
        CacheMeta::new(now, now, 0, 0, header)
            .serialize()
            .map(|(_, h)| h)
            .unwrap_or_default()
    });
    CacheMeta::deserialize(internal, &EMPTY_HEADER)
}

/// A memory-tier entry as the edge's hit path reads it (`DiskCache::memory_entry`).
pub struct MemoryEntry {
    meta: Arc<MemMeta>,
    gen: u64,
    pub body: Bytes,
    file: Option<Arc<File>>,
}

impl MemoryEntry {
    /// The stored response header.
    pub fn header(&self) -> &pingora::http::ResponseHeader {
        &self.meta.parsed.header
    }

    /// Fresh at `now` (pingora's rule: until `fresh_until`, inclusive).
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.meta.parsed.fresh_until >= now
    }

    /// Seconds since the entry was stored or last revalidated (pingora's `Age`).
    pub fn age(&self, now: SystemTime) -> u64 {
        now.duration_since(self.meta.parsed.epoch).unwrap_or_default().as_secs()
    }

    /// The variance the entry was stored for (pingora's `CacheMeta::variance`).
    pub fn variance(&self) -> Option<HashBinary> {
        self.meta.parsed.variance
    }

    /// Whether `input` (the bytes a request's variance is hashed from) is the one the entry
    /// remembers as hashing to its variance ([`MemoryEntry::remember_variant`]): a request
    /// with the same input matches the entry without hashing it again (a tenth of a hit's
    /// instructions).
    pub fn knows_variant(&self, input: &[u8]) -> bool {
        self.meta.variant_input.get().is_some_and(|known| **known == *input)
    }

    /// Remembers `input`, whose hash the caller found to be the entry's variance, unless
    /// the entry already remembers one (the first stays, for the entry's life).
    pub fn remember_variant(&self, input: &[u8]) {
        let _ = self.meta.variant_input.set(input.into());
    }
}

#[derive(Default)]
struct Index {
    tick: u64,
    disk: HashMap<HashBinary, DiskEntry>,
    disk_lru: BTreeMap<u64, HashBinary>,
    disk_bytes: u64,
    mem: HashMap<HashBinary, MemEntry>,
    mem_lru: BTreeMap<u64, HashBinary>,
    mem_bytes: u64,
    /// Invalidations so far, and the latest ones: a fill that started before one that
    /// covers it is not stored when it finishes.
    invalidations: u64,
    recent_invalidations: std::collections::VecDeque<RecentInvalidation>,
}

/// One invalidation, remembered for the fills in flight: its number, distribution, host
/// (`None`: every host) and paths.
type RecentInvalidation = (u64, String, Option<String>, Vec<InvalidationPath>);

/// Invalidations remembered for fills still in flight; an older fill is not stored.
const RECENT_INVALIDATIONS: usize = 256;

impl Index {
    /// Whether an invalidation after number `since` covers `label`.
    fn invalidated_since(&self, since: u64, label: &EntryLabel) -> bool {
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

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn touch(&mut self, key: &HashBinary) {
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

    fn remove_mem(&mut self, key: &HashBinary) {
        if let Some(m) = self.mem.remove(key) {
            self.mem_lru.remove(&m.tick);
            self.mem_bytes -= mem_size(&m);
        }
    }

    fn remove(&mut self, key: &HashBinary) -> Option<DiskEntry> {
        self.remove_mem(key);
        let e = self.disk.remove(key)?;
        self.disk_lru.remove(&e.tick);
        self.disk_bytes -= e.size;
        Some(e)
    }
}

fn mem_size(m: &MemEntry) -> u64 {
    m.body.len() as u64 + m.meta.size
}

/// Sizes and counts per tier, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub disk_bytes: u64,
    pub disk_entries: u64,
    pub memory_bytes: u64,
    pub memory_entries: u64,
}

/// The disk cache with its memory tier. One per process (pingora wants `&'static`).
pub struct DiskCache {
    dir: PathBuf,
    index: Mutex<Index>,
    disk_limit: AtomicU64,
    mem_limit: AtomicU64,
    next_gen: AtomicU64,
    /// Body files the memory tier may keep open (half the process's limit on open files).
    held_files_max: u64,
}

fn hex(key: &HashBinary) -> String {
    hex::encode(key)
}

/// A cache entry that could not be written (the disk is full, say): counted and logged; the
/// response still goes to the viewer, only uncached.
fn write_failed(what: &'static str, e: io::Error) -> Box<Error> {
    telemetry::CACHE_DISCARDED.with_label_values(&["write_failed"]).inc();
    tracing::warn!("cache: {what}: {e}; the response is served without caching it");
    internal(what, e)
}

fn corrupt(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn internal(context: &'static str, e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(InternalError, format!("{context}: {e}"))
}

/// The parsed meta file. Public only for the fuzz targets (`fuzz/`).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaFile {
    pub gen: u64,
    pub body_len: u64,
    pub body_crc: u32,
    pub label: EntryLabel,
    pub internal: Vec<u8>,
    pub header: Vec<u8>,
}

impl MetaFile {
    pub fn encode(&self) -> Vec<u8> {
        let mut rest = Vec::with_capacity(64 + self.internal.len() + self.header.len());
        rest.extend_from_slice(&self.gen.to_le_bytes());
        rest.extend_from_slice(&self.body_len.to_le_bytes());
        rest.extend_from_slice(&self.body_crc.to_le_bytes());
        for part in [
            self.label.distribution.as_bytes(),
            self.label.host.as_bytes(),
            self.label.path.as_bytes(),
            &self.internal,
            &self.header,
        ] {
            rest.extend_from_slice(&(part.len() as u32).to_le_bytes());
            rest.extend_from_slice(part);
        }
        let mut out = Vec::with_capacity(8 + rest.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&crc32fast::hash(&rest).to_le_bytes());
        out.extend_from_slice(&rest);
        out
    }

    pub fn decode(data: &[u8]) -> io::Result<MetaFile> {
        // HFC1 (before hosts were recorded) has no host part.
        let parts_n = match data.get(..4) {
            Some(m) if m == MAGIC => 5,
            Some(m) if m == MAGIC_V1 => 4,
            _ => return Err(corrupt("not a homefront cache meta file")),
        };
        if data.len() < 8 {
            return Err(corrupt("not a homefront cache meta file"));
        }
        let crc = u32::from_le_bytes(data[4..8].try_into().unwrap_or_default());
        let rest = &data[8..];
        if crc32fast::hash(rest) != crc {
            return Err(corrupt("meta checksum mismatch"));
        }
        let mut pos = 0usize;
        let mut take = |n: usize| -> io::Result<&[u8]> {
            let s = rest.get(pos..pos + n).ok_or_else(|| corrupt("meta file truncated"))?;
            pos += n;
            Ok(s)
        };
        let gen = u64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
        let body_len = u64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
        let body_crc = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default());
        let mut parts = Vec::with_capacity(parts_n);
        for _ in 0..parts_n {
            let n = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default()) as usize;
            parts.push(take(n)?.to_vec());
        }
        let header = parts.pop().unwrap_or_default();
        let internal = parts.pop().unwrap_or_default();
        let path = String::from_utf8(parts.pop().unwrap_or_default()).map_err(|_| corrupt("bad path"))?;
        let host = match parts_n {
            5 => String::from_utf8(parts.pop().unwrap_or_default()).map_err(|_| corrupt("bad host"))?,
            _ => String::new(),
        };
        let distribution = String::from_utf8(parts.pop().unwrap_or_default()).map_err(|_| corrupt("bad name"))?;
        Ok(MetaFile {
            gen,
            body_len,
            body_crc,
            label: EntryLabel {
                distribution,
                host,
                path,
            },
            internal,
            header,
        })
    }
}

fn fsync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl DiskCache {
    /// Opens (creating) the cache directory and rebuilds the index from what is there.
    pub fn open(dir: &Path, disk_limit: u64, mem_limit: u64) -> io::Result<DiskCache> {
        crate::util::create_private_dir_all(&dir.join("tmp"))?;
        // Half-written files of a previous run.
        for e in fs::read_dir(dir.join("tmp"))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        let mut found: Vec<(std::time::SystemTime, HashBinary, DiskEntry)> = Vec::new();
        let mut max_gen = 0u64;
        let mut discarded = 0usize;
        for shard in fs::read_dir(dir)?.flatten() {
            let name = shard.file_name();
            let name = name.to_string_lossy();
            if name.len() != 2 || !shard.path().is_dir() {
                continue;
            }
            let mut bodies: Vec<PathBuf> = Vec::new();
            for f in fs::read_dir(shard.path())?.flatten() {
                let path = f.path();
                let fname = f.file_name().to_string_lossy().to_string();
                if let Some(stem) = fname.strip_suffix(".meta") {
                    let mut key = [0u8; 16];
                    let ok = hex::decode_to_slice(stem, &mut key).is_ok();
                    let entry = ok
                        .then(|| Self::load_entry(&shard.path(), &key, &path))
                        .and_then(|r| r.ok());
                    match entry {
                        Some((mtime, e)) => {
                            max_gen = max_gen.max(e.gen);
                            found.push((mtime, key, e));
                        }
                        None => {
                            discarded += 1;
                            let _ = fs::remove_file(&path);
                        }
                    }
                } else if fname.ends_with(".body") {
                    bodies.push(path);
                } else {
                    let _ = fs::remove_file(&path);
                }
            }
            // Bodies no meta file points at: an interrupted write or a replaced entry.
            for b in bodies {
                let fname = b
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let referenced = fname
                    .strip_suffix(".body")
                    .and_then(|s| s.split_once('-'))
                    .and_then(|(k, g)| {
                        let mut key = [0u8; 16];
                        hex::decode_to_slice(k, &mut key).ok()?;
                        Some((key, g.parse::<u64>().ok()?))
                    })
                    .is_some_and(|(key, gen)| found.iter().any(|(_, k, e)| *k == key && e.gen == gen));
                if !referenced {
                    let _ = fs::remove_file(&b);
                }
            }
        }
        if discarded > 0 {
            telemetry::CACHE_DISCARDED
                .with_label_values(&["corrupt"])
                .inc_by(discarded as u64);
            tracing::warn!("cache: discarded {discarded} damaged entries in {}", dir.display());
        }
        found.sort_by_key(|(t, _, _)| *t);
        let mut index = Index::default();
        for (_, key, mut e) in found {
            let t = index.next_tick();
            e.tick = t;
            index.disk_bytes += e.size;
            index.disk_lru.insert(t, key);
            index.disk.insert(key, e);
        }
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            index: Mutex::new(index),
            disk_limit: AtomicU64::new(disk_limit),
            mem_limit: AtomicU64::new(mem_limit),
            next_gen: AtomicU64::new(max_gen + 1),
            held_files_max: crate::util::open_files_limit() / 2,
        };
        cache.evict();
        Ok(cache)
    }

    fn load_entry(shard: &Path, key: &HashBinary, meta_path: &Path) -> io::Result<(std::time::SystemTime, DiskEntry)> {
        let data = fs::read(meta_path)?;
        let meta = MetaFile::decode(&data)?;
        let body = shard.join(format!("{}-{}.body", hex(key), meta.gen));
        let md = fs::metadata(&body)?;
        if md.len() != meta.body_len {
            let _ = fs::remove_file(&body);
            return Err(corrupt("body length does not match"));
        }
        let mtime = fs::metadata(meta_path)?.modified().unwrap_or(std::time::UNIX_EPOCH);
        Ok((
            mtime,
            DiskEntry {
                tick: 0,
                gen: meta.gen,
                body_len: meta.body_len,
                body_crc: meta.body_crc,
                size: meta.body_len + data.len() as u64,
                verified: false,
                label: Arc::new(meta.label),
            },
        ))
    }

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

    fn mem_object_max(&self) -> u64 {
        (self.mem_limit.load(Ordering::Relaxed) / 8).min(SMALL_BODY)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
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

    fn publish(&self, i: &Index) {
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

    fn shard(&self, key: &HashBinary) -> PathBuf {
        self.dir.join(format!("{:02x}", key[0]))
    }

    fn meta_path(&self, key: &HashBinary) -> PathBuf {
        self.shard(key).join(format!("{}.meta", hex(key)))
    }

    fn body_path(&self, key: &HashBinary, gen: u64) -> PathBuf {
        self.shard(key).join(format!("{}-{gen}.body", hex(key)))
    }

    fn tmp_path(&self) -> PathBuf {
        let n = self.next_gen.fetch_add(1, Ordering::Relaxed);
        self.dir.join("tmp").join(format!("{n}.tmp"))
    }

    fn delete_files(&self, key: &HashBinary, gen: u64) {
        let _ = fs::remove_file(self.meta_path(key));
        let _ = fs::remove_file(self.body_path(key, gen));
    }

    /// Removes one entry from both tiers and from disk.
    fn remove_entry(&self, key: &HashBinary) -> bool {
        let removed = {
            let mut i = self.lock();
            let r = i.remove(key);
            self.publish(&i);
            r
        };
        match removed {
            Some(e) => {
                self.delete_files(key, e.gen);
                true
            }
            None => false,
        }
    }

    /// Evicts least recently used entries until both tiers fit their limits.
    fn evict(&self) {
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

    fn insert_mem(&self, i: &mut Index, key: HashBinary, gen: u64, meta: Arc<MemMeta>, body: Bytes) {
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

    /// Writes a meta file crash-safely.
    fn write_meta(&self, key: &HashBinary, meta: &MetaFile) -> io::Result<u64> {
        let data = meta.encode();
        let tmp = self.tmp_path();
        let mut f = crate::util::create_private_file(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        drop(f);
        crate::util::create_private_dir_all(&self.shard(key))?;
        fs::rename(&tmp, self.meta_path(key))?;
        fsync_dir(&self.shard(key));
        Ok(data.len() as u64)
    }
}

impl DiskCache {
    /// The memory-tier entry in `primary`'s slot (the key without variance, where pingora
    /// looks first), for the edge's hit path; it counts as a use for the tier's LRU.
    /// Entries on disk only are `None`: pingora's lookup reads them.
    pub fn memory_entry(&self, primary: &HashBinary) -> Option<MemoryEntry> {
        let mut i = self.lock();
        let entry = i.mem.get(primary).map(|m| MemoryEntry {
            meta: m.meta.clone(),
            gen: m.gen,
            body: m.body.clone(),
            file: m.file.clone(),
        })?;
        i.touch(primary);
        Some(entry)
    }

    /// The disk copy of a memory-tier entry's body, open, for `sendfile`: the same bytes
    /// (its generation's file is written once, checked or written by this process before it
    /// entered the memory tier, and never changed in place). `None` when the entry has gone
    /// since (evicted, replaced, invalidated) or the file is not the body's length: the
    /// caller sends the bytes it holds. The first call opens the file; the entry then keeps
    /// it open (its later hits cost no `open`, `fstat` and `close`: a tenth of the CPU of
    /// a 100 KiB hit) unless the memory tier could hold more such entries than the process
    /// may keep files open for (`held_files_max`). An evicted or replaced entry closes it.
    pub fn body_file(&self, primary: &HashBinary, entry: &MemoryEntry) -> Option<Arc<File>> {
        if let Some(file) = &entry.file {
            return Some(file.clone());
        }
        let file = File::open(self.body_path(primary, entry.gen)).ok()?;
        if file.metadata().ok()?.len() != entry.body.len() as u64 {
            return None;
        }
        let file = Arc::new(file);
        let most = self.mem_limit.load(Ordering::Relaxed) / FILE_BODY_MIN as u64;
        if most <= self.held_files_max {
            let mut i = self.lock();
            if let Some(m) = i.mem.get_mut(primary).filter(|m| m.gen == entry.gen) {
                m.file.get_or_insert_with(|| file.clone());
            }
        }
        Some(file)
    }

    /// The entry at `k` with its meta: from the memory tier, or read from disk (a small body
    /// whole, checked against its CRC, and put in the memory tier; a large one as its open
    /// file). `None`: not cached (or found damaged and dropped). `inline`: the files are read
    /// on this thread, not on tokio's blocking pool (the edge's hit path, which then sends
    /// the body with `sendfile` on this thread too, as nginx does; a hundred downloads
    /// starting at once otherwise start a hundred blocking threads).
    pub async fn load(&'static self, k: HashBinary, inline: bool) -> Result<Option<(CacheMeta, Loaded)>> {
        // Memory tier.
        let hit = {
            let mut i = self.lock();
            let hit = i.mem.get(&k).map(|m| (m.meta.clone(), m.body.clone()));
            if hit.is_some() {
                i.touch(&k);
            }
            hit
        };
        if let Some((meta, body)) = hit {
            return Ok(Some((meta.to_cache_meta()?, Loaded::Whole(body))));
        }
        // Disk tier.
        let Some((gen, body_len, body_crc, verified)) = ({
            let mut i = self.lock();
            let e = i.disk.get(&k).map(|e| (e.gen, e.body_len, e.body_crc, e.verified));
            if e.is_some() {
                i.touch(&k);
            }
            e
        }) else {
            return Ok(None);
        };
        let meta_path = self.meta_path(&k);
        let body_path = self.body_path(&k, gen);
        let mem_max = self.mem_object_max();
        let read = move || -> io::Result<(MetaFile, Body)> {
            let mf = MetaFile::decode(&fs::read(&meta_path)?)?;
            if mf.gen != gen || mf.body_len != body_len {
                return Err(io::Error::new(io::ErrorKind::NotFound, "entry replaced"));
            }
            let file = File::open(&body_path)?;
            if file.metadata()?.len() != body_len {
                return Err(corrupt("body length does not match"));
            }
            if body_len <= SMALL_BODY {
                let mut buf = vec![0u8; body_len as usize];
                file.read_exact_at(&mut buf, 0)?;
                if crc32fast::hash(&buf) != body_crc {
                    return Err(corrupt("body checksum mismatch"));
                }
                Ok((mf, Body::Whole(Bytes::from(buf))))
            } else {
                Ok((mf, Body::File(Arc::new(file))))
            }
        };
        let loaded = if inline {
            read()
        } else {
            tokio::task::spawn_blocking(read)
                .await
                .map_err(|e| internal("cache read task", e))?
        };
        let (mf, body) = match loaded {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                telemetry::CACHE_DISCARDED.with_label_values(&["corrupt"]).inc();
                tracing::warn!("cache: discarding entry {}: {e}", hex(&k));
                self.remove_entry(&k);
                return Ok(None);
            }
        };
        let meta = CacheMeta::deserialize(&mf.internal, &mf.header)?;
        match body {
            Body::Whole(bytes) => {
                {
                    let mut i = self.lock();
                    // Unless a new body replaced it while this one was read.
                    let current = match i.disk.get_mut(&k) {
                        Some(e) if e.gen == gen => {
                            e.verified = true;
                            true
                        }
                        _ => false,
                    };
                    if current && body_len <= mem_max {
                        let mem_meta = MemMeta::new(mf.internal, mf.header.len(), Parsed::of(&meta));
                        self.insert_mem(&mut i, k, gen, Arc::new(mem_meta), bytes.clone());
                    }
                }
                self.evict();
                Ok(Some((meta, Loaded::Whole(bytes))))
            }
            Body::File(file) => Ok(Some((
                meta,
                Loaded::File {
                    file,
                    len: body_len,
                    crc: body_crc,
                    verified,
                },
            ))),
        }
    }
}

#[async_trait]
impl Storage for DiskCache {
    async fn lookup(&'static self, key: &CacheKey, _trace: &SpanHandle) -> Result<Option<(CacheMeta, HitHandler)>> {
        let k = key.combined_bin();
        let Some((meta, loaded)) = self.load(k, false).await? else {
            return Ok(None);
        };
        let hit: HitHandler = match loaded {
            Loaded::Whole(body) => Box::new(MemHit::new(body)),
            Loaded::File {
                file,
                len,
                crc,
                verified,
            } => Box::new(FileHit {
                cache: self,
                key: k,
                file,
                pos: 0,
                end: len,
                crc: (!verified).then(crc32fast::Hasher::new),
                expected_crc: crc,
                verified,
            }),
        };
        Ok(Some((meta, hit)))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let (internal_meta, header) = meta.serialize()?;
        let tmp = self.tmp_path();
        let file = {
            let tmp = tmp.clone();
            tokio::task::spawn_blocking(move || crate::util::create_private_file(&tmp))
                .await
                .map_err(|e| internal("cache write task", e))?
                .map_err(|e| internal("cannot create a cache file", e))?
        };
        let started_after = self.lock().invalidations;
        Ok(Box::new(Miss {
            started_after,
            cache: self,
            key: key.combined_bin(),
            label: EntryLabel::from_tag(&key.user_tag),
            meta: Some((internal_meta, header)),
            parsed: Some(Parsed::of(meta)),
            tmp,
            file: Some(file),
            len: 0,
            crc: crc32fast::Hasher::new(),
            mem_buf: Some(Vec::new()),
            finished: false,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let k = target.key().combined_bin();
        Ok(if self.remove_entry(&k) {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(&'static self, key: &CacheKey, meta: &CacheMeta, _trace: &SpanHandle) -> Result<bool> {
        let k = key.combined_bin();
        let (internal_meta, header) = meta.serialize()?;
        let current = {
            let i = self.lock();
            i.disk.get(&k).map(|e| (e.gen, e.body_len, e.body_crc, e.label.clone()))
        };
        let Some((gen, body_len, body_crc, label)) = current else {
            return Ok(false);
        };
        let mf = MetaFile {
            gen,
            body_len,
            body_crc,
            label: (*label).clone(),
            internal: internal_meta,
            header,
        };
        let (mf, written) = tokio::task::spawn_blocking(move || {
            let r = self.write_meta(&k, &mf);
            (mf, r)
        })
        .await
        .map_err(|e| internal("cache write task", e))?;
        let meta_len = written.map_err(|e| internal("cannot update a cache entry", e))?;
        let mut i = self.lock();
        let mut size_change = None;
        if let Some(e) = i.disk.get_mut(&k) {
            if e.gen == gen {
                let new_size = body_len + meta_len;
                size_change = Some((e.size, new_size));
                e.size = new_size;
            }
        }
        if let Some((old, new)) = size_change {
            i.disk_bytes = i.disk_bytes - old + new;
        }
        let index = &mut *i;
        if let Some(m) = index.mem.get_mut(&k) {
            let updated = MemMeta::new(mf.internal, mf.header.len(), Parsed::of(meta));
            index.mem_bytes = index.mem_bytes - m.meta.size + updated.size;
            m.meta = Arc::new(updated);
        }
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync + 'static) {
        self
    }
}

enum Body {
    Whole(Bytes),
    File(Arc<File>),
}

/// A cached body as [`DiskCache::load`] found it.
pub enum Loaded {
    /// Small: in memory, checked.
    Whole(Bytes),
    /// Large: its file, `len` bytes, with the CRC it must have; `verified` when this process
    /// wrote it or has read it whole and found the CRC right.
    File {
        file: Arc<File>,
        len: u64,
        crc: u32,
        verified: bool,
    },
}

/// A hit served from memory (small bodies, read whole and checked).
struct MemHit {
    body: Bytes,
    start: usize,
    end: usize,
    done: bool,
}

impl MemHit {
    fn new(body: Bytes) -> MemHit {
        let end = body.len();
        MemHit {
            body,
            start: 0,
            end,
            done: false,
        }
    }
}

#[async_trait]
impl HandleHit for MemHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.body.slice(self.start..self.end)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let end = end.unwrap_or(self.body.len()).min(self.body.len());
        if start > end {
            return Error::e_explain(InternalError, "seek beyond the end of a cached body");
        }
        self.start = start;
        self.end = end;
        self.done = false;
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn std::any::Any + Send + Sync) {
        self
    }
}

/// A hit streamed from a body file in chunks; an unchecked body is checked as it streams
/// and dropped from the cache if it turns out damaged (the response is then cut short).
struct FileHit {
    cache: &'static DiskCache,
    key: HashBinary,
    file: Arc<File>,
    pos: u64,
    end: u64,
    crc: Option<crc32fast::Hasher>,
    expected_crc: u32,
    verified: bool,
}

#[async_trait]
impl HandleHit for FileHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let n = (self.end - self.pos).min(CHUNK as u64) as usize;
        let file = self.file.clone();
        let pos = self.pos;
        let buf = tokio::task::spawn_blocking(move || -> io::Result<Vec<u8>> {
            // Read into fresh capacity (no zero-filling first): each hit has its own handle,
            // so its file position is ours to move.
            use std::io::{Read, Seek, SeekFrom};
            let mut f = &*file;
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = Vec::with_capacity(n);
            f.take(n as u64).read_to_end(&mut buf)?;
            if buf.len() != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "cache file shorter than its entry",
                ));
            }
            Ok(buf)
        })
        .await
        .map_err(|e| internal("cache read task", e))?
        .map_err(|e| internal("cannot read a cache file", e))?;
        self.pos += n as u64;
        if let Some(h) = self.crc.as_mut() {
            h.update(&buf);
            if self.pos >= self.end {
                let h = self.crc.take().unwrap_or_default();
                if h.finalize() != self.expected_crc {
                    telemetry::CACHE_DISCARDED.with_label_values(&["corrupt"]).inc();
                    tracing::warn!("cache: entry {} is damaged; dropped", hex(&self.key));
                    self.cache.remove_entry(&self.key);
                    return Error::e_explain(InternalError, "cached body is damaged");
                }
                let mut i = self.cache.lock();
                if let Some(e) = i.disk.get_mut(&self.key) {
                    e.verified = true;
                }
            }
        }
        Ok(Some(Bytes::from(buf)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        self.verified
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.end.max(self.pos);
        let end = end.map(|e| e as u64).unwrap_or(len).min(len);
        if start as u64 > end {
            return Error::e_explain(InternalError, "seek beyond the end of a cached body");
        }
        self.pos = start as u64;
        self.end = end;
        self.crc = None;
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Writes a new entry: body to a temp file as it streams, then both files into place.
struct Miss {
    /// The number of invalidations when the fill started.
    started_after: u64,
    cache: &'static DiskCache,
    key: HashBinary,
    label: EntryLabel,
    meta: Option<(Vec<u8>, Vec<u8>)>,
    /// The meta, parsed, for the memory tier.
    parsed: Option<Parsed>,
    tmp: PathBuf,
    file: Option<File>,
    len: u64,
    crc: crc32fast::Hasher,
    /// The body, kept while it is small enough for the memory tier.
    mem_buf: Option<Vec<u8>>,
    finished: bool,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.crc.update(&data);
        self.len += data.len() as u64;
        if let Some(buf) = self.mem_buf.as_mut() {
            if self.len <= self.cache.mem_object_max() {
                buf.extend_from_slice(&data);
            } else {
                self.mem_buf = None;
            }
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::explain(InternalError, "cache file already closed"))?;
        let (file, r) = tokio::task::spawn_blocking(move || {
            let r = file.write_all(&data);
            (file, r)
        })
        .await
        .map_err(|e| internal("cache write task", e))?;
        self.file = Some(file);
        r.map_err(|e| write_failed("cannot write a cache file", e))
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let cache = self.cache;
        let key = self.key;
        let gen = cache.next_gen.fetch_add(1, Ordering::Relaxed);
        let (internal_meta, header) = self.meta.take().unwrap_or_default();
        let mf = MetaFile {
            gen,
            body_len: self.len,
            body_crc: self.crc.clone().finalize(),
            label: self.label.clone(),
            internal: internal_meta,
            header,
        };
        let file = self.file.take();
        let tmp = self.tmp.clone();
        let body_path = cache.body_path(&key, gen);
        let (mf, r) = tokio::task::spawn_blocking(move || {
            let r = (|| -> io::Result<u64> {
                let f = file.ok_or_else(|| io::Error::other("cache file already closed"))?;
                f.sync_all()?;
                drop(f);
                crate::util::create_private_dir_all(&cache.shard(&key))?;
                fs::rename(&tmp, &body_path)?;
                cache.write_meta(&key, &mf)
            })();
            (mf, r)
        })
        .await
        .map_err(|e| internal("cache write task", e))?;
        let meta_len = match r {
            Ok(n) => n,
            Err(e) => {
                let _ = fs::remove_file(cache.body_path(&key, gen));
                return Err(write_failed("cannot store a cache entry", e));
            }
        };
        self.finished = true;
        let size = self.len + meta_len;
        let mem_meta = match self.mem_buf.take() {
            Some(buf) if self.len <= cache.mem_object_max() => self
                .parsed
                .take()
                .map(|parsed| (MemMeta::new(mf.internal, mf.header.len(), parsed), buf)),
            _ => None,
        };
        let replaced = {
            let mut i = cache.lock();
            if i.invalidated_since(self.started_after, &mf.label) {
                // Invalidated while it was being fetched: not stored, as CloudFront.
                let old = i.remove(&key);
                cache.publish(&i);
                drop(i);
                if let Some(old) = old {
                    let _ = fs::remove_file(cache.body_path(&key, old.gen));
                }
                cache.delete_files(&key, gen);
                return Ok(MissFinishType::Created(0));
            }
            let old = i.remove(&key);
            let t = i.next_tick();
            i.disk_bytes += size;
            i.disk_lru.insert(t, key);
            i.disk.insert(
                key,
                DiskEntry {
                    tick: t,
                    gen,
                    body_len: self.len,
                    body_crc: mf.body_crc,
                    size,
                    verified: true,
                    label: Arc::new(mf.label),
                },
            );
            if let Some((mem_meta, buf)) = mem_meta {
                cache.insert_mem(&mut i, key, gen, Arc::new(mem_meta), Bytes::from(buf));
            }
            cache.publish(&i);
            old
        };
        if let Some(old) = replaced {
            if old.gen != gen {
                let _ = fs::remove_file(cache.body_path(&key, old.gen));
            }
        }
        cache.evict();
        Ok(MissFinishType::Created(size as usize))
    }
}

impl Drop for Miss {
    fn drop(&mut self) {
        // An abandoned write (origin error, client gone, body too large) leaves nothing.
        if !self.finished {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::ResponseHeader;
    use std::time::{Duration, SystemTime};

    fn leak(c: DiskCache) -> &'static DiskCache {
        Box::leak(Box::new(c))
    }

    fn meta(body_len: usize) -> CacheMeta {
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("content-length", body_len.to_string()).unwrap();
        let now = SystemTime::now();
        CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
    }

    fn key(path: &str) -> CacheKey {
        CacheKey::new(format!("d0{path}"), EntryLabel::tag("d0", "h", path))
    }

    async fn put(c: &'static DiskCache, path: &str, body: &[u8]) {
        let span = pingora::cache::trace::Span::inactive().handle();
        let mut m = c.get_miss_handler(&key(path), &meta(body.len()), &span).await.unwrap();
        for chunk in body.chunks(7000) {
            m.write_body(Bytes::copy_from_slice(chunk), false).await.unwrap();
        }
        m.finish().await.unwrap();
    }

    async fn get(c: &'static DiskCache, path: &str) -> Option<Vec<u8>> {
        let span = pingora::cache::trace::Span::inactive().handle();
        let (_, mut hit) = c.lookup(&key(path), &span).await.unwrap()?;
        let mut out = Vec::new();
        while let Some(b) = hit.read_body().await.unwrap() {
            out.extend_from_slice(&b);
        }
        Some(out)
    }

    #[tokio::test]
    async fn stores_survives_reopen_and_discards_damage() {
        let dir = tempfile::tempdir().unwrap();
        let small: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let large: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 253) as u8).collect();
        {
            let c = leak(DiskCache::open(dir.path(), 1 << 30, 1 << 20).unwrap());
            assert_eq!(get(c, "/a").await, None);
            put(c, "/a", &small).await;
            put(c, "/big", &large).await;
            assert_eq!(get(c, "/a").await.as_deref(), Some(&small[..]));
            assert_eq!(c.stats().memory_entries, 1, "small goes to memory, large does not");
        }
        let c = leak(DiskCache::open(dir.path(), 1 << 30, 1 << 20).unwrap());
        assert_eq!(c.stats().disk_entries, 2);
        assert_eq!(get(c, "/a").await.as_deref(), Some(&small[..]));
        assert_eq!(get(c, "/big").await.as_deref(), Some(&large[..]));

        // Flip a byte of the small body and truncate the big one: both are discarded.
        let k = key("/a").combined_bin();
        let gen = c.lock().disk[&k].gen;
        let path = c.body_path(&k, gen);
        let mut data = fs::read(&path).unwrap();
        data[100] ^= 0xff;
        fs::write(&path, data).unwrap();
        let kb = key("/big").combined_bin();
        let genb = c.lock().disk[&kb].gen;
        let f = fs::OpenOptions::new().write(true).open(c.body_path(&kb, genb)).unwrap();
        f.set_len(1000).unwrap();
        drop(f);
        let c = leak(DiskCache::open(dir.path(), 1 << 30, 1 << 20).unwrap());
        assert_eq!(c.stats().disk_entries, 1, "truncated body dropped at start-up");
        assert_eq!(get(c, "/a").await, None, "corrupted body is never served");
        assert_eq!(c.stats().disk_entries, 0);
    }

    /// The body `file` holds, read from its start.
    fn contents(file: &File) -> Vec<u8> {
        let mut out = vec![0; file.metadata().unwrap().len() as usize];
        file.read_exact_at(&mut out, 0).unwrap();
        out
    }

    #[tokio::test]
    async fn a_memory_entrys_body_file_is_its_own_and_kept_open_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let c = leak(DiskCache::open(dir.path(), 1 << 30, 16 << 20).unwrap());
        let k = key("/m").primary_bin();
        put(c, "/m", &body).await;
        let e = c.memory_entry(&k).unwrap();
        assert!(e.file.is_none());
        let f = c.body_file(&k, &e).unwrap();
        assert_eq!(contents(&f), body);
        // Kept with the entry: the next hit gets the same open file.
        let again = c.memory_entry(&k).unwrap();
        assert!(Arc::ptr_eq(again.file.as_ref().unwrap(), &f));
        assert!(Arc::ptr_eq(&c.body_file(&k, &again).unwrap(), &f));

        // Replaced: the new entry has its own file; the old one still reads the old bytes
        // for a hit that had it (the file is unlinked, not changed).
        let new_body = vec![9u8; 50_000];
        put(c, "/m", &new_body).await;
        let gone = c.memory_entry(&k).unwrap();
        assert!(gone.file.is_none());
        assert_eq!(contents(&f), body);
        // An entry gone since its lookup has no file to open.
        c.invalidate("d0", &[InvalidationPath::parse("/m").unwrap()]);
        assert!(c.body_file(&k, &gone).is_none());
        put(c, "/m", &new_body).await;
        let e = c.memory_entry(&k).unwrap();
        assert_eq!(contents(&c.body_file(&k, &e).unwrap()), new_body);

        // A file that no longer has the body's length is not used.
        put(c, "/t", &body).await;
        let kt = key("/t").primary_bin();
        let gen = c.lock().disk[&kt].gen;
        fs::OpenOptions::new()
            .write(true)
            .open(c.body_path(&kt, gen))
            .unwrap()
            .set_len(10)
            .unwrap();
        assert!(c.body_file(&kt, &c.memory_entry(&kt).unwrap()).is_none());
    }

    #[tokio::test]
    async fn a_memory_entry_remembers_the_first_variance_input_it_is_told_matched() {
        let dir = tempfile::tempdir().unwrap();
        let c = leak(DiskCache::open(dir.path(), 1 << 30, 16 << 20).unwrap());
        let k = key("/v").primary_bin();
        put(c, "/v", b"body").await;
        let first = c.memory_entry(&k).unwrap();
        assert!(!first.knows_variant(b"origin\0https://a\0"));
        first.remember_variant(b"origin\0https://a\0");
        // Every hit on the entry shares it; the first input stays.
        let again = c.memory_entry(&k).unwrap();
        assert!(again.knows_variant(b"origin\0https://a\0"));
        again.remember_variant(b"origin\0https://b\0");
        assert!(!first.knows_variant(b"origin\0https://b\0"));
        assert!(!first.knows_variant(b"origin\0https://a"));
        // A new body is a new entry, which knows nothing yet.
        put(c, "/v", b"new body").await;
        assert!(!c.memory_entry(&k).unwrap().knows_variant(b"origin\0https://a\0"));
    }

    #[tokio::test]
    async fn body_files_are_not_kept_when_the_tier_could_outgrow_the_open_files_limit() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![1u8; 40_000];
        let mut c = DiskCache::open(dir.path(), 1 << 30, 16 << 20).unwrap();
        // 16 MiB of 32 KiB bodies is 512 files.
        c.held_files_max = 511;
        let c = leak(c);
        let k = key("/m").primary_bin();
        put(c, "/m", &body).await;
        let f = c.body_file(&k, &c.memory_entry(&k).unwrap()).unwrap();
        assert_eq!(contents(&f), body);
        assert!(c.memory_entry(&k).unwrap().file.is_none(), "opened for the hit only");
        c.set_limits(1 << 30, 8 << 20);
        c.body_file(&k, &c.memory_entry(&k).unwrap()).unwrap();
        assert!(c.memory_entry(&k).unwrap().file.is_some(), "256 files fit");
    }

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

    #[tokio::test]
    async fn abandoned_writes_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = leak(DiskCache::open(dir.path(), 1 << 30, 1 << 20).unwrap());
        let span = pingora::cache::trace::Span::inactive().handle();
        let mut m = c.get_miss_handler(&key("/x"), &meta(10), &span).await.unwrap();
        m.write_body(Bytes::from_static(b"12345"), false).await.unwrap();
        drop(m);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(get(c, "/x").await, None);
    }
}
