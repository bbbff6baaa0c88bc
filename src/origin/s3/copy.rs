//! Server-side copies: CopyObject, and UploadPartCopy (a part read from an object).

use std::io::SeekFrom;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::acl::canned_public_read;
use super::checksums::set_checksum;
use super::error::{map_err, map_mp};
use super::lock::{for_new_version, lock_headers};
use super::meta::parse_tagging_header;
use super::meta::{new_meta, object_headers, shown_version, timestamp, written_version, ObjectHeaders};
use crate::origin::checksum::{self, Algorithm, Stored};
use crate::origin::store::{check_key, now_ms, DiskStore, PartRecord, StoreError};
use crate::origin::{multipart, transfer};

/// `x-amz-copy-source-if-*`, checked on the source as GET's conditions are, except that
/// every failure is S3's 412 (a copy has no 304).
macro_rules! source_conditions {
    ($meta:expr, $input:expr) => {
        super::get::check_conditions(
            &$meta,
            $input.copy_source_if_match.as_ref(),
            $input.copy_source_if_none_match.as_ref(),
            $input.copy_source_if_modified_since.as_ref(),
            $input.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(|e| {
            if *e.code() == s3s::S3ErrorCode::NotModified {
                map_err(StoreError::PreconditionFailed)
            } else {
                e
            }
        })
    };
}

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
    source_conditions!(src_meta, input)?;
    // The copy's checksum: of the algorithm asked for, else the source's, else the default;
    // always of the whole copy, computed as it is written.
    let algorithm = match &input.checksum_algorithm {
        Some(a) => Algorithm::from_name(a.as_str())
            .ok_or_else(|| s3_error!(InvalidRequest, "Value for x-amz-checksum-algorithm header is invalid."))?,
        None => src_meta
            .checksum
            .as_ref()
            .map(|c| c.algorithm)
            .unwrap_or(checksum::DEFAULT),
    };
    let lock = store.object_lock(&input.bucket).map_err(map_err)?;
    let (retention, legal_hold) = for_new_version(lock.as_ref(), &lock_headers!(input), now_ms())?;
    let temp = store.temp_path(&input.bucket).map_err(map_err)?;
    let result = async {
        let out = temp.clone();
        let hasher = Some(algorithm.hasher());
        let (_, digest) = tokio::task::spawn_blocking(move || transfer::concatenate(vec![src_file], &out, hasher))
            .await
            .map_err(|e| map_err(StoreError::Io(std::io::Error::other(e))))?
            .map_err(|e| map_err(StoreError::Io(e)))?;
        let mut meta = if replace {
            new_meta(object_headers!(input))?
        } else {
            (*src_meta).clone()
        };
        meta.size = src_meta.size;
        meta.etag = src_meta.etag.clone();
        meta.checksum = digest.map(|d| Stored::full(algorithm, &d));
        meta.parts = src_meta
            .parts
            .iter()
            .map(|p| PartRecord {
                size: p.size,
                checksum: None,
            })
            .collect();
        // Object Lock settings are the destination's, not copied.
        meta.retention = retention;
        meta.legal_hold = legal_hold;
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
        Ok(meta) => {
            let mut result = CopyObjectResult {
                e_tag: Some(ETag::Strong(meta.etag.clone())),
                last_modified: Some(timestamp(meta.last_modified)),
                ..Default::default()
            };
            set_checksum!(result, meta.checksum.as_ref(), type);
            Ok(S3Response::new(CopyObjectOutput {
                copy_object_result: Some(result),
                copy_source_version_id: shown_version(store, src_bucket, &src_meta),
                version_id: written_version(&meta),
                ..Default::default()
            }))
        }
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
    source_conditions!(meta, input)?;
    // x-amz-copy-source-range: bytes=first-last (inclusive). Not of that form: 400
    // InvalidArgument; outside the source: 416 InvalidRange (as S3).
    let (start, len) = match &input.copy_source_range {
        None => (0, meta.size),
        Some(r) => {
            let malformed = || {
                s3_error!(
                    InvalidArgument,
                    "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
                )
            };
            let (a, b) = r
                .strip_prefix("bytes=")
                .and_then(|x| x.split_once('-'))
                .ok_or_else(malformed)?;
            let (a, b): (u64, u64) = (
                a.trim().parse().map_err(|_| malformed())?,
                b.trim().parse().map_err(|_| malformed())?,
            );
            if a > b {
                return Err(malformed());
            }
            if b >= meta.size {
                return Err(s3_error!(
                    InvalidRange,
                    "The x-amz-copy-source-range is outside the source object of {} bytes.",
                    meta.size
                ));
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
    let checks = multipart::PartChecks {
        content_length: Some(len as i64),
        ..Default::default()
    };
    let part = multipart::upload_part(store, target, body, checks)
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
