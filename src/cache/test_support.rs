//! What the cache's unit tests share: a cache that lives for the test, and entries put
//! in and read back through pingora's `Storage` interface.

use bytes::Bytes;
use pingora::cache::key::CacheKey;
use pingora::cache::{CacheMeta, Storage};
use pingora::http::ResponseHeader;
use std::time::{Duration, SystemTime};

use super::{DiskCache, EntryLabel};

pub(super) fn leak(c: DiskCache) -> &'static DiskCache {
    Box::leak(Box::new(c))
}

pub(super) fn meta(body_len: usize) -> CacheMeta {
    let mut h = ResponseHeader::build(200, None).unwrap();
    h.insert_header("content-length", body_len.to_string()).unwrap();
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
}

pub(super) fn key(path: &str) -> CacheKey {
    CacheKey::new(format!("d0{path}"), EntryLabel::tag("d0", "h", path))
}

pub(super) async fn put(c: &'static DiskCache, path: &str, body: &[u8]) {
    let span = pingora::cache::trace::Span::inactive().handle();
    let mut m = c.get_miss_handler(&key(path), &meta(body.len()), &span).await.unwrap();
    for chunk in body.chunks(7000) {
        m.write_body(Bytes::copy_from_slice(chunk), false).await.unwrap();
    }
    m.finish().await.unwrap();
}

pub(super) async fn get(c: &'static DiskCache, path: &str) -> Option<Vec<u8>> {
    let span = pingora::cache::trace::Span::inactive().handle();
    let (_, mut hit) = c.lookup(&key(path), &span).await.unwrap()?;
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await.unwrap() {
        out.extend_from_slice(&b);
    }
    Some(out)
}
