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
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let input = req.input;
    let max = match input.max_buckets {
        None => usize::MAX,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be from 1 to 10000.")),
    };
    // The continuation token is the last name of the previous page (opaque to clients).
    let after = match &input.continuation_token {
        None => None,
        Some(t) => Some(
            openssl::base64::decode_block(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
        ),
    };
    let prefix = input.prefix.clone().unwrap_or_default();
    let mut matching = store
        .list_buckets()
        .into_iter()
        .filter(|(name, _)| name.starts_with(&prefix) && after.as_ref().is_none_or(|a| name > a))
        .peekable();
    let mut buckets = Vec::new();
    while buckets.len() < max {
        let Some((name, created)) = matching.next() else { break };
        buckets.push(Bucket {
            name: Some(name),
            creation_date: Some(timestamp(created)),
            ..Default::default()
        });
    }
    let next = matching
        .peek()
        .and(buckets.last())
        .and_then(|b| b.name.as_ref())
        .map(|n| openssl::base64::encode_block(n.as_bytes()));
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(super::acl::owner()),
        continuation_token: next,
        prefix: input.prefix,
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
    match store.create_bucket_with(&name, object_lock) {
        // S3 in us-east-1, for legacy compatibility: re-creating a bucket you own succeeds and
        // resets its ACL. Every other region answers 409 BucketAlreadyOwnedByYou.
        Err(StoreError::BucketExists) if legacy_region(req.region.as_ref().map(|r| r.as_str())) => {
            store.set_bucket_public_read(&name, public_read).map_err(map_err)?;
        }
        other => other.map_err(map_err)?,
    }
    if public_read {
        store.set_bucket_public_read(&name, true).map_err(map_err)?;
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

/// The region whose CreateBucket keeps S3's legacy answer (the default when none is named).
fn legacy_region(region: Option<&str>) -> bool {
    matches!(region, None | Some("" | "us-east-1"))
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
