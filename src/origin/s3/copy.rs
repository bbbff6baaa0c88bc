//! Server-side copies: CopyObject, and UploadPartCopy (a part read from an object).

use std::io::SeekFrom;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::acl::canned_public_read;
use super::error::{map_err, map_mp};
use super::meta::parse_tagging_header;
use super::meta::{new_meta, object_headers, shown_version, timestamp, ObjectHeaders};
use crate::origin::multipart;
use crate::origin::store::{check_key, DiskStore, StoreError};

/// The bucket, key and version of a copy source (an access point's ARN is not supported).
fn bucket_source(source: &CopySource) -> S3Result<(&str, &str, Option<&str>)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(s3_error!(NotImplemented, "Only bucket/key copy sources are supported."));
    };
    Ok((bucket, key, version_id.as_deref()))
}

pub(super) async fn copy_object(
    store: &DiskStore,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    let (src_bucket, src_key, src_version) = bucket_source(&input.copy_source)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    // Copying an older version over the current one is how a version is restored.
    if src_bucket == input.bucket && src_key == input.key && src_version.is_none() && !replace {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    check_key(&input.key).map_err(|b| map_err(StoreError::BadKey(b)))?;
    let (src_meta, src_file) = store.open_object(src_bucket, src_key, src_version).map_err(map_err)?;
    let temp = store.temp_path(&input.bucket).map_err(map_err)?;
    let result = async {
        let mut from = tokio::fs::File::from_std(src_file);
        let mut to = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| map_err(StoreError::Io(e)))?;
        tokio::io::copy(&mut from, &mut to)
            .await
            .map_err(|e| map_err(StoreError::Io(e)))?;
        to.sync_all().await.map_err(|e| map_err(StoreError::Io(e)))?;
        let mut meta = if replace {
            new_meta(object_headers!(input))?
        } else {
            (*src_meta).clone()
        };
        meta.size = src_meta.size;
        meta.etag = src_meta.etag.clone();
        // ACLs are not copied (as in S3): the copy is private unless x-amz-acl says otherwise.
        meta.public_read = match &input.acl {
            Some(a) => canned_public_read(a.as_str())?,
            None => false,
        };
        let replace_tags = input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        meta.tags = if replace_tags {
            input
                .tagging
                .as_deref()
                .map(parse_tagging_header)
                .transpose()?
                .unwrap_or_default()
        } else {
            src_meta.tags.clone()
        };
        store.commit(&input.bucket, &input.key, &temp, meta).map_err(map_err)
    }
    .await;
    match result {
        Ok(meta) => Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(meta.etag.clone())),
                last_modified: Some(timestamp(meta.last_modified)),
                ..Default::default()
            }),
            copy_source_version_id: shown_version(store, src_bucket, &src_meta),
            version_id: shown_version(store, &input.bucket, &meta),
            ..Default::default()
        })),
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            Err(e)
        }
    }
}

pub(super) async fn upload_part_copy(
    store: &DiskStore,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    let (src_bucket, src_key, src_version) = bucket_source(&input.copy_source)?;
    let (meta, file) = store.open_object(src_bucket, src_key, src_version).map_err(map_err)?;
    // x-amz-copy-source-range: bytes=first-last (inclusive), within the source.
    let (start, len) = match &input.copy_source_range {
        None => (0, meta.size),
        Some(r) => {
            let bad = || {
                s3_error!(
                    InvalidRange,
                    "The x-amz-copy-source-range value is not valid for an object of {} bytes.",
                    meta.size
                )
            };
            let (a, b) = r
                .strip_prefix("bytes=")
                .and_then(|x| x.split_once('-'))
                .ok_or_else(bad)?;
            let (a, b): (u64, u64) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a > b || b >= meta.size {
                return Err(bad());
            }
            (a, b - a + 1)
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| map_err(StoreError::Io(e)))?;
    }
    let body = StreamingBlob::wrap(tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024));
    let target = multipart::PartTarget {
        bucket: &input.bucket,
        key: &input.key,
        upload_id: &input.upload_id,
        number: input.part_number,
    };
    let part = multipart::upload_part(store, target, body, Some(len as i64), None)
        .await
        .map_err(map_mp)?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.last_modified)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
