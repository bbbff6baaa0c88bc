//! PutObject: the body is received into a temporary file, checked, and committed.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::{map_err, sha256_mismatch};
use super::meta::{new_meta, object_headers, shown_version, ObjectHeaders};
use crate::origin::store::{check_key, DiskStore, StoreError};
use crate::origin::transfer;

pub(super) async fn put_object(
    store: &DiskStore,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let input = req.input;
    check_key(&input.key).map_err(|b| map_err(StoreError::BadKey(b)))?;
    let Some(body) = input.body else {
        return Err(s3_error!(IncompleteBody, "The request body is missing."));
    };
    let temp = store.temp_path(&input.bucket).map_err(map_err)?;
    let result = async {
        let received = transfer::receive(body, &temp).await.map_err(|e| match e {
            transfer::ReceiveError::Interrupted(m) => s3_error!(IncompleteBody, "{m}"),
            transfer::ReceiveError::Sha256Mismatch => sha256_mismatch(),
            transfer::ReceiveError::Io(e) => map_err(StoreError::Io(e)),
        })?;
        let (size, digest) = (received.size, received.md5);
        if let Some(expected) = input.content_length {
            if expected >= 0 && size != expected as u64 {
                return Err(s3_error!(
                    IncompleteBody,
                    "Received {size} bytes, Content-Length said {expected}."
                ));
            }
        }
        if let Some(sent) = &input.content_md5 {
            let ours = openssl::base64::encode_block(&digest);
            if sent.trim() != ours {
                return Err(s3_error!(
                    BadDigest,
                    "The Content-MD5 you specified did not match what we received."
                ));
            }
        }
        let mut meta = new_meta(object_headers!(input))?;
        meta.size = size;
        meta.etag = hex::encode(digest);
        store.commit(&input.bucket, &input.key, &temp, meta).map_err(map_err)
    }
    .await;
    match result {
        Ok(meta) => Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(meta.etag.clone())),
            size: Some(meta.size as i64),
            version_id: shown_version(store, &input.bucket, &meta),
            ..Default::default()
        })),
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            Err(e)
        }
    }
}
