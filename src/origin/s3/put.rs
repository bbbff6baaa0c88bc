//! PutObject: the body is received into a temporary file, checked (length, Content-MD5, the
//! additional checksum), and committed, provided its write conditions hold. The conditions'
//! headers are read here for CompleteMultipartUpload too.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::checksums::{check_received, checksum_values, request_claim, set_checksum};
use super::error::{map_err, sha256_mismatch};
use super::lock::{for_new_version, lock_headers};
use super::meta::{new_meta, object_headers, written_version, ObjectHeaders};
use crate::origin::checksum;
use crate::origin::store::{check_key, now_ms, DiskStore, StoreError, WriteCondition};
use crate::origin::transfer;

/// The write condition of `If-Match` / `If-None-Match` on a PutObject or
/// CompleteMultipartUpload: S3 takes `If-None-Match: *` only.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    let if_none_match_any = match if_none_match {
        None => false,
        Some(c) if c.is_any() => true,
        Some(_) => {
            return Err(s3_error!(
                NotImplemented,
                "A header you provided implies functionality that is not implemented: If-None-Match takes only *."
            ))
        }
    };
    let if_match = if_match.map(|c| match c.as_etag() {
        Some(e) => e.value().to_string(),
        None => "*".to_string(),
    });
    Ok(WriteCondition {
        if_none_match_any,
        if_match,
    })
}

pub(super) async fn put_object(
    store: &DiskStore,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let claim = request_claim(
        &req.headers,
        checksum_values!(req.input),
        req.input.checksum_algorithm.as_ref().map(|a| a.as_str()),
    )?;
    let trailers = req.trailing_headers;
    // A browser form upload (POST Object), which s3s hands over as a PutObject.
    let form = req.method == http::Method::POST;
    let input = req.input;
    check_key(&input.key).map_err(|b| map_err(StoreError::BadKey(b)))?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    store
        .check_condition(&input.bucket, &input.key, &condition)
        .map_err(map_err)?;
    let lock = store.object_lock(&input.bucket).map_err(map_err)?;
    let (retention, legal_hold) = for_new_version(lock.as_ref(), &lock_headers!(input), now_ms())?;
    let Some(body) = input.body else {
        return Err(s3_error!(IncompleteBody, "The request body is missing."));
    };
    let algorithm = claim.as_ref().map(|c| c.algorithm).unwrap_or(checksum::DEFAULT);
    let temp = store.temp_path(&input.bucket).map_err(map_err)?;
    let result = async {
        let received = transfer::receive(body, &temp, algorithm).await.map_err(|e| match e {
            transfer::ReceiveError::Interrupted(m) => s3_error!(IncompleteBody, "{m}"),
            transfer::ReceiveError::Sha256Mismatch => sha256_mismatch(),
            transfer::ReceiveError::Io(e) => map_err(StoreError::Io(e)),
        })?;
        let size = received.size;
        if let Some(expected) = input.content_length {
            if expected >= 0 && size != expected as u64 {
                return Err(s3_error!(
                    IncompleteBody,
                    "Received {size} bytes, Content-Length said {expected}."
                ));
            }
        }
        if let Some(sent) = &input.content_md5 {
            let ours = openssl::base64::encode_block(&received.md5);
            if sent.trim() != ours {
                return Err(s3_error!(
                    BadDigest,
                    "The Content-MD5 you specified did not match what we received."
                ));
            }
        }
        let stored = check_received(claim.as_ref(), algorithm, trailers.as_ref(), &received)?;
        let mut meta = new_meta(object_headers!(input))?;
        meta.size = size;
        meta.etag = hex::encode(received.md5);
        meta.checksum = Some(stored);
        meta.retention = retention;
        meta.legal_hold = legal_hold;
        store
            .commit_if(&input.bucket, &input.key, &temp, meta, &condition)
            .map_err(map_err)
    }
    .await;
    match result {
        Ok(meta) => {
            // s3s writes a form upload's ETag into the 201's XML and the redirect's query
            // as given; S3 quotes it there, and sends it as a header too.
            let quoted = format!("\"{}\"", meta.etag);
            let mut out = PutObjectOutput {
                e_tag: Some(ETag::Strong(if form { quoted.clone() } else { meta.etag.clone() })),
                size: Some(meta.size as i64),
                version_id: written_version(&meta),
                ..Default::default()
            };
            set_checksum!(out, meta.checksum.as_ref(), type);
            let mut resp = S3Response::new(out);
            if form {
                if let Ok(v) = http::HeaderValue::from_str(&quoted) {
                    resp.headers.insert(http::header::ETAG, v);
                }
            }
            Ok(resp)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            Err(e)
        }
    }
}
