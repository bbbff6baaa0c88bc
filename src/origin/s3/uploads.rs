//! The multipart upload operations: create, upload a part, complete, abort, and list parts
//! and uploads (the parts on disk are [`crate::origin::multipart`]'s).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::checksums::{checksum_values, given_checksums, request_claim, set_checksum};
use super::error::{map_err, map_mp};
use super::list::{enc, url_encoding};
use super::lock::{for_new_version, lock_headers};
use super::meta::{new_meta, object_headers, timestamp, written_version, ObjectHeaders};
use super::put::write_condition;
use crate::origin::multipart::{self, CompleteChecks, ListedPart, UploadChecksum};
use crate::origin::store::{now_ms, DiskStore};

pub(super) async fn create_multipart_upload(
    store: &DiskStore,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    let mut meta = new_meta(object_headers!(input))?;
    let lock = store.object_lock(&input.bucket).map_err(map_err)?;
    (meta.retention, meta.legal_hold) = for_new_version(lock.as_ref(), &lock_headers!(input), now_ms())?;
    let checksum = UploadChecksum::new(
        input.checksum_algorithm.as_ref().map(|a| a.as_str()),
        input.checksum_type.as_ref().map(|t| t.as_str()),
    )
    .map_err(map_mp)?;
    let id = multipart::create(store, &input.bucket, &input.key, meta, checksum).map_err(map_mp)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(id),
        checksum_algorithm: checksum.map(|c| ChecksumAlgorithm::from(c.algorithm.name().to_string())),
        checksum_type: checksum.map(|c| ChecksumType::from(c.kind.name().to_string())),
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    store: &DiskStore,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let claim = request_claim(
        &req.headers,
        checksum_values!(req.input),
        req.input.checksum_algorithm.as_ref().map(|a| a.as_str()),
    )?;
    let trailers = req.trailing_headers;
    let input = req.input;
    let Some(body) = input.body else {
        return Err(s3_error!(IncompleteBody, "The request body is missing."));
    };
    let part = multipart::upload_part(
        store,
        multipart::PartTarget {
            bucket: &input.bucket,
            key: &input.key,
            upload_id: &input.upload_id,
            number: input.part_number,
        },
        body,
        multipart::PartChecks {
            content_length: input.content_length,
            content_md5: input.content_md5.as_deref(),
            claim: claim.as_ref(),
            trailers: trailers.as_ref(),
        },
    )
    .await
    .map_err(map_mp)?;
    let mut out = UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        ..Default::default()
    };
    set_checksum!(out, part.checksum.as_ref());
    Ok(S3Response::new(out))
}

pub(super) async fn complete_multipart_upload(
    store: &DiskStore,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let listed: Vec<ListedPart> = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| ListedPart {
            number: p.part_number.unwrap_or(0),
            checksums: given_checksums!(p),
            etag: p.e_tag.map(|e| e.value().to_string()).unwrap_or_default(),
        })
        .collect();
    let checks = CompleteChecks {
        object_checksum: given_checksums!(input).into_iter().next(),
        kind: input.checksum_type.as_ref().map(|t| t.as_str().to_string()),
        object_size: input.mpu_object_size,
        condition: write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?,
    };
    let meta = multipart::complete(store, &input.bucket, &input.key, &input.upload_id, &listed, &checks)
        .await
        .map_err(map_mp)?;
    let version_id = written_version(&meta);
    let mut out = CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        version_id,
        ..Default::default()
    };
    set_checksum!(out, meta.checksum.as_ref(), type);
    Ok(S3Response::new(out))
}

pub(super) async fn abort_multipart_upload(
    store: &DiskStore,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    multipart::abort(store, &input.bucket, &input.key, &input.upload_id).map_err(map_mp)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts(
    store: &DiskStore,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let (_, info) = multipart::open_upload(store, &input.bucket, &input.key, &input.upload_id).map_err(map_mp)?;
    let all = multipart::list_parts(store, &input.bucket, &input.key, &input.upload_id).map_err(map_mp)?;
    let marker = input.part_number_marker.unwrap_or(0);
    let max = input.max_parts.map(|m| m.clamp(0, 1000) as usize).unwrap_or(1000);
    let after: Vec<_> = all.into_iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max;
    let page: Vec<_> = after.into_iter().take(max).collect();
    let next = if truncated { page.last().map(|p| p.number) } else { None };
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next,
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(
            page.into_iter()
                .map(|p| {
                    let mut part = Part {
                        part_number: Some(p.number),
                        size: Some(p.size as i64),
                        e_tag: Some(ETag::Strong(p.etag)),
                        last_modified: Some(timestamp(p.last_modified)),
                        ..Default::default()
                    };
                    // Parts show the upload's checksum, when it named one.
                    if info.checksum.is_some() {
                        set_checksum!(part, p.checksum.as_ref());
                    }
                    part
                })
                .collect(),
        ),
        checksum_algorithm: info
            .checksum
            .map(|c| ChecksumAlgorithm::from(c.algorithm.name().to_string())),
        checksum_type: info.checksum.map(|c| ChecksumType::from(c.kind.name().to_string())),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads(
    store: &DiskStore,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let uploads = multipart::list_uploads(store, &input.bucket, &prefix).map_err(map_mp)?;
    let max = input.max_uploads.map(|m| m.clamp(0, 1000) as usize).unwrap_or(1000);
    let after: Vec<_> = uploads
        .into_iter()
        .filter(|(k, id, _)| match (&input.key_marker, &input.upload_id_marker) {
            (Some(km), Some(im)) => (k.as_str(), id.as_str()) > (km.as_str(), im.as_str()),
            (Some(km), None) => k.as_str() > km.as_str(),
            _ => true,
        })
        .collect();
    let truncated = after.len() > max;
    let page: Vec<_> = after.into_iter().take(max).collect();
    let (next_key, next_id) = match (truncated, page.last()) {
        (true, Some((k, id, _))) => (Some(k.clone()), Some(id.clone())),
        _ => (None, None),
    };
    let url = url_encoding(&input.encoding_type);
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: enc(url, Some(prefix)),
        key_marker: enc(url, input.key_marker),
        upload_id_marker: input.upload_id_marker,
        next_key_marker: enc(url, next_key),
        next_upload_id_marker: next_id,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        encoding_type: input.encoding_type,
        uploads: Some(
            page.into_iter()
                .map(|(key, id, initiated)| MultipartUpload {
                    key: enc(url, Some(key)),
                    owner: Some(super::acl::owner()),
                    initiator: Some(Initiator {
                        display_name: Some("homefront".into()),
                        id: Some("homefront".into()),
                    }),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    upload_id: Some(id),
                    initiated: Some(timestamp(initiated)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
