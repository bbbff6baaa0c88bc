//! Reading objects: HeadObject and GetObject, with conditional requests and ranges.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::checksums::set_checksum;
use super::error::map_err;
use super::meta::{parse_http_date, shown_version, timestamp, user_metadata};
use crate::origin::checksum::Stored;
use crate::origin::store::{DiskStore, ObjectMeta, StoreError};
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
            object_lock_mode: $meta.retention.map(|r| ObjectLockMode::from(r.mode.name().to_string())),
            object_lock_retain_until_date: $meta.retention.map(|r| super::lock::from_ms(r.until_ms)),
            object_lock_legal_hold_status: $meta
                .legal_hold
                .then(|| ObjectLockLegalHoldStatus::from("ON".to_string())),
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
    let precondition_failed = || map_err(StoreError::PreconditionFailed);
    match (if_match, if_unmodified_since) {
        (Some(c), _) if !matches(c) => return Err(precondition_failed()),
        (None, Some(t)) if modified > *t => return Err(precondition_failed()),
        _ => {}
    }
    let not_modified = || {
        // A 304 carries the validators, as S3's does (RFC 9110 §15.4.5).
        let mut e = s3_error!(NotModified);
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", meta.etag)) {
            headers.insert(http::header::ETAG, v);
        }
        let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(meta.last_modified));
        if let Ok(v) = http::HeaderValue::from_str(&date) {
            headers.insert(http::header::LAST_MODIFIED, v);
        }
        e.set_headers(headers);
        e
    };
    match (if_none_match, if_modified_since) {
        (Some(c), _) if matches(c) => Err(not_modified()),
        (None, Some(t)) if modified <= *t => Err(not_modified()),
        _ => Ok(()),
    }
}

/// Which bytes of a version a GET or HEAD reads.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Selection {
    pub(super) start: u64,
    pub(super) len: u64,
    /// `Content-Range` of a 206.
    pub(super) content_range: Option<String>,
    /// The part read (`partNumber`), as an index into the object's parts.
    pub(super) part: Option<usize>,
}

impl Selection {
    fn whole(size: u64) -> Selection {
        Selection {
            start: 0,
            len: size,
            content_range: None,
            part: None,
        }
    }
}

/// The whole object, a `Range`, or a part (`partNumber`; a single-part object has one).
pub(super) fn select(meta: &ObjectMeta, range: Option<&Range>, part_number: Option<i32>) -> S3Result<Selection> {
    let size = meta.size;
    let partial = |start: u64, len: u64, part| Selection {
        start,
        len,
        content_range: Some(format!("bytes {}-{}/{}", start, (start + len).saturating_sub(1), size)),
        part,
    };
    match (range, part_number) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter."
        )),
        (Some(r), None) => {
            let range = r.check(size).map_err(|_| {
                s3_error!(
                    InvalidRange,
                    "The requested range is not satisfiable (object size {})",
                    size
                )
            })?;
            Ok(partial(range.start, range.end - range.start, None))
        }
        (None, Some(n)) => {
            let count = meta.parts.len().max(1);
            if n < 1 || n as usize > count {
                let mut e = s3s::S3Error::with_message(
                    s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
                    "The requested partnumber is not satisfiable",
                );
                e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
                return Err(e);
            }
            let i = n as usize - 1;
            if meta.parts.is_empty() {
                return Ok(Selection::whole(size));
            }
            let start: u64 = meta.parts[..i].iter().map(|p| p.size).sum();
            Ok(partial(start, meta.parts[i].size, Some(i)))
        }
        (None, None) => Ok(Selection::whole(size)),
    }
}

/// The checksum an answer shows with `x-amz-checksum-mode: ENABLED`: the object's for the
/// whole object, a part's for a part, none for a range.
pub(super) fn shown_checksum(meta: &ObjectMeta, mode: Option<&ChecksumMode>, sel: &Selection) -> Option<Stored> {
    if mode.map(|m| m.as_str()) != Some(ChecksumMode::ENABLED) {
        return None;
    }
    let stored = meta.checksum.as_ref()?;
    match sel.part {
        None if sel.content_range.is_none() => Some(stored.clone()),
        None => None,
        // A part: its own checksum (of the object's algorithm), with the object's type.
        Some(i) => Some(Stored {
            algorithm: stored.algorithm,
            value: meta.parts.get(i)?.checksum.clone()?,
            kind: stored.kind,
        }),
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
    let sel = select(&meta, input.range.as_ref(), input.part_number)?;
    let mut out = object_output!(HeadObjectOutput, meta, {
        content_length: Some(sel.len as i64),
        content_range: sel.content_range.clone(),
        parts_count: parts_count(&meta, input.part_number),
        version_id: shown_version(store, &input.bucket, &meta),
    });
    set_checksum!(
        out,
        shown_checksum(&meta, input.checksum_mode.as_ref(), &sel).as_ref(),
        type
    );
    let mut resp = S3Response::new(out);
    // As GET's (s3s's HeadObject has no field for it).
    if !meta.tags.is_empty() {
        resp.headers.insert("x-amz-tagging-count", meta.tags.len().into());
    }
    Ok(resp)
}

/// `x-amz-mp-parts-count`, on answers to a `partNumber` request for a multipart object.
fn parts_count(meta: &ObjectMeta, part_number: Option<i32>) -> Option<i32> {
    (part_number.is_some() && !meta.parts.is_empty()).then_some(meta.parts.len() as i32)
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
    let sel = select(&meta, input.range.as_ref(), input.part_number)?;
    let stream = transfer::ReadAhead::new(file, sel.start, sel.len);
    let mut out = object_output!(GetObjectOutput, meta, {
        body: Some(StreamingBlob::wrap(stream)),
        content_length: Some(sel.len as i64),
        content_range: sel.content_range.clone(),
        parts_count: parts_count(&meta, input.part_number),
        tag_count: (!meta.tags.is_empty()).then_some(meta.tags.len() as i32),
        version_id: shown_version(store, &input.bucket, &meta),
    });
    set_checksum!(
        out,
        shown_checksum(&meta, input.checksum_mode.as_ref(), &sel).as_ref(),
        type
    );
    Ok(S3Response::new(out))
}

pub(super) async fn get_object_attributes(
    store: &DiskStore,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    let meta = store
        .head_version(&input.bucket, &input.key, input.version_id.as_deref())
        .map_err(map_err)?;
    // One header may list several, comma-separated (as the SDKs send them), or repeat.
    let asked = |name: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .any(|a| a.trim() == name)
    };
    let object_parts = (asked(ObjectAttributes::OBJECT_PARTS) && !meta.parts.is_empty()).then(|| {
        let marker = input.part_number_marker.unwrap_or(0).max(0) as usize;
        let max = input.max_parts.map(|m| m.clamp(0, 1000) as usize).unwrap_or(1000);
        let object_checksum = meta.checksum.as_ref();
        let page: Vec<ObjectPart> = meta
            .parts
            .iter()
            .enumerate()
            .skip(marker)
            .take(max)
            .map(|(i, p)| {
                let mut part = ObjectPart {
                    part_number: Some(i as i32 + 1),
                    size: Some(p.size as i64),
                    ..Default::default()
                };
                if let (Some(c), Some(v)) = (object_checksum, &p.checksum) {
                    let stored = Stored {
                        algorithm: c.algorithm,
                        value: v.clone(),
                        kind: c.kind,
                    };
                    set_checksum!(part, Some(&stored));
                }
                part
            })
            .collect();
        let last = marker + page.len();
        let truncated = last < meta.parts.len();
        GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            next_part_number_marker: truncated.then_some(last as i32),
            part_number_marker: input.part_number_marker,
            parts: Some(page),
            total_parts_count: Some(meta.parts.len() as i32),
        }
    });
    let checksum = asked(ObjectAttributes::CHECKSUM)
        .then(|| meta.checksum.as_ref().map(crate::origin::checksum::to_dto))
        .flatten();
    Ok(S3Response::new(GetObjectAttributesOutput {
        checksum,
        e_tag: asked(ObjectAttributes::ETAG).then(|| ETag::Strong(meta.etag.clone())),
        last_modified: Some(timestamp(meta.last_modified)),
        object_parts,
        object_size: asked(ObjectAttributes::OBJECT_SIZE).then_some(meta.size as i64),
        storage_class: asked(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        version_id: shown_version(store, &input.bucket, &meta),
        ..Default::default()
    }))
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
