//! The multipart upload operations: create, upload a part, complete, abort, and list parts
//! and uploads (the parts on disk are [`crate::origin::multipart`]'s).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_mp;
use super::meta::{new_meta, object_headers, shown_version, timestamp, ObjectHeaders};
use crate::origin::multipart;
use crate::origin::store::DiskStore;

pub(super) async fn create_multipart_upload(
    store: &DiskStore,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    let meta = new_meta(object_headers!(input))?;
    let id = multipart::create(store, &input.bucket, &input.key, meta).map_err(map_mp)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(id),
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    store: &DiskStore,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
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
        input.content_length,
        input.content_md5.as_deref(),
    )
    .await
    .map_err(map_mp)?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        ..Default::default()
    }))
}

pub(super) async fn complete_multipart_upload(
    store: &DiskStore,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let listed: Vec<(i32, String)> = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            (
                p.part_number.unwrap_or(0),
                p.e_tag.map(|e| e.value().to_string()).unwrap_or_default(),
            )
        })
        .collect();
    let meta = multipart::complete(store, &input.bucket, &input.key, &input.upload_id, &listed)
        .await
        .map_err(map_mp)?;
    let version_id = shown_version(store, &input.bucket, &meta);
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        version_id,
        ..Default::default()
    }))
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
                .map(|p| Part {
                    part_number: Some(p.number),
                    size: Some(p.size as i64),
                    e_tag: Some(ETag::Strong(p.etag)),
                    last_modified: Some(timestamp(p.last_modified)),
                    ..Default::default()
                })
                .collect(),
        ),
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
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(prefix),
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(
            page.into_iter()
                .map(|(key, id, initiated)| MultipartUpload {
                    key: Some(key),
                    upload_id: Some(id),
                    initiated: Some(timestamp(initiated)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
