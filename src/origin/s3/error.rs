//! How store and multipart errors are answered: S3's error codes and messages.

use s3s::{s3_error, S3Error, S3ErrorCode};

use crate::origin::multipart::MultipartError;
use crate::origin::store::StoreError;

pub(super) fn map_err(e: StoreError) -> S3Error {
    match e {
        StoreError::NoSuchBucket => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        StoreError::NoSuchKey => s3_error!(NoSuchKey, "The specified key does not exist."),
        StoreError::NoSuchVersion => s3_error!(NoSuchVersion, "The specified version does not exist."),
        StoreError::InvalidVersionId => s3_error!(InvalidArgument, "Invalid version id specified"),
        StoreError::DeleteMarker { version_id, addressed } => {
            let mut err = if addressed {
                s3_error!(
                    MethodNotAllowed,
                    "The specified method is not allowed against this resource."
                )
            } else {
                s3_error!(NoSuchKey, "The specified key does not exist.")
            };
            // As S3: the answer says the version read is a delete marker, and which.
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/xml"),
            );
            headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
            if let Ok(v) = http::HeaderValue::from_str(version_id.as_deref().unwrap_or("null")) {
                headers.insert("x-amz-version-id", v);
            }
            err.set_headers(headers);
            err
        }
        StoreError::BucketNotEmpty => s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty"),
        StoreError::BucketExists => {
            s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            )
        }
        StoreError::InvalidBucketName => s3_error!(InvalidBucketName, "The specified bucket is not valid."),
        StoreError::PreconditionFailed => s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ),
        StoreError::ConditionalConflict => s3_error!(
            ConditionalRequestConflict,
            "The conditional request cannot succeed due to a conflicting operation against this resource."
        ),
        StoreError::Locked(_) => s3_error!(AccessDenied, "Access Denied because object protected by object lock."),
        StoreError::ObjectLockNotEnabled => s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration"),
        StoreError::InvalidBucketState(m) => s3_error!(InvalidBucketState, "{m}"),
        StoreError::BadKey(b) => s3_error!(InvalidArgument, "Invalid object key: {}", b.0),
        StoreError::Io(e) if is_disk_full(&e) => {
            tracing::error!("bucket store: the disk is full: {e}");
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("InsufficientStorage".into()),
                "The bucket store's disk is full; nothing was stored.",
            );
            err.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
            err
        }
        StoreError::Io(e) => {
            tracing::error!("bucket store I/O error: {e}");
            s3_error!(InternalError, "The bucket store could not complete the request.")
        }
    }
}

/// Out of space or over a quota (ENOSPC, EDQUOT).
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// S3's answer to a body that is not the one whose SHA-256 the request signed.
pub(super) fn sha256_mismatch() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

pub(super) fn map_mp(e: MultipartError) -> S3Error {
    match e {
        MultipartError::Store(e) => map_err(e),
        MultipartError::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        MultipartError::InvalidPart(m) => s3_error!(InvalidPart, "One or more of the specified parts could not be found: {m}"),
        MultipartError::InvalidPartOrder => {
            s3_error!(InvalidPartOrder, "The list of parts was not in ascending order. Parts must be ordered by part number.")
        }
        MultipartError::EntityTooSmall => {
            s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size (5 MiB per part but the last).")
        }
        MultipartError::InvalidArgument(m) => s3_error!(InvalidArgument, "{m}"),
        MultipartError::BadDigest => s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."),
        MultipartError::Incomplete(m) => s3_error!(IncompleteBody, "{m}"),
        MultipartError::Sha256Mismatch => sha256_mismatch(),
        MultipartError::Checksum(e) => super::checksums::map_checksum(e),
    }
}
