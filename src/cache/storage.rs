//! The pingora-cache `Storage` over [`DiskCache`]: lookups, and the hit and miss handlers
//! that stream a body out of the cache or into it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::{CacheHashKey, CacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheMeta, Storage};
use pingora::prelude::*;

use super::disk::{hex, internal, Loaded};
use super::format::{EntryLabel, MetaFile};
use super::index::DiskEntry;
use super::memory::{MemMeta, Parsed};
use super::DiskCache;
use crate::telemetry;

/// Read size for larger bodies. (256 KiB halved the hops to the blocking pool but took 100
/// concurrent 100 MiB downloads from ~150 to ~360 MiB of RSS: pingora buffers several.)
const CHUNK: usize = 64 * 1024;

/// A cache entry that could not be written (the disk is full, say): counted and logged; the
/// response still goes to the viewer, only uncached.
fn write_failed(what: &'static str, e: io::Error) -> Box<Error> {
    telemetry::CACHE_DISCARDED.with_label_values(&["write_failed"]).inc();
    tracing::warn!("cache: {what}: {e}; the response is served without caching it");
    internal(what, e)
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
    use super::super::test_support::*;
    use super::*;

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
