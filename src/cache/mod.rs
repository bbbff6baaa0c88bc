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
//!
//! Layers: `format` (the meta file), `index` (both tiers' LRU index, eviction and
//! invalidation), `memory` (the memory tier), `disk` (the files, start-up recovery and
//! reads) and `storage` (pingora's `Storage` with its hit and miss handlers).

mod disk;
mod format;
mod index;
mod memory;
mod storage;
#[cfg(test)]
mod test_support;

pub use disk::{DiskCache, Loaded};
pub use format::EntryLabel;
#[doc(hidden)]
pub use format::MetaFile;
pub use index::Stats;
pub use memory::{MemoryEntry, FILE_BODY_MIN};
