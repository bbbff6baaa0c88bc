//! Canned ACLs, on objects (GetObjectAcl, PutObjectAcl) and buckets (GetBucketAcl,
//! PutBucketAcl): `public-read` or private, and the grants they stand for.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use crate::origin::store::DiskStore;

use crate::origin::OWNER_ID;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// What the store supports of ACLs, for the errors that name it.
const SUPPORTED: &str = "ACLs are limited to the canned ACLs private, public-read, authenticated-read, bucket-owner-read, bucket-owner-full-control and aws-exec-read (all but public-read keep the object private: every credential of the store is the owner's), and to grants that amount to one of them (the owner's FULL_CONTROL, AllUsers READ). S3 has disabled ACLs by default since April 2023.";

/// Canned ACLs: `public-read` opens reads to everyone; the owner-only ones keep the object
/// private; `public-read-write` (anyone may write) is not implemented.
pub(super) fn canned_public_read(acl: &str) -> S3Result<bool> {
    match acl {
        "public-read" => Ok(true),
        "private" | "authenticated-read" | "bucket-owner-read" | "bucket-owner-full-control" | "aws-exec-read" => {
            Ok(false)
        }
        "public-read-write" | "log-delivery-write" => Err(s3_error!(
            NotImplemented,
            "The canned ACL {acl} is not supported: nobody but the owner may write here. {SUPPORTED}"
        )),
        other => Err(s3_error!(
            InvalidArgument,
            "The canned ACL {} is not valid. {SUPPORTED}",
            other.replace(['<', '>', '&'], "")
        )),
    }
}

/// The `x-amz-grant-*` headers of a request, as sent.
#[derive(Default)]
pub(super) struct GrantHeaders<'a> {
    pub(super) read: Option<&'a str>,
    pub(super) full_control: Option<&'a str>,
    pub(super) other: bool,
}

macro_rules! grant_headers {
    ($input:expr) => {
        crate::origin::s3::acl::GrantHeaders {
            read: $input.grant_read.as_deref(),
            full_control: $input.grant_full_control.as_deref(),
            other: $input.grant_read_acp.is_some() || $input.grant_write_acp.is_some(),
        }
    };
}
pub(super) use grant_headers;

fn grantees(list: &str) -> impl Iterator<Item = (&str, &str)> {
    list.split(',').filter_map(|g| {
        let (kind, value) = g.trim().split_once('=')?;
        Some((kind.trim(), value.trim().trim_matches('"')))
    })
}

/// Grant headers as the canned ACL they amount to (`Some(public_read)`), `None` when there
/// are none; grants beyond the supported ones are NotImplemented.
pub(super) fn grants_as_canned(h: &GrantHeaders<'_>) -> S3Result<Option<bool>> {
    if h.read.is_none() && h.full_control.is_none() && !h.other {
        return Ok(None);
    }
    let unsupported = || s3_error!(NotImplemented, "These ACL grants are not supported. {SUPPORTED}");
    if h.other {
        return Err(unsupported());
    }
    let mut public_read = false;
    for (kind, who) in h.read.map(grantees).into_iter().flatten() {
        match (kind, who) {
            ("uri", ALL_USERS) => public_read = true,
            ("id", OWNER_ID) => {}
            _ => return Err(unsupported()),
        }
    }
    for (kind, who) in h.full_control.map(grantees).into_iter().flatten() {
        if (kind, who) != ("id", OWNER_ID) {
            return Err(unsupported());
        }
    }
    Ok(Some(public_read))
}

/// An AccessControlPolicy body as the canned ACL it amounts to.
fn policy_as_canned(policy: &AccessControlPolicy) -> S3Result<bool> {
    let unsupported = || {
        s3_error!(
            NotImplemented,
            "This access control policy is not supported. {SUPPORTED}"
        )
    };
    let mut public_read = false;
    for g in policy.grants.iter().flatten() {
        let grantee = g.grantee.as_ref().ok_or_else(unsupported)?;
        let permission = g.permission.as_ref().map(|p| p.as_str()).unwrap_or("");
        let owner = grantee.id.as_deref() == Some(OWNER_ID);
        let all_users = grantee.uri.as_deref() == Some(ALL_USERS);
        match (owner, all_users, permission) {
            (true, _, Permission::FULL_CONTROL | Permission::READ) => {}
            (_, true, Permission::READ) => public_read = true,
            _ => return Err(unsupported()),
        }
    }
    Ok(public_read)
}

/// PutObjectAcl and PutBucketAcl: a canned ACL (`x-amz-acl`), grant headers or a policy body
/// that amount to a supported one.
fn acl_asked(acl: Option<&str>, grants: &GrantHeaders<'_>, policy: Option<&AccessControlPolicy>) -> S3Result<bool> {
    if let Some(acl) = acl {
        return canned_public_read(acl);
    }
    if let Some(public_read) = grants_as_canned(grants)? {
        return Ok(public_read);
    }
    match policy {
        Some(p) => policy_as_canned(p),
        None => Err(s3_error!(MalformedACLError, "The request names no ACL. {SUPPORTED}")),
    }
}

pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some(OWNER_ID.into()),
        id: Some(OWNER_ID.into()),
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
    let public_read = acl_asked(
        input.acl.as_ref().map(|a| a.as_str()),
        &grant_headers!(input),
        input.access_control_policy.as_ref(),
    )?;
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
    let public_read = acl_asked(
        input.acl.as_ref().map(|a| a.as_str()),
        &GrantHeaders {
            read: input.grant_read.as_deref(),
            full_control: input.grant_full_control.as_deref(),
            other: input.grant_read_acp.is_some() || input.grant_write_acp.is_some() || input.grant_write.is_some(),
        },
        input.access_control_policy.as_ref(),
    )?;
    store
        .set_bucket_public_read(&input.bucket, public_read)
        .map_err(map_err)?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}
