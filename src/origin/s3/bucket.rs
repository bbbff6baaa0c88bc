//! Buckets: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation, and
//! the bucket's versioning state.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::acl::canned_public_read;
use super::error::map_err;
use super::meta::timestamp;
use crate::origin::store::{DiskStore, StoreError};
use crate::policy::bucket::Versioning;

pub(super) async fn list_buckets(
    store: &DiskStore,
    _req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let buckets = store
        .list_buckets()
        .into_iter()
        .map(|(name, created)| Bucket {
            name: Some(name),
            creation_date: Some(timestamp(created)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: None,
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    store: &DiskStore,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let public_read = match &req.input.acl {
        Some(a) => canned_public_read(a.as_str())?,
        None => false,
    };
    let object_lock = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
    let name = req.input.bucket;
    store.create_bucket_with(&name, object_lock).map_err(map_err)?;
    if public_read {
        store.set_bucket_public_read(&name, true).map_err(map_err)?;
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub(super) async fn head_bucket(
    store: &DiskStore,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    if !store.bucket_exists(&req.input.bucket) {
        return Err(map_err(StoreError::NoSuchBucket));
    }
    Ok(S3Response::new(HeadBucketOutput::default()))
}

pub(super) async fn delete_bucket(
    store: &DiskStore,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    store.delete_bucket(&req.input.bucket).map_err(map_err)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn get_bucket_location(
    store: &DiskStore,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    if !store.bucket_exists(&req.input.bucket) {
        return Err(map_err(StoreError::NoSuchBucket));
    }
    Ok(S3Response::new(GetBucketLocationOutput::default()))
}

pub(super) async fn put_bucket_versioning(
    store: &DiskStore,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let input = req.input;
    let state = match input.versioning_configuration.status.as_ref().map(|s| s.as_str()) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "The versioning Status must be Enabled or Suspended."
            ))
        }
    };
    store.set_versioning(&input.bucket, state).map_err(map_err)?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(super) async fn get_bucket_versioning(
    store: &DiskStore,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let state = store.versioning(&req.input.bucket).map_err(map_err)?;
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: state.map(|s| {
            BucketVersioningStatus::from_static(match s {
                Versioning::Enabled => BucketVersioningStatus::ENABLED,
                Versioning::Suspended => BucketVersioningStatus::SUSPENDED,
            })
        }),
        mfa_delete: None,
    }))
}
