//! Listing objects: ListObjects and ListObjectsV2, pages grouped by delimiter, and the
//! `encoding-type=url` encoding that listings share.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use super::meta::timestamp;
use crate::origin::store::{DiskStore, ObjectMeta, StoreError};

/// A listing's entry for `meta`, with the owner when `owner` (ListObjects always; V2 with
/// `fetch-owner=true`). The checksum's algorithm and type are listed as S3 lists them.
pub(super) fn to_object(meta: &ObjectMeta, owner: bool) -> Object {
    Object {
        key: Some(meta.key.clone()),
        size: Some(meta.size as i64),
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        last_modified: Some(timestamp(meta.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        owner: owner.then(super::acl::owner),
        checksum_algorithm: meta
            .checksum
            .as_ref()
            .map(|c| vec![ChecksumAlgorithm::from(c.algorithm.name().to_string())]),
        checksum_type: meta
            .checksum
            .as_ref()
            .map(|c| ChecksumType::from(c.kind.name().to_string())),
        ..Default::default()
    }
}

/// A delimiter parameter as listings use it: an empty one is none (and is not echoed).
pub(super) fn delimiter(d: &Option<String>) -> Option<String> {
    d.clone().filter(|d| !d.is_empty())
}

/// The common prefix a listing groups `key` under: `prefix` plus what follows it up to and
/// including the first `delimiter`; `None` when there is no delimiter after the prefix.
pub(super) fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let rest = &key[prefix.len()..];
    delimiter
        .filter(|d| !d.is_empty())
        .and_then(|d| rest.find(d).map(|i| format!("{prefix}{}", &rest[..i + d.len()])))
}

/// A listing page: objects and common prefixes (grouped by `delimiter`), in key order.
pub(super) struct Page {
    objects: Vec<Object>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Last key or prefix returned, for the continuation marker.
    last: Option<String>,
}

/// Where a listing starts and how much it takes.
pub(super) struct Window<'a> {
    pub(super) prefix: &'a str,
    pub(super) delimiter: Option<&'a str>,
    pub(super) after: Option<&'a str>,
    pub(super) max: usize,
    pub(super) owner: bool,
}

pub(super) fn list_page(store: &DiskStore, bucket: &str, w: Window<'_>) -> S3Result<Page> {
    let Window {
        prefix,
        delimiter,
        after,
        max,
        owner,
    } = w;
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    if max == 0 {
        // S3: an empty page that is not truncated (the bucket must still exist).
        if !store.bucket_exists(bucket) {
            return Err(map_err(StoreError::NoSuchBucket));
        }
        return Ok(page);
    }
    let mut cursor = after.map(str::to_string);
    loop {
        let (batch, more) = store
            .list(bucket, prefix, cursor.as_deref(), 1000, |_| true)
            .map_err(map_err)?;
        for meta in &batch {
            cursor = Some(meta.key.clone());
            let group = common_prefix(&meta.key, prefix, delimiter);
            if let Some(cp) = group {
                if page.prefixes.last() == Some(&cp) || after.is_some_and(|a| cp.as_str() <= a) {
                    continue;
                }
                if page.objects.len() + page.prefixes.len() == max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.last = Some(cp.clone());
                page.prefixes.push(cp);
            } else {
                if page.objects.len() + page.prefixes.len() == max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.last = Some(meta.key.clone());
                page.objects.push(to_object(meta, owner));
            }
        }
        if !more {
            return Ok(page);
        }
    }
}

/// `encoding-type=url`: keys, prefixes and markers in listings are URL-encoded (`/` kept, a
/// space as `%20`, which every decoder reads back as a space; `+` would not be), which
/// clients such as the aws cli ask for and then decode.
pub(super) fn url_encoding(encoding_type: &Option<EncodingType>) -> bool {
    encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL)
}

pub(super) fn url_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

impl Page {
    fn url_encoded(mut self, yes: bool) -> Self {
        if yes {
            for o in &mut self.objects {
                o.key = o.key.as_deref().map(url_encode);
            }
            for p in &mut self.prefixes {
                *p = url_encode(p);
            }
            self.last = self.last.as_deref().map(url_encode);
        }
        self
    }
}

/// Encodes an echoed request value when `yes`.
pub(super) fn enc(yes: bool, v: Option<String>) -> Option<String> {
    if yes {
        v.as_deref().map(url_encode)
    } else {
        v
    }
}

fn common_prefixes(prefixes: Vec<String>) -> Option<Vec<CommonPrefix>> {
    Some(prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect())
}

pub(super) fn max_keys(v: Option<i32>) -> usize {
    v.map(|m| m.clamp(0, 1000) as usize).unwrap_or(1000)
}

pub(super) async fn list_objects(
    store: &DiskStore,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = max_keys(input.max_keys);
    let delimiter = delimiter(&input.delimiter);
    let page = list_page(
        store,
        &input.bucket,
        Window {
            prefix: &prefix,
            delimiter: delimiter.as_deref(),
            after: input.marker.as_deref(),
            max,
            owner: true,
        },
    )?;
    let url = url_encoding(&input.encoding_type);
    let page = page.url_encoded(url);
    let next_marker = if page.truncated && delimiter.is_some() {
        page.last.clone()
    } else {
        None
    };
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        // ListObjects (v1) encodes its keys, prefixes, delimiter and markers but not the
        // Prefix it echoes: clients decode exactly those (v2 and versions: the Prefix too).
        prefix: Some(prefix),
        marker: enc(url, Some(input.marker.unwrap_or_default())),
        delimiter: enc(url, delimiter),
        max_keys: Some(max as i32),
        is_truncated: Some(page.truncated),
        next_marker,
        encoding_type: input.encoding_type,
        contents: Some(page.objects),
        common_prefixes: common_prefixes(page.prefixes),
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    store: &DiskStore,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let after = match &input.continuation_token {
        Some(t) => {
            let raw = openssl::base64::decode_block(t)
                .map_err(|_| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?;
            Some(
                String::from_utf8(raw)
                    .map_err(|_| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
            )
        }
        None => input.start_after.clone(),
    };
    let max = max_keys(input.max_keys);
    let delimiter = delimiter(&input.delimiter);
    let page = list_page(
        store,
        &input.bucket,
        Window {
            prefix: &prefix,
            delimiter: delimiter.as_deref(),
            after: after.as_deref(),
            max,
            owner: input.fetch_owner == Some(true),
        },
    )?;
    let url = url_encoding(&input.encoding_type);
    // The continuation token is made from the raw key, before encoding.
    let raw_last = page.last.clone();
    let page = page.url_encoded(url);
    let key_count = (page.objects.len() + page.prefixes.len()) as i32;
    let next = if page.truncated {
        raw_last.as_ref().map(|l| openssl::base64::encode_block(l.as_bytes()))
    } else {
        None
    };
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: enc(url, Some(prefix)),
        delimiter: enc(url, delimiter),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        is_truncated: Some(page.truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: next,
        start_after: enc(url, input.start_after),
        encoding_type: input.encoding_type,
        contents: Some(page.objects),
        common_prefixes: common_prefixes(page.prefixes),
        ..Default::default()
    }))
}
