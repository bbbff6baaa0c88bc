//! Canned ACLs, on objects (GetObjectAcl, PutObjectAcl) and buckets (GetBucketAcl,
//! PutBucketAcl): `public-read` or private, and the grants they stand for.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use crate::origin::store::DiskStore;

/// Canned ACLs: `public-read` opens reads to everyone; the owner-only ones keep the object
/// private; `public-read-write` (anyone may write) is refused.
pub(super) fn canned_public_read(acl: &str) -> S3Result<bool> {
    match acl {
        "public-read" => Ok(true),
        "private" | "authenticated-read" | "bucket-owner-read" | "bucket-owner-full-control" | "aws-exec-read" => {
            Ok(false)
        }
        other => Err(s3_error!(
            InvalidArgument,
            "The canned ACL {other} is not supported (use private or public-read)."
        )),
    }
}

/// PutObjectAcl and PutBucketAcl take a canned ACL (`x-amz-acl`), not grants.
fn required_canned_acl(acl: Option<&str>) -> S3Result<bool> {
    let Some(acl) = acl else {
        return Err(s3_error!(
            NotImplemented,
            "Only canned ACLs (x-amz-acl: private | public-read) are supported."
        ));
    };
    canned_public_read(acl)
}

pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some("homefront".into()),
        id: Some("homefront".into()),
    }
}

/// The grants a canned ACL stands for: the owner's FULL_CONTROL, plus AllUsers READ.
pub(super) fn grants(public_read: bool) -> Vec<Grant> {
    let mut g = vec![Grant {
        grantee: Some(Grantee {
            display_name: Some("homefront".into()),
            email_address: None,
            id: Some("homefront".into()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }];
    if public_read {
        g.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                uri: Some("http://acs.amazonaws.com/groups/global/AllUsers".into()),
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
    }
    g
}

pub(super) async fn get_object_acl(
    store: &DiskStore,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = &req.input;
    let meta = store
        .head_version(&input.bucket, &input.key, input.version_id.as_deref())
        .map_err(map_err)?;
    Ok(S3Response::new(GetObjectAclOutput {
        owner: Some(owner()),
        grants: Some(grants(meta.public_read)),
        ..Default::default()
    }))
}

pub(super) async fn put_object_acl(
    store: &DiskStore,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let input = req.input;
    let public_read = required_canned_acl(input.acl.as_ref().map(|a| a.as_str()))?;
    store
        .update_meta(&input.bucket, &input.key, input.version_id.as_deref(), |m| {
            m.public_read = public_read
        })
        .map_err(map_err)?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

pub(super) async fn get_bucket_acl(
    store: &DiskStore,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let public_read = store.bucket_public_read(&req.input.bucket).map_err(map_err)?;
    Ok(S3Response::new(GetBucketAclOutput {
        owner: Some(owner()),
        grants: Some(grants(public_read)),
    }))
}

pub(super) async fn put_bucket_acl(
    store: &DiskStore,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let input = req.input;
    let public_read = required_canned_acl(input.acl.as_ref().map(|a| a.as_str()))?;
    store
        .set_bucket_public_read(&input.bucket, public_read)
        .map_err(map_err)?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}
