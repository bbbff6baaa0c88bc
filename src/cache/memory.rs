//! The memory tier: small hot entries (copies of disk entries) kept with their meta parsed,
//! as the edge's hit path reads them.

use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::cache::CacheMeta;
use pingora::prelude::*;

use super::DiskCache;

/// Memory-tier bodies from this size on are sent from their disk copy with `sendfile` where
/// the connection allows it, as nginx sends its cache files ([`DiskCache::body_file`]).
/// Written from memory, the copy into the socket was a third of homefront's CPU in the
/// 100 KiB hit row (`perf`: `_copy_from_iter` 30 %). Below it the copy costs less than a
/// `sendfile` call besides the header's write. Server CPU per hit (`wrk -c32`, two runs
/// each), from memory against with `sendfile`: 17–19 against 25–34 µs at 8 KiB, 18–25
/// against 25–29 at 24 KiB, 24–25 against 19–20 at 32 KiB, 33–41 against 27–31 at 100 KiB.
/// Bodies up to this size are read whole, checked and served from memory.
pub(super) const SMALL_BODY: u64 = 1 << 20;

pub const FILE_BODY_MIN: usize = 32 * 1024;

pub(super) struct MemEntry {
    pub(super) tick: u64,
    /// The generation of the disk entry it is a copy of (every memory-tier entry is one).
    pub(super) gen: u64,
    pub(super) meta: Arc<MemMeta>,
    pub(super) body: Bytes,
    /// That disk entry's body file, kept open once a hit sent it with `sendfile`
    /// ([`DiskCache::body_file`]).
    pub(super) file: Option<Arc<File>>,
}

/// A memory-tier entry's meta, kept parsed: a hit then costs a clone of the response header
/// instead of decompressing it (pingora stores it zstd-compressed; that decode was a quarter
/// of the instructions of a small hit).
pub(super) struct MemMeta {
    internal: Vec<u8>,
    /// Bytes of the serialized meta, for the tier's size limit.
    pub(super) size: u64,
    parsed: Parsed,
    /// A request's variance input known to hash to this entry's variance
    /// ([`MemoryEntry::knows_variant`]).
    variant_input: std::sync::OnceLock<Box<[u8]>>,
}

/// What a memory-tier entry keeps of its meta already parsed: the header (cloned on a hit
/// instead of decompressed) and what the hit path checks.
pub(super) struct Parsed {
    header: pingora::http::ResponseHeader,
    fresh_until: SystemTime,
    epoch: SystemTime,
    variance: Option<HashBinary>,
}

impl Parsed {
    pub(super) fn of(meta: &CacheMeta) -> Parsed {
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
    pub(super) fn new(internal: Vec<u8>, header_len: usize, parsed: Parsed) -> MemMeta {
        MemMeta {
            size: (internal.len() + header_len) as u64,
            internal,
            parsed,
            variant_input: std::sync::OnceLock::new(),
        }
    }

    /// The `CacheMeta` pingora gets on a hit: the internal part decoded (small, cheap), with
    /// the parsed header put in place of a serialized empty one.
    pub(super) fn to_cache_meta(&self) -> Result<CacheMeta> {
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

pub(super) fn mem_size(m: &MemEntry) -> u64 {
    m.body.len() as u64 + m.meta.size
}

impl DiskCache {
    pub(super) fn mem_object_max(&self) -> u64 {
        (self.mem_limit.load(Ordering::Relaxed) / 8).min(SMALL_BODY)
    }

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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::policy::cache_policy::InvalidationPath;
    use pingora::cache::key::CacheHashKey;
    use std::fs;
    use std::os::unix::fs::FileExt;

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
}
