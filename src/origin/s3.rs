//! The S3 API over [`DiskStore`], via the s3s `S3` trait: s3s parses requests, checks
//! SigV4 and renders XML; this file maps operations onto the store.

use std::io::SeekFrom;
use std::sync::Arc;

use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::multipart::{self, MultipartError};
use super::store::{DiskStore, ObjectMeta, StoreError};
use super::transfer;
use crate::policy::bucket::Versioning;
use crate::policy::cors::{self, CorsRule};

pub struct S3Api {
    pub store: Arc<DiskStore>,
}

fn map_err(e: StoreError) -> S3Error {
    match e {
        StoreError::NoSuchBucket => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        StoreError::NoSuchKey => s3_error!(NoSuchKey, "The specified key does not exist."),
        StoreError::NoSuchVersion => s3_error!(NoSuchVersion, "The specified version does not exist."),
        StoreError::InvalidVersionId => s3_error!(InvalidArgument, "Invalid version id specified"),
        StoreError::DeleteMarker { version_id, addressed } => {
            let mut err = if addressed {
                s3_error!(
                    MethodNotAllowed,
                    "The specified method is not allowed against this resource."
                )
            } else {
                s3_error!(NoSuchKey, "The specified key does not exist.")
            };
            // As S3: the answer says the version read is a delete marker, and which.
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/xml"),
            );
            headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
            if let Ok(v) = http::HeaderValue::from_str(version_id.as_deref().unwrap_or("null")) {
                headers.insert("x-amz-version-id", v);
            }
            err.set_headers(headers);
            err
        }
        StoreError::BucketNotEmpty => s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty"),
        StoreError::BucketExists => {
            s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            )
        }
        StoreError::InvalidBucketName => s3_error!(InvalidBucketName, "The specified bucket is not valid."),
        StoreError::BadKey(b) => s3_error!(InvalidArgument, "Invalid object key: {}", b.0),
        StoreError::Io(e) if is_disk_full(&e) => {
            tracing::error!("bucket store: the disk is full: {e}");
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("InsufficientStorage".into()),
                "The bucket store's disk is full; nothing was stored.",
            );
            err.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
            err
        }
        StoreError::Io(e) => {
            tracing::error!("bucket store I/O error: {e}");
            s3_error!(InternalError, "The bucket store could not complete the request.")
        }
    }
}

/// Out of space or over a quota (ENOSPC, EDQUOT).
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The version id a response shows for `meta`: its id, `null` for the null version of a bucket
/// that has had versioning, nothing in a bucket that never had.
fn shown_version(store: &DiskStore, bucket: &str, meta: &ObjectMeta) -> Option<String> {
    match &meta.version_id {
        Some(id) => Some(id.clone()),
        None => matches!(store.versioning(bucket), Ok(Some(_))).then(|| "null".to_string()),
    }
}

fn timestamp(secs: u64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    httpdate::parse_http_date(s).ok().map(Timestamp::from)
}

fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    if meta.user_metadata.is_empty() {
        None
    } else {
        Some(meta.user_metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

fn to_object(meta: &ObjectMeta) -> Object {
    Object {
        key: Some(meta.key.clone()),
        size: Some(meta.size as i64),
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        last_modified: Some(timestamp(meta.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        ..Default::default()
    }
}

/// The common prefix a listing groups `key` under: `prefix` plus what follows it up to and
/// including the first `delimiter`; `None` when there is no delimiter after the prefix.
fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let rest = &key[prefix.len()..];
    delimiter
        .filter(|d| !d.is_empty())
        .and_then(|d| rest.find(d).map(|i| format!("{prefix}{}", &rest[..i + d.len()])))
}

/// A listing page: objects and common prefixes (grouped by `delimiter`), in key order.
struct Page {
    objects: Vec<Object>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Last key or prefix returned, for the continuation marker.
    last: Option<String>,
}

fn list_page(
    store: &DiskStore,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> S3Result<Page> {
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    let mut cursor = after.map(str::to_string);
    loop {
        let (batch, more) = store
            .list(bucket, prefix, cursor.as_deref(), 1000, |_| true)
            .map_err(map_err)?;
        for meta in &batch {
            cursor = Some(meta.key.clone());
            let group = common_prefix(&meta.key, prefix, delimiter);
            if let Some(cp) = group {
                if page.prefixes.last() == Some(&cp) || after.is_some_and(|a| cp.as_str() <= a) {
                    continue;
                }
                if page.objects.len() + page.prefixes.len() == max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.last = Some(cp.clone());
                page.prefixes.push(cp);
            } else {
                if page.objects.len() + page.prefixes.len() == max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.last = Some(meta.key.clone());
                page.objects.push(to_object(meta));
            }
        }
        if !more {
            return Ok(page);
        }
    }
}

/// A ListObjectVersions page: versions and delete markers (each with whether it is the
/// current version) and common prefixes, in key order, newest version first within a key.
struct VersionPage {
    versions: Vec<(Arc<ObjectMeta>, bool)>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Key (or prefix) and version id of the last entry returned, for the next markers.
    last: Option<(String, Option<String>)>,
}

fn version_page(
    store: &DiskStore,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    version_marker: Option<&str>,
    max: usize,
) -> S3Result<VersionPage> {
    let mut page = VersionPage {
        versions: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    // With a version-id-marker the marker's key is listed again, from after that version.
    let version_marker = version_marker.filter(|_| key_marker.is_some());
    let mut cursor = key_marker.map(str::to_string);
    let mut inclusive = version_marker.is_some();
    let mut count = 0;
    loop {
        let (batch, more) = store
            .list_records(bucket, prefix, cursor.as_deref(), inclusive, 1000, |_| true)
            .map_err(map_err)?;
        inclusive = false;
        for record in &batch {
            cursor = Some(record.key.clone());
            let group = common_prefix(&record.key, prefix, delimiter);
            if let Some(cp) = group {
                if page.prefixes.last() == Some(&cp) || key_marker.is_some_and(|a| cp.as_str() <= a) {
                    continue;
                }
                if count == max {
                    page.truncated = true;
                    return Ok(page);
                }
                count += 1;
                page.last = Some((cp.clone(), None));
                page.prefixes.push(cp);
                continue;
            }
            let mut skip_to = version_marker.filter(|_| key_marker == Some(record.key.as_str()));
            for (i, v) in record.versions().enumerate() {
                if let Some(marker) = skip_to {
                    if v.version_label() == marker {
                        skip_to = None;
                    }
                    continue;
                }
                if count == max {
                    page.truncated = true;
                    return Ok(page);
                }
                count += 1;
                page.last = Some((v.key.clone(), Some(v.version_label().to_string())));
                page.versions.push((Arc::new(v.alone()), i == 0));
            }
        }
        if !more {
            return Ok(page);
        }
    }
}

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
fn check_conditions(
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

/// The object headers a PUT, a multipart create or a copy with REPLACE carries.
#[derive(Default)]
struct ObjectHeaders<'a> {
    content_type: Option<&'a String>,
    cache_control: Option<&'a String>,
    content_disposition: Option<&'a String>,
    content_encoding: Option<&'a String>,
    content_language: Option<&'a String>,
    expires: Option<&'a Timestamp>,
    metadata: Option<&'a Metadata>,
    tagging: Option<&'a String>,
    acl: Option<&'a ObjectCannedACL>,
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
        }
    };
}

/// Object metadata from request headers (size, ETag and file are filled in later).
fn new_meta(h: ObjectHeaders<'_>) -> S3Result<ObjectMeta> {
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
    } = h;
    let public_read = match acl {
        Some(a) => canned_public_read(a.as_str())?,
        None => false,
    };
    let tags = match tagging {
        Some(h) => parse_tagging_header(h)?,
        None => Default::default(),
    };
    Ok(ObjectMeta {
        content_type: content_type.cloned(),
        cache_control: cache_control.cloned(),
        content_disposition: content_disposition.cloned(),
        content_encoding: content_encoding.cloned(),
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

/// Canned ACLs: `public-read` opens reads to everyone; the owner-only ones keep the object
/// private; `public-read-write` (anyone may write) is refused.
fn canned_public_read(acl: &str) -> S3Result<bool> {
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

fn owner() -> Owner {
    Owner {
        display_name: Some("homefront".into()),
        id: Some("homefront".into()),
    }
}

/// The grants a canned ACL stands for: the owner's FULL_CONTROL, plus AllUsers READ.
fn grants(public_read: bool) -> Vec<Grant> {
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

/// `x-amz-tagging: k1=v1&k2=v2` (URL-encoded).
fn parse_tagging_header(header: &str) -> S3Result<std::collections::BTreeMap<String, String>> {
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
fn check_tags(tags: Vec<(String, String)>) -> S3Result<std::collections::BTreeMap<String, String>> {
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

/// S3's answer to a body that is not the one whose SHA-256 the request signed.
fn sha256_mismatch() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

fn map_mp(e: MultipartError) -> S3Error {
    match e {
        MultipartError::Store(e) => map_err(e),
        MultipartError::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        MultipartError::InvalidPart(m) => s3_error!(InvalidPart, "One or more of the specified parts could not be found: {m}"),
        MultipartError::InvalidPartOrder => {
            s3_error!(InvalidPartOrder, "The list of parts was not in ascending order. Parts must be ordered by part number.")
        }
        MultipartError::EntityTooSmall => {
            s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size (5 MiB per part but the last).")
        }
        MultipartError::InvalidArgument(m) => s3_error!(InvalidArgument, "{m}"),
        MultipartError::BadDigest => s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."),
        MultipartError::Incomplete(m) => s3_error!(IncompleteBody, "{m}"),
        MultipartError::Sha256Mismatch => sha256_mismatch(),
    }
}

/// `encoding-type=url`: keys, prefixes and markers in listings are URL-encoded (space as
/// `+`, `/` kept), which clients such as the aws cli ask for and then decode.
fn url_encoding(encoding_type: &Option<EncodingType>) -> bool {
    encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL)
}

fn url_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

impl Page {
    fn url_encoded(mut self, yes: bool) -> Self {
        if yes {
            for o in &mut self.objects {
                o.key = o.key.as_deref().map(url_encode);
            }
            for p in &mut self.prefixes {
                *p = url_encode(p);
            }
            self.last = self.last.as_deref().map(url_encode);
        }
        self
    }
}

/// Encodes an echoed request value when `yes`.
fn enc(yes: bool, v: Option<String>) -> Option<String> {
    if yes {
        v.as_deref().map(url_encode)
    } else {
        v
    }
}

fn max_keys(v: Option<i32>) -> usize {
    v.map(|m| m.clamp(0, 1000) as usize).unwrap_or(1000)
}

#[async_trait::async_trait]
impl S3 for S3Api {
    async fn list_buckets(&self, _req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .store
            .list_buckets()
            .into_iter()
            .map(|(name, created)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(created)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: None,
            ..Default::default()
        }))
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let public_read = match &req.input.acl {
            Some(a) => canned_public_read(a.as_str())?,
            None => false,
        };
        let name = req.input.bucket;
        self.store.create_bucket(&name).map_err(map_err)?;
        if public_read {
            self.store.set_bucket_public_read(&name, true).map_err(map_err)?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        if !self.store.bucket_exists(&req.input.bucket) {
            return Err(map_err(StoreError::NoSuchBucket));
        }
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store.delete_bucket(&req.input.bucket).map_err(map_err)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        if !self.store.bucket_exists(&req.input.bucket) {
            return Err(map_err(StoreError::NoSuchBucket));
        }
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = &req.input;
        let meta = self
            .store
            .head_version(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(map_err)?;
        conditions!(meta, input)?;
        Ok(S3Response::new(object_output!(HeadObjectOutput, meta, {
            content_length: Some(meta.size as i64),
            version_id: shown_version(&self.store, &input.bucket, &meta),
        })))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let (meta, file) = self
            .store
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
            version_id: shown_version(&self.store, &input.bucket, &meta),
        })))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        super::store::check_key(&input.key).map_err(|b| map_err(StoreError::BadKey(b)))?;
        let Some(body) = input.body else {
            return Err(s3_error!(IncompleteBody, "The request body is missing."));
        };
        let temp = self.store.temp_path(&input.bucket).map_err(map_err)?;
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
            self.store
                .commit(&input.bucket, &input.key, &temp, meta)
                .map_err(map_err)
        }
        .await;
        match result {
            Ok(meta) => Ok(S3Response::new(PutObjectOutput {
                e_tag: Some(ETag::Strong(meta.etag.clone())),
                size: Some(meta.size as i64),
                version_id: shown_version(&self.store, &input.bucket, &meta),
                ..Default::default()
            })),
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(e)
            }
        }
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let deleted = self
            .store
            .delete(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(map_err)?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted.version_id,
            ..Default::default()
        }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = &req.input;
        let meta = self
            .store
            .head_version(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(map_err)?;
        let tag_set = meta
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect();
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set,
            version_id: shown_version(&self.store, &input.bucket, &meta),
        }))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags = check_tags(
            input
                .tagging
                .tag_set
                .into_iter()
                .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
                .collect(),
        )?;
        let meta = self
            .store
            .update_meta(&input.bucket, &input.key, input.version_id.as_deref(), |m| {
                m.tags = tags.clone()
            })
            .map_err(map_err)?;
        Ok(S3Response::new(PutObjectTaggingOutput {
            version_id: shown_version(&self.store, &input.bucket, &meta),
        }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let meta = self
            .store
            .update_meta(&input.bucket, &input.key, input.version_id.as_deref(), |m| {
                m.tags.clear()
            })
            .map_err(map_err)?;
        Ok(S3Response::new(DeleteObjectTaggingOutput {
            version_id: shown_version(&self.store, &input.bucket, &meta),
        }))
    }

    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = &req.input;
        let meta = self
            .store
            .head_version(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(map_err)?;
        Ok(S3Response::new(GetObjectAclOutput {
            owner: Some(owner()),
            grants: Some(grants(meta.public_read)),
            ..Default::default()
        }))
    }

    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        let Some(acl) = &input.acl else {
            return Err(s3_error!(
                NotImplemented,
                "Only canned ACLs (x-amz-acl: private | public-read) are supported."
            ));
        };
        let public_read = canned_public_read(acl.as_str())?;
        self.store
            .update_meta(&input.bucket, &input.key, input.version_id.as_deref(), |m| {
                m.public_read = public_read
            })
            .map_err(map_err)?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
        let public_read = self.store.bucket_public_read(&req.input.bucket).map_err(map_err)?;
        Ok(S3Response::new(GetBucketAclOutput {
            owner: Some(owner()),
            grants: Some(grants(public_read)),
        }))
    }

    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        let rules: Vec<CorsRule> = input
            .cors_configuration
            .cors_rules
            .into_iter()
            .map(|r| CorsRule {
                id: r.id,
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: r.allowed_headers.unwrap_or_default(),
                expose_headers: r.expose_headers.unwrap_or_default(),
                max_age_seconds: r.max_age_seconds.and_then(|a| u32::try_from(a).ok()),
            })
            .collect();
        cors::validate(&rules).map_err(|m| s3_error!(InvalidRequest, "{m}"))?;
        self.store
            .set_bucket_cors(&input.bucket, Some(rules))
            .map_err(map_err)?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let rules = self.store.bucket_cors(&req.input.bucket).map_err(map_err)?;
        let Some(rules) = rules else {
            return Err(s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            ));
        };
        let cors_rules = rules
            .into_iter()
            .map(|r| CORSRule {
                id: r.id,
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
                expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
                max_age_seconds: r.max_age_seconds.and_then(|a| i32::try_from(a).ok()),
            })
            .collect();
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(cors_rules),
        }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.store.set_bucket_cors(&req.input.bucket, None).map_err(map_err)?;
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }

    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        let Some(acl) = &input.acl else {
            return Err(s3_error!(
                NotImplemented,
                "Only canned ACLs (x-amz-acl: private | public-read) are supported."
            ));
        };
        let public_read = canned_public_read(acl.as_str())?;
        self.store
            .set_bucket_public_read(&input.bucket, public_read)
            .map_err(map_err)?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        if !self.store.bucket_exists(&input.bucket) {
            return Err(map_err(StoreError::NoSuchBucket));
        }
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "A DeleteObjects request may name at most 1000 keys."
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            match self.store.delete(&input.bucket, &obj.key, obj.version_id.as_deref()) {
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

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            version_id: src_version,
        } = &input.copy_source
        else {
            return Err(s3_error!(NotImplemented, "Only bucket/key copy sources are supported."));
        };
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        // Copying an older version over the current one is how a version is restored.
        if src_bucket.as_ref() == input.bucket && src_key.as_ref() == input.key && src_version.is_none() && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        super::store::check_key(&input.key).map_err(|b| map_err(StoreError::BadKey(b)))?;
        let (src_meta, src_file) = self
            .store
            .open_object(src_bucket, src_key, src_version.as_deref())
            .map_err(map_err)?;
        let temp = self.store.temp_path(&input.bucket).map_err(map_err)?;
        let result = async {
            let mut from = tokio::fs::File::from_std(src_file);
            let mut to = tokio::fs::File::create(&temp)
                .await
                .map_err(|e| map_err(StoreError::Io(e)))?;
            tokio::io::copy(&mut from, &mut to)
                .await
                .map_err(|e| map_err(StoreError::Io(e)))?;
            to.sync_all().await.map_err(|e| map_err(StoreError::Io(e)))?;
            let mut meta = if replace {
                new_meta(object_headers!(input))?
            } else {
                (*src_meta).clone()
            };
            meta.size = src_meta.size;
            meta.etag = src_meta.etag.clone();
            // ACLs are not copied (as in S3): the copy is private unless x-amz-acl says otherwise.
            meta.public_read = match &input.acl {
                Some(a) => canned_public_read(a.as_str())?,
                None => false,
            };
            let replace_tags = input
                .tagging_directive
                .as_ref()
                .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
            meta.tags = if replace_tags {
                input
                    .tagging
                    .as_deref()
                    .map(parse_tagging_header)
                    .transpose()?
                    .unwrap_or_default()
            } else {
                src_meta.tags.clone()
            };
            self.store
                .commit(&input.bucket, &input.key, &temp, meta)
                .map_err(map_err)
        }
        .await;
        match result {
            Ok(meta) => Ok(S3Response::new(CopyObjectOutput {
                copy_object_result: Some(CopyObjectResult {
                    e_tag: Some(ETag::Strong(meta.etag.clone())),
                    last_modified: Some(timestamp(meta.last_modified)),
                    ..Default::default()
                }),
                copy_source_version_id: shown_version(&self.store, src_bucket, &src_meta),
                version_id: shown_version(&self.store, &input.bucket, &meta),
                ..Default::default()
            })),
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(e)
            }
        }
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let meta = new_meta(object_headers!(input))?;
        let id = multipart::create(&self.store, &input.bucket, &input.key, meta).map_err(map_mp)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let Some(body) = input.body else {
            return Err(s3_error!(IncompleteBody, "The request body is missing."));
        };
        let part = multipart::upload_part(
            &self.store,
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

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            version_id: src_version,
        } = &input.copy_source
        else {
            return Err(s3_error!(NotImplemented, "Only bucket/key copy sources are supported."));
        };
        let (meta, file) = self
            .store
            .open_object(src_bucket, src_key, src_version.as_deref())
            .map_err(map_err)?;
        // x-amz-copy-source-range: bytes=first-last (inclusive), within the source.
        let (start, len) = match &input.copy_source_range {
            None => (0, meta.size),
            Some(r) => {
                let bad = || {
                    s3_error!(
                        InvalidRange,
                        "The x-amz-copy-source-range value is not valid for an object of {} bytes.",
                        meta.size
                    )
                };
                let (a, b) = r
                    .strip_prefix("bytes=")
                    .and_then(|x| x.split_once('-'))
                    .ok_or_else(bad)?;
                let (a, b): (u64, u64) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b || b >= meta.size {
                    return Err(bad());
                }
                (a, b - a + 1)
            }
        };
        let mut file = tokio::fs::File::from_std(file);
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| map_err(StoreError::Io(e)))?;
        }
        let body = StreamingBlob::wrap(tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024));
        let target = multipart::PartTarget {
            bucket: &input.bucket,
            key: &input.key,
            upload_id: &input.upload_id,
            number: input.part_number,
        };
        let part = multipart::upload_part(&self.store, target, body, Some(len as i64), None)
            .await
            .map_err(map_mp)?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.last_modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
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
        let meta = multipart::complete(&self.store, &input.bucket, &input.key, &input.upload_id, &listed)
            .await
            .map_err(map_mp)?;
        let version_id = shown_version(&self.store, &input.bucket, &meta);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(meta.etag.clone())),
            version_id,
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        multipart::abort(&self.store, &input.bucket, &input.key, &input.upload_id).map_err(map_mp)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let all = multipart::list_parts(&self.store, &input.bucket, &input.key, &input.upload_id).map_err(map_mp)?;
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

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let uploads = multipart::list_uploads(&self.store, &input.bucket, &prefix).map_err(map_mp)?;
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

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match &input.continuation_token {
            Some(t) => {
                let raw = openssl::base64::decode_block(t)
                    .map_err(|_| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?;
                Some(
                    String::from_utf8(raw)
                        .map_err(|_| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
                )
            }
            None => input.start_after.clone(),
        };
        let max = max_keys(input.max_keys);
        let page = list_page(
            &self.store,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            after.as_deref(),
            max,
        )?;
        let url = url_encoding(&input.encoding_type);
        // The continuation token is made from the raw key, before encoding.
        let raw_last = page.last.clone();
        let page = page.url_encoded(url);
        let key_count = (page.objects.len() + page.prefixes.len()) as i32;
        let next = if page.truncated {
            raw_last.as_ref().map(|l| openssl::base64::encode_block(l.as_bytes()))
        } else {
            None
        };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: enc(url, Some(prefix)),
            delimiter: enc(url, input.delimiter),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            start_after: enc(url, input.start_after),
            encoding_type: input.encoding_type,
            contents: Some(page.objects),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        let state = match input.versioning_configuration.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The versioning Status must be Enabled or Suspended."
                ))
            }
        };
        self.store.set_versioning(&input.bucket, state).map_err(map_err)?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let state = self.store.versioning(&req.input.bucket).map_err(map_err)?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: state.map(|s| {
                BucketVersioningStatus::from_static(match s {
                    Versioning::Enabled => BucketVersioningStatus::ENABLED,
                    Versioning::Suspended => BucketVersioningStatus::SUSPENDED,
                })
            }),
            mfa_delete: None,
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = max_keys(input.max_keys);
        let key_marker = input.key_marker.as_deref().filter(|k| !k.is_empty());
        let page = version_page(
            &self.store,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            key_marker,
            input.version_id_marker.as_deref().filter(|v| !v.is_empty()),
            max,
        )?;
        let url = url_encoding(&input.encoding_type);
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for (v, is_latest) in page.versions {
            let key = enc(url, Some(v.key.clone()));
            let version_id = Some(v.version_label().to_string());
            let last_modified = Some(timestamp(v.last_modified));
            if v.delete_marker {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(is_latest),
                    key,
                    last_modified,
                    owner: Some(owner()),
                    version_id,
                });
            } else {
                versions.push(ObjectVersion {
                    e_tag: Some(ETag::Strong(v.etag.clone())),
                    is_latest: Some(is_latest),
                    key,
                    last_modified,
                    owner: Some(owner()),
                    size: Some(v.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    version_id,
                    ..Default::default()
                });
            }
        }
        let (next_key, next_version) = match (page.truncated, page.last) {
            (true, Some((k, v))) => (Some(k), v),
            _ => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: enc(url, Some(prefix)),
            delimiter: enc(url, input.delimiter),
            key_marker: enc(url, input.key_marker),
            version_id_marker: input.version_id_marker,
            next_key_marker: enc(url, next_key),
            next_version_id_marker: next_version,
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            encoding_type: input.encoding_type,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(if url { url_encode(&p) } else { p }),
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = max_keys(input.max_keys);
        let page = list_page(
            &self.store,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            input.marker.as_deref(),
            max,
        )?;
        let url = url_encoding(&input.encoding_type);
        let page = page.url_encoded(url);
        let next_marker = if page.truncated && input.delimiter.is_some() {
            page.last.clone()
        } else {
            None
        };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: enc(url, Some(prefix)),
            marker: enc(url, input.marker),
            delimiter: enc(url, input.delimiter),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            next_marker,
            encoding_type: input.encoding_type,
            contents: Some(page.objects),
            common_prefixes: Some(
                page.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
