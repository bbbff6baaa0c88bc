//! Reading objects: HeadObject and GetObject, with conditional requests and ranges.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use super::meta::{parse_http_date, shown_version, timestamp, user_metadata};
use crate::origin::store::{DiskStore, ObjectMeta};
use crate::origin::transfer;

/// [`check_conditions`] with the fields of a GetObject or HeadObject input.
macro_rules! conditions {
    ($meta:expr, $input:expr) => {
        check_conditions(
            &$meta,
            $input.if_match.as_ref(),
            $input.if_none_match.as_ref(),
            $input.if_modified_since.as_ref(),
            $input.if_unmodified_since.as_ref(),
        )
    };
}

/// A GetObject or HeadObject output with the object's stored headers, plus `extra` fields.
macro_rules! object_output {
    ($ty:ident, $meta:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        $ty {
            content_type: $meta.content_type.clone(),
            e_tag: Some(ETag::Strong($meta.etag.clone())),
            last_modified: Some(timestamp($meta.last_modified)),
            cache_control: $meta.cache_control.clone(),
            content_disposition: $meta.content_disposition.clone(),
            content_encoding: $meta.content_encoding.clone(),
            content_language: $meta.content_language.clone(),
            expires: $meta.expires.as_deref().and_then(parse_http_date),
            metadata: user_metadata(&$meta),
            accept_ranges: Some("bytes".into()),
            $($field: $value,)*
            ..Default::default()
        }
    };
}

/// Conditional GET/HEAD as S3 evaluates them (RFC 9110 order): If-Match, else
/// If-Unmodified-Since → 412; If-None-Match, else If-Modified-Since → 304.
pub(super) fn check_conditions(
    meta: &ObjectMeta,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let matches = |c: &ETagCondition| c.is_any() || c.as_etag().is_some_and(|e| e.value() == meta.etag);
    let modified = timestamp(meta.last_modified);
    let precondition_failed = || {
        s3_error!(
            PreconditionFailed,
            "At least one of the preconditions you specified did not hold"
        )
    };
    match (if_match, if_unmodified_since) {
        (Some(c), _) if !matches(c) => return Err(precondition_failed()),
        (None, Some(t)) if modified > *t => return Err(precondition_failed()),
        _ => {}
    }
    match (if_none_match, if_modified_since) {
        (Some(c), _) if matches(c) => Err(s3_error!(NotModified)),
        (None, Some(t)) if modified <= *t => Err(s3_error!(NotModified)),
        _ => Ok(()),
    }
}

pub(super) async fn head_object(
    store: &DiskStore,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = &req.input;
    let meta = store
        .head_version(&input.bucket, &input.key, input.version_id.as_deref())
        .map_err(map_err)?;
    conditions!(meta, input)?;
    Ok(S3Response::new(object_output!(HeadObjectOutput, meta, {
        content_length: Some(meta.size as i64),
        version_id: shown_version(store, &input.bucket, &meta),
    })))
}

pub(super) async fn get_object(
    store: &DiskStore,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let (meta, file) = store
        .open_object(&input.bucket, &input.key, input.version_id.as_deref())
        .map_err(map_err)?;
    conditions!(meta, input)?;
    let (start, len, content_range) = match &input.range {
        None => (0, meta.size, None),
        Some(r) => {
            let range = r.check(meta.size).map_err(|_| {
                s3_error!(
                    InvalidRange,
                    "The requested range is not satisfiable (object size {})",
                    meta.size
                )
            })?;
            let cr = format!("bytes {}-{}/{}", range.start, range.end.saturating_sub(1), meta.size);
            (range.start, range.end - range.start, Some(cr))
        }
    };
    let stream = transfer::ReadAhead::new(file, start, len);
    Ok(S3Response::new(object_output!(GetObjectOutput, meta, {
        body: Some(StreamingBlob::wrap(stream)),
        content_length: Some(len as i64),
        content_range: content_range,
        tag_count: (!meta.tags.is_empty()).then_some(meta.tags.len() as i32),
        version_id: shown_version(store, &input.bucket, &meta),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::s3::meta::{new_meta, ObjectHeaders};

    fn meta() -> ObjectMeta {
        let mut m = new_meta(ObjectHeaders::default()).unwrap();
        m.etag = "abc".into();
        m.last_modified = 1_000;
        m
    }

    fn etag(v: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(v.into()))
    }

    fn code(r: S3Result<()>) -> Option<String> {
        r.err().map(|e| e.code().as_str().to_string())
    }

    #[test]
    fn conditional_requests_follow_s3() {
        let m = meta();
        let (before, after) = (timestamp(999), timestamp(1_000));
        assert_eq!(code(check_conditions(&m, Some(&etag("abc")), None, None, None)), None);
        assert_eq!(
            code(check_conditions(&m, Some(&etag("zzz")), None, None, None)).as_deref(),
            Some("PreconditionFailed")
        );
        assert_eq!(
            code(check_conditions(&m, Some(&ETagCondition::Any), None, None, None)),
            None
        );
        assert_eq!(
            code(check_conditions(&m, None, None, None, Some(&before))).as_deref(),
            Some("PreconditionFailed")
        );
        // If-Match true wins over If-Unmodified-Since false.
        assert_eq!(
            code(check_conditions(&m, Some(&etag("abc")), None, None, Some(&before))),
            None
        );
        assert_eq!(
            code(check_conditions(&m, None, Some(&etag("abc")), None, None)).as_deref(),
            Some("NotModified")
        );
        assert_eq!(code(check_conditions(&m, None, Some(&etag("zzz")), None, None)), None);
        assert_eq!(
            code(check_conditions(&m, None, None, Some(&after), None)).as_deref(),
            Some("NotModified")
        );
        assert_eq!(code(check_conditions(&m, None, None, Some(&before), None)), None);
        // If-None-Match false (no match) means modified, whatever If-Modified-Since says.
        assert_eq!(
            code(check_conditions(&m, None, Some(&etag("zzz")), Some(&after), None)),
            None
        );
    }
}
