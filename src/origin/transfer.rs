//! Moving object bytes between the network and the disk.
//!
//! Uploads (PutObject, UploadPart): the body is hashed (MD5 for the ETag, and the additional
//! checksum) on the request's task while a blocking thread,
//! fed through a bounded channel, writes it in large buffered writes and fsyncs it at the
//! end: receiving, hashing and writing overlap instead of taking turns. (Hashing then writing
//! each network chunk in turn held 64 MiB PUTs to ~55% of the disk's write speed.)
//!
//! Downloads (GetObject): [`ReadAhead`] reads the next chunk on a blocking thread while the
//! current one is being sent, so disk and network overlap, without a thread held for the
//! whole (possibly slow) download.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use std::future::Future as _;

/// What was received: its length, MD5 and checksum.
pub struct Received {
    pub size: u64,
    pub md5: [u8; 16],
    /// The digest of the algorithm [`receive`] was asked for.
    pub checksum: Vec<u8>,
}

pub enum ReceiveError {
    /// The client's body ended early or broke.
    Interrupted(String),
    /// The body is not the one whose SHA-256 the request signed (`x-amz-content-sha256`;
    /// s3s checks it as the body streams and fails the stream at its end).
    Sha256Mismatch,
    Io(io::Error),
}

/// Chunks in flight between the request's task and the writer (each up to the network's
/// chunk size, typically 16–64 KiB).
const QUEUE: usize = 128;
/// Writes reach the file in pieces of this size.
const WRITE_BUF: usize = 1 << 20;
/// Large uploads are flushed to the disk as they arrive, not all at the end: the disk then
/// writes while the rest is received and hashed, and the final fsync has little left to do.
/// (One fsync at the end made a 64 MiB PUT take hashing time plus flushing time.)
const SYNC_EVERY: usize = 8 << 20;

/// Writes `body` to a new file at `path`, fsynced, and returns its size, MD5 and `algorithm`'s
/// checksum (computed in the same pass). On an error the file may be left behind partially
/// written: the caller removes it.
pub async fn receive(
    mut body: s3s::dto::StreamingBlob,
    path: &Path,
    algorithm: super::checksum::Algorithm,
) -> Result<Received, ReceiveError> {
    let file = crate::util::create_private_file(path).map_err(ReceiveError::Io)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
    let aborted = Arc::new(AtomicBool::new(false));
    let writer = tokio::task::spawn_blocking({
        let aborted = aborted.clone();
        move || -> io::Result<()> {
            let mut out = io::BufWriter::with_capacity(WRITE_BUF, file);
            let mut unsynced = 0;
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all(&chunk)?;
                unsynced += chunk.len();
                if unsynced >= SYNC_EVERY {
                    out.flush()?;
                    out.get_ref().sync_data()?;
                    unsynced = 0;
                }
            }
            if aborted.load(Ordering::Relaxed) {
                return Ok(());
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
        }
    });
    let mut md5 = openssl::hash::Hasher::new(openssl::hash::MessageDigest::md5())
        .map_err(|e| ReceiveError::Io(io::Error::other(e)))?;
    let mut checksum = algorithm.hasher();
    let mut size = 0u64;
    let mut failure = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                if let Err(e) = md5.update(&chunk) {
                    failure = Some(ReceiveError::Io(io::Error::other(e)));
                    break;
                }
                checksum.update(&chunk);
                size += chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    // The writer stopped: its error is reported below.
                    break;
                }
            }
            Err(e) => {
                // s3s's UploadStreamError is private: its message is what tells it apart.
                failure = Some(if e.to_string().contains("Sha256Mismatch") {
                    ReceiveError::Sha256Mismatch
                } else {
                    ReceiveError::Interrupted(format!("The upload was interrupted: {e}"))
                });
                break;
            }
        }
    }
    if failure.is_some() {
        aborted.store(true, Ordering::Relaxed);
    }
    drop(tx);
    let written = writer.await.map_err(|e| ReceiveError::Io(io::Error::other(e)))?;
    if let Some(f) = failure {
        return Err(f);
    }
    written.map_err(ReceiveError::Io)?;
    let digest = md5.finish().map_err(|e| ReceiveError::Io(io::Error::other(e)))?;
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest);
    Ok(Received {
        size,
        md5: out,
        checksum: checksum.finish(),
    })
}

/// Writes the inputs, in order, into a new file at `out`, fsynced (a multipart completion, a
/// server-side copy); returns its size and, with a hasher, the digest of all of it, computed
/// in the same pass.
pub fn concatenate(
    inputs: Vec<std::fs::File>,
    out: &Path,
    mut hasher: Option<super::checksum::Hasher>,
) -> io::Result<(u64, Option<Vec<u8>>)> {
    use std::io::Read;
    let mut file = io::BufWriter::with_capacity(WRITE_BUF, crate::util::create_private_file(out)?);
    let mut buf = vec![0u8; WRITE_BUF];
    let mut size = 0u64;
    for mut input in inputs {
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..n]);
            }
            file.write_all(&buf[..n])?;
            size += n as u64;
        }
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((size, hasher.map(|h| h.finish())))
}

/// A stream of a file's bytes `start..start + len` that keeps reads in flight ahead of the
/// consumer: up to [`AHEAD`] of them for large ranges (a single one ahead held cold 64 MiB
/// GETs to ~65% of nginx's sendfile on the same files).
pub struct ReadAhead {
    file: Arc<std::fs::File>,
    pos: u64,
    end: u64,
    chunk: u64,
    ahead: usize,
    pending: std::collections::VecDeque<tokio::task::JoinHandle<io::Result<Bytes>>>,
}

/// Reads in flight for a large range.
const AHEAD: usize = 3;

impl ReadAhead {
    /// Large ranges go in 1 MiB reads, small ones in 64 KiB (each read is a hop to a blocking
    /// thread; 64 KiB reads held 64 MiB GETs to a quarter of what the disk gives).
    pub fn new(file: std::fs::File, start: u64, len: u64) -> ReadAhead {
        let large = len >= 4 << 20;
        let mut r = ReadAhead {
            file: Arc::new(file),
            pos: start,
            end: start + len,
            chunk: if large { 1 << 20 } else { 64 << 10 },
            ahead: if large { AHEAD } else { 1 },
            pending: Default::default(),
        };
        r.fill();
        r
    }

    fn fill(&mut self) {
        while self.pending.len() < self.ahead && self.pos < self.end {
            self.read_next();
        }
    }

    fn read_next(&mut self) {
        let n = (self.end - self.pos).min(self.chunk) as usize;
        let (file, pos) = (self.file.clone(), self.pos);
        self.pos += n as u64;
        self.pending.push_back(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; n];
            file.read_exact_at(&mut buf, pos)?;
            Ok(Bytes::from(buf))
        }));
    }
}

impl futures::Stream for ReadAhead {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(next) = self.pending.front_mut() else {
            return std::task::Poll::Ready(None);
        };
        let done = std::task::ready!(std::pin::Pin::new(next).poll(cx));
        self.pending.pop_front();
        let item = done.unwrap_or_else(|e| Err(io::Error::other(e)));
        if item.is_ok() {
            self.fill();
        } else {
            self.end = self.pos;
            for p in self.pending.drain(..) {
                p.abort();
            }
        }
        std::task::Poll::Ready(Some(item))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        for p in self.pending.drain(..) {
            p.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_ahead_yields_exactly_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(5u32 << 20) + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        for (start, len) in [(0u64, data.len() as u64), (7, 100), (1 << 20, (4 << 20) + 5), (9, 0)] {
            let mut s = ReadAhead::new(std::fs::File::open(&path).unwrap(), start, len);
            let mut got = Vec::new();
            while let Some(c) = s.next().await {
                got.extend_from_slice(&c.unwrap());
            }
            assert_eq!(got, &data[start as usize..(start + len) as usize], "{start}+{len}");
        }
        // A range past the end of the file is an error, not a short body.
        let mut s = ReadAhead::new(std::fs::File::open(&path).unwrap(), data.len() as u64 - 1, 10);
        assert!(s.next().await.unwrap().is_err());
    }
}
