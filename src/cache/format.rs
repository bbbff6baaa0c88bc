//! The meta file format: what `<key>.meta` holds (HFC2, and HFC1 from before hosts were
//! recorded), and the entry label the cache key's `user_tag` carries for invalidation.

use std::io;

use crate::policy::cache_policy::InvalidationPath;

const MAGIC: &[u8; 4] = b"HFC2";
/// The meta format before entries recorded their host; still read.
const MAGIC_V1: &[u8; 4] = b"HFC1";

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

    pub(super) fn from_tag(tag: &str) -> EntryLabel {
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
    pub(super) fn invalidated_by(&self, distribution: &str, host: Option<&str>, paths: &[InvalidationPath]) -> bool {
        self.distribution == distribution
            && host.is_none_or(|h| self.host.is_empty() || self.host == h)
            && paths.iter().any(|p| p.covers(&self.path))
    }
}

pub(super) fn corrupt(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
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
