//! DeleteObject and DeleteObjects (a delete marker in a versioned bucket).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use crate::origin::store::{DiskStore, StoreError};

pub(super) async fn delete_object(
    store: &DiskStore,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let deleted = store
        .delete_as(&input.bucket, &input.key, input.version_id.as_deref(), bypass)
        .map_err(map_err)?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: deleted.delete_marker.then_some(true),
        version_id: deleted.version_id,
        ..Default::default()
    }))
}

pub(super) async fn delete_objects(
    store: &DiskStore,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    if !store.bucket_exists(&input.bucket) {
        return Err(map_err(StoreError::NoSuchBucket));
    }
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "A DeleteObjects request may name at most 1000 keys."
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in input.delete.objects {
        match store.delete_as(&input.bucket, &obj.key, obj.version_id.as_deref(), bypass) {
            Ok(d) => {
                if !quiet {
                    // A new delete marker is reported by its id; a version deleted by id
                    // by the id asked for.
                    let (version_id, marker_id) = match (&obj.version_id, d.delete_marker) {
                        (None, true) => (None, d.version_id),
                        (Some(_), true) => (d.version_id.clone(), d.version_id),
                        (_, false) => (d.version_id, None),
                    };
                    deleted.push(DeletedObject {
                        key: Some(obj.key),
                        version_id,
                        delete_marker: d.delete_marker.then_some(true),
                        delete_marker_version_id: marker_id,
                    });
                }
            }
            Err(e) => {
                let err = map_err(e);
                errors.push(Error {
                    code: Some(err.code().as_str().to_string()),
                    key: Some(obj.key),
                    message: err.message().map(str::to_string),
                    version_id: obj.version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}
