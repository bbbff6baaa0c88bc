//! The disk tier: the files under `data_dir/cache` (paths, crash-safe writes, reads with
//! their checks) and the scan that rebuilds the index at start-up.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::cache::CacheMeta;
use pingora::prelude::*;

use super::format::{corrupt, MetaFile};
use super::index::{DiskEntry, Index};
use super::memory::{MemMeta, Parsed, SMALL_BODY};
use crate::telemetry;

/// The disk cache with its memory tier. One per process (pingora wants `&'static`).
pub struct DiskCache {
    pub(super) dir: PathBuf,
    pub(super) index: Mutex<Index>,
    pub(super) disk_limit: AtomicU64,
    pub(super) mem_limit: AtomicU64,
    pub(super) next_gen: AtomicU64,
    /// Body files the memory tier may keep open (half the process's limit on open files).
    pub(super) held_files_max: u64,
}

pub(super) fn hex(key: &HashBinary) -> String {
    hex::encode(key)
}

pub(super) fn internal(context: &'static str, e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(InternalError, format!("{context}: {e}"))
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

    pub(super) fn shard(&self, key: &HashBinary) -> PathBuf {
        self.dir.join(format!("{:02x}", key[0]))
    }

    pub(super) fn meta_path(&self, key: &HashBinary) -> PathBuf {
        self.shard(key).join(format!("{}.meta", hex(key)))
    }

    pub(super) fn body_path(&self, key: &HashBinary, gen: u64) -> PathBuf {
        self.shard(key).join(format!("{}-{gen}.body", hex(key)))
    }

    pub(super) fn tmp_path(&self) -> PathBuf {
        let n = self.next_gen.fetch_add(1, Ordering::Relaxed);
        self.dir.join("tmp").join(format!("{n}.tmp"))
    }

    pub(super) fn delete_files(&self, key: &HashBinary, gen: u64) {
        let _ = fs::remove_file(self.meta_path(key));
        let _ = fs::remove_file(self.body_path(key, gen));
    }

    /// Removes one entry from both tiers and from disk.
    pub(super) fn remove_entry(&self, key: &HashBinary) -> bool {
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

    /// Writes a meta file crash-safely.
    pub(super) fn write_meta(&self, key: &HashBinary, meta: &MetaFile) -> io::Result<u64> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use pingora::cache::key::CacheHashKey;

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
}
