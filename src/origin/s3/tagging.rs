//! Object tags: the `x-amz-tagging` header, S3's limits, and GetObjectTagging,
//! PutObjectTagging, DeleteObjectTagging.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use super::meta::shown_version;
use crate::origin::store::DiskStore;

/// `x-amz-tagging: k1=v1&k2=v2` (URL-encoded).
pub(super) fn parse_tagging_header(header: &str) -> S3Result<std::collections::BTreeMap<String, String>> {
    let decode = |s: &str| {
        crate::policy::percent::percent_decode(s.replace('+', " ").as_bytes())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| s3_error!(InvalidTag, "The x-amz-tagging header is not valid URL encoding."))
    };
    let mut tags = Vec::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode(k)?, decode(v)?));
    }
    check_tags(tags)
}

/// S3's limits: at most 10 tags, unique keys of 1-128 characters, values up to 256.
pub(super) fn check_tags(tags: Vec<(String, String)>) -> S3Result<std::collections::BTreeMap<String, String>> {
    if tags.len() > 10 {
        return Err(s3_error!(InvalidTag, "Object tags cannot be greater than 10"));
    }
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "A tag key must be 1-128 characters and a value at most 256."
            ));
        }
        if out.insert(k, v).is_some() {
            return Err(s3_error!(InvalidTag, "Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(out)
}

pub(super) async fn get_object_tagging(
    store: &DiskStore,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = &req.input;
    let meta = store
        .head_version(&input.bucket, &input.key, input.version_id.as_deref())
        .map_err(map_err)?;
    let tag_set = meta
        .tags
        .iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect();
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set,
        version_id: shown_version(store, &input.bucket, &meta),
    }))
}

pub(super) async fn put_object_tagging(
    store: &DiskStore,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    let tags = check_tags(
        input
            .tagging
            .tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect(),
    )?;
    let meta = store
        .update_meta(&input.bucket, &input.key, input.version_id.as_deref(), |m| {
            m.tags = tags.clone()
        })
        .map_err(map_err)?;
    Ok(S3Response::new(PutObjectTaggingOutput {
        version_id: shown_version(store, &input.bucket, &meta),
    }))
}

pub(super) async fn delete_object_tagging(
    store: &DiskStore,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    let meta = store
        .update_meta(&input.bucket, &input.key, input.version_id.as_deref(), |m| {
            m.tags.clear()
        })
        .map_err(map_err)?;
    Ok(S3Response::new(DeleteObjectTaggingOutput {
        version_id: shown_version(store, &input.bucket, &meta),
    }))
}
