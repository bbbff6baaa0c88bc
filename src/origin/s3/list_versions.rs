//! ListObjectVersions: versions and delete markers, newest first within a key.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::acl::owner;
use super::error::map_err;
use super::list::{common_prefix, delimiter, enc, max_keys, url_encode, url_encoding};
use super::meta::timestamp;
use crate::origin::store::{DiskStore, ObjectMeta};

/// A ListObjectVersions page: versions and delete markers (each with whether it is the
/// current version) and common prefixes, in key order, newest version first within a key.
pub(super) struct VersionPage {
    versions: Vec<(Arc<ObjectMeta>, bool)>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Key (or prefix) and version id of the last entry returned, for the next markers.
    last: Option<(String, Option<String>)>,
}

pub(super) fn version_page(
    store: &DiskStore,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    version_marker: Option<&str>,
    max: usize,
) -> S3Result<VersionPage> {
    let mut page = VersionPage {
        versions: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    // With a version-id-marker the marker's key is listed again, from after that version.
    let version_marker = version_marker.filter(|_| key_marker.is_some());
    let mut cursor = key_marker.map(str::to_string);
    let mut inclusive = version_marker.is_some();
    let mut count = 0;
    loop {
        let (batch, more) = store
            .list_records(bucket, prefix, cursor.as_deref(), inclusive, 1000, |_| true)
            .map_err(map_err)?;
        inclusive = false;
        for record in &batch {
            cursor = Some(record.key.clone());
            let group = common_prefix(&record.key, prefix, delimiter);
            if let Some(cp) = group {
                if page.prefixes.last() == Some(&cp) || key_marker.is_some_and(|a| cp.as_str() <= a) {
                    continue;
                }
                if count == max {
                    page.truncated = true;
                    return Ok(page);
                }
                count += 1;
                page.last = Some((cp.clone(), None));
                page.prefixes.push(cp);
                continue;
            }
            let mut skip_to = version_marker.filter(|_| key_marker == Some(record.key.as_str()));
            for (i, v) in record.versions().enumerate() {
                if let Some(marker) = skip_to {
                    if v.version_label() == marker {
                        skip_to = None;
                    }
                    continue;
                }
                if count == max {
                    page.truncated = true;
                    return Ok(page);
                }
                count += 1;
                page.last = Some((v.key.clone(), Some(v.version_label().to_string())));
                page.versions.push((Arc::new(v.alone()), i == 0));
            }
        }
        if !more {
            return Ok(page);
        }
    }
}

pub(super) async fn list_object_versions(
    store: &DiskStore,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = max_keys(input.max_keys);
    let key_marker = input.key_marker.as_deref().filter(|k| !k.is_empty());
    let delimiter = delimiter(&input.delimiter);
    let page = version_page(
        store,
        &input.bucket,
        &prefix,
        delimiter.as_deref(),
        key_marker,
        input.version_id_marker.as_deref().filter(|v| !v.is_empty()),
        max,
    )?;
    let url = url_encoding(&input.encoding_type);
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for (v, is_latest) in page.versions {
        let key = enc(url, Some(v.key.clone()));
        let version_id = Some(v.version_label().to_string());
        let last_modified = Some(timestamp(v.last_modified));
        if v.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(is_latest),
                key,
                last_modified,
                owner: Some(owner()),
                version_id,
            });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(ETag::Strong(v.etag.clone())),
                is_latest: Some(is_latest),
                key,
                last_modified,
                owner: Some(owner()),
                size: Some(v.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id,
                ..Default::default()
            });
        }
    }
    let (next_key, next_version) = match (page.truncated, page.last) {
        (true, Some((k, v))) => (Some(k), v),
        _ => (None, None),
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: enc(url, Some(prefix)),
        delimiter: enc(url, delimiter),
        key_marker: enc(url, input.key_marker),
        version_id_marker: input.version_id_marker,
        next_key_marker: enc(url, next_key),
        next_version_id_marker: next_version,
        max_keys: Some(max as i32),
        is_truncated: Some(page.truncated),
        encoding_type: input.encoding_type,
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(
            page.prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(if url { url_encode(&p) } else { p }),
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
