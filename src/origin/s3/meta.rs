//! Object metadata to and from S3: what a PUT, a multipart create or a copy's headers say,
//! and the shared pieces of answers (timestamps, user metadata, tags, the version id shown).

use s3s::dto::*;
use s3s::{s3_error, S3Result};

use super::acl::{canned_public_read, grants_as_canned};
use crate::origin::store::{DiskStore, ObjectMeta};

/// The version id a response shows for `meta`: its id, `null` for the null version of a bucket
/// that has had versioning, nothing in a bucket that never had.
pub(super) fn shown_version(store: &DiskStore, bucket: &str, meta: &ObjectMeta) -> Option<String> {
    match &meta.version_id {
        Some(id) => Some(id.clone()),
        None => matches!(store.versioning(bucket), Ok(Some(_))).then(|| "null".to_string()),
    }
}

/// The version id a write's answer shows (PutObject, CompleteMultipartUpload, CopyObject): the
/// new version's; none for a null version (a bucket without versioning, or suspended), as S3.
pub(super) fn written_version(meta: &ObjectMeta) -> Option<String> {
    meta.version_id.clone()
}

pub(super) fn timestamp(secs: u64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

pub(super) fn parse_http_date(s: &str) -> Option<Timestamp> {
    httpdate::parse_http_date(s).ok().map(Timestamp::from)
}

pub(super) fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    if meta.user_metadata.is_empty() {
        None
    } else {
        Some(meta.user_metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// The object headers a PUT, a multipart create or a copy with REPLACE carries.
#[derive(Default)]
pub(super) struct ObjectHeaders<'a> {
    pub(super) content_type: Option<&'a String>,
    pub(super) cache_control: Option<&'a String>,
    pub(super) content_disposition: Option<&'a String>,
    pub(super) content_encoding: Option<&'a String>,
    pub(super) content_language: Option<&'a String>,
    pub(super) expires: Option<&'a Timestamp>,
    pub(super) metadata: Option<&'a Metadata>,
    pub(super) tagging: Option<&'a String>,
    pub(super) acl: Option<&'a ObjectCannedACL>,
    pub(super) grants: super::acl::GrantHeaders<'a>,
}

/// [`ObjectHeaders`] of any s3s input that has those fields.
macro_rules! object_headers {
    ($input:expr) => {
        ObjectHeaders {
            content_type: $input.content_type.as_ref(),
            cache_control: $input.cache_control.as_ref(),
            content_disposition: $input.content_disposition.as_ref(),
            content_encoding: $input.content_encoding.as_ref(),
            content_language: $input.content_language.as_ref(),
            expires: $input.expires.as_ref(),
            metadata: $input.metadata.as_ref(),
            tagging: $input.tagging.as_ref(),
            acl: $input.acl.as_ref(),
            grants: crate::origin::s3::acl::grant_headers!($input),
        }
    };
}
pub(super) use object_headers;

/// Object metadata from request headers (size, ETag and file are filled in later).
pub(super) fn new_meta(h: ObjectHeaders<'_>) -> S3Result<ObjectMeta> {
    let ObjectHeaders {
        content_type,
        cache_control,
        content_disposition,
        content_encoding,
        content_language,
        expires,
        metadata,
        tagging,
        acl,
        grants,
    } = h;
    let public_read = match (acl, grants_as_canned(&grants)?) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                "Specifying both Canned ACLs and Header Grants is not allowed"
            ))
        }
        (Some(a), None) => canned_public_read(a.as_str())?,
        (None, Some(public_read)) => public_read,
        (None, None) => false,
    };
    let tags = match tagging {
        Some(h) => parse_tagging_header(h)?,
        None => Default::default(),
    };
    Ok(ObjectMeta {
        content_type: content_type.cloned(),
        cache_control: cache_control.cloned(),
        content_disposition: content_disposition.cloned(),
        content_encoding: content_encoding.and_then(|e| stored_content_encoding(e)),
        content_language: content_language.cloned(),
        expires: expires.map(|t| {
            let mut buf = Vec::new();
            let _ = t.format(TimestampFormat::HttpDate, &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }),
        user_metadata: metadata
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        tags,
        public_read,
        ..Default::default()
    })
}

/// The Content-Encoding an object keeps: without `aws-chunked`, which only says how the
/// upload's body was framed (the AWS SDKs send it with trailing checksums); none if nothing
/// else is left.
pub(super) fn stored_content_encoding(sent: &str) -> Option<String> {
    let kept: Vec<&str> = sent
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// `x-amz-tagging: k1=v1&k2=v2` (URL-encoded).
pub(super) fn parse_tagging_header(header: &str) -> S3Result<std::collections::BTreeMap<String, String>> {
    let decode = |s: &str| {
        crate::policy::percent::percent_decode(s.replace('+', " ").as_bytes())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| s3_error!(InvalidTag, "The x-amz-tagging header is not valid URL encoding."))
    };
    let mut tags = Vec::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode(k)?, decode(v)?));
    }
    check_tags(tags)
}

/// S3's limits: at most 10 tags, unique keys of 1-128 characters, values up to 256.
pub(super) fn check_tags(tags: Vec<(String, String)>) -> S3Result<std::collections::BTreeMap<String, String>> {
    if tags.len() > 10 {
        return Err(s3_error!(InvalidTag, "Object tags cannot be greater than 10"));
    }
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "A tag key must be 1-128 characters and a value at most 256."
            ));
        }
        if out.insert(k, v).is_some() {
            return Err(s3_error!(InvalidTag, "Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn aws_chunked_is_not_an_encoding_of_the_object() {
        use super::stored_content_encoding as e;
        assert_eq!(e("aws-chunked"), None);
        assert_eq!(e("gzip, aws-chunked"), Some("gzip".into()));
        assert_eq!(e("aws-chunked,gzip"), Some("gzip".into()));
        assert_eq!(e("gzip, br"), Some("gzip, br".into()));
    }
}
