//! Object tags: the `x-amz-tagging` header, S3's limits, and GetObjectTagging,
//! PutObjectTagging, DeleteObjectTagging.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use super::meta::{check_tags, shown_version};
use crate::origin::store::DiskStore;

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

pub(super) async fn get_bucket_tagging(
    store: &DiskStore,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let tags = store.bucket_tags(&req.input.bucket).map_err(map_err)?;
    if tags.is_empty() {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    }
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: tags
            .into_iter()
            .map(|(k, v)| Tag {
                key: Some(k),
                value: Some(v),
            })
            .collect(),
    }))
}

pub(super) async fn put_bucket_tagging(
    store: &DiskStore,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let input = req.input;
    // Buckets may have 50 tags; the other limits are the objects'.
    let pairs: Vec<(String, String)> = input
        .tagging
        .tag_set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect();
    if pairs.len() > 50 {
        return Err(s3_error!(InvalidTag, "Bucket tags cannot be greater than 50"));
    }
    let mut tags = std::collections::BTreeMap::new();
    for chunk in pairs.chunks(10) {
        for (k, v) in check_tags(chunk.to_vec())? {
            if tags.insert(k, v).is_some() {
                return Err(s3_error!(InvalidTag, "Cannot provide multiple Tags with the same key"));
            }
        }
    }
    store.set_bucket_tags(&input.bucket, tags).map_err(map_err)?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub(super) async fn delete_bucket_tagging(
    store: &DiskStore,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    store
        .set_bucket_tags(&req.input.bucket, Default::default())
        .map_err(map_err)?;
    Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
}
