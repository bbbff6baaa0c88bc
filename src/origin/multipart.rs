//! Multipart uploads on disk: parts are stored as they arrive, and completing the upload
//! concatenates them into one object through the store's crash-safe commit. S3's rules:
//! parts 1..=10000, every part but the last at least 5 MiB, the listed parts in ascending
//! order with matching ETags, and the object's ETag is the MD5 of the parts' MD5s plus `-N`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use md5::Digest as _;
use serde::{Deserialize, Serialize};

use super::checksum::{self, Algorithm, ChecksumError, Claim, Kind, Stored};
use super::store::{check_key, random_token, DiskStore, ObjectMeta, PartRecord, StoreError, WriteCondition};

/// Smallest size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PARTS: i32 = 10_000;

/// What was said when the upload was created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadInfo {
    pub key: String,
    pub initiated: u64,
    /// Metadata for the object (its `key`, `size`, `etag` and `data_file` are set at completion).
    pub meta: ObjectMeta,
    /// The checksum the upload asked for (`x-amz-checksum-algorithm`, `x-amz-checksum-type`);
    /// `None`: the object gets a full-object CRC64NVME.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<UploadChecksum>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadChecksum {
    pub algorithm: Algorithm,
    pub kind: Kind,
}

impl UploadChecksum {
    /// From CreateMultipartUpload's headers: the algorithm, and the type (its default when
    /// not given), as S3 pairs them.
    pub fn new(algorithm: Option<&str>, kind: Option<&str>) -> Result<Option<UploadChecksum>, MultipartError> {
        let invalid = |m: String| MultipartError::Checksum(ChecksumError::Invalid(m));
        let Some(name) = algorithm else {
            if kind.is_some() {
                return Err(invalid(
                    "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.".into(),
                ));
            }
            return Ok(None);
        };
        let algorithm = Algorithm::from_name(name)
            .ok_or_else(|| invalid("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]".into()))?;
        let kind = match kind {
            None => algorithm.default_kind(),
            Some(k) => {
                Kind::from_name(k).ok_or_else(|| invalid("Value for x-amz-checksum-type header is invalid.".into()))?
            }
        };
        if !algorithm.allows(kind) {
            return Err(invalid(format!(
                "The {} checksum type cannot be used with the {} checksum algorithm.",
                kind.name(),
                algorithm.name().to_ascii_lowercase()
            )));
        }
        Ok(Some(UploadChecksum { algorithm, kind }))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartInfo {
    pub number: i32,
    pub size: u64,
    /// Hex MD5, no quotes.
    pub etag: String,
    pub last_modified: u64,
    /// The part's checksum: of the upload's algorithm, else of the one the part was sent
    /// with, else CRC64NVME.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Stored>,
}

/// What CompleteMultipartUpload asked for beyond the parts: a checksum of the whole object
/// (`x-amz-checksum-*`, with `x-amz-checksum-type`), its size (`x-amz-mp-object-size`).
#[derive(Debug, Clone, Default)]
pub struct CompleteChecks {
    pub object_checksum: Option<(Algorithm, String)>,
    pub kind: Option<String>,
    pub object_size: Option<i64>,
    pub condition: WriteCondition,
}

/// A part as CompleteMultipartUpload lists it: its number, ETag as sent, and the checksums
/// it gives (algorithm, base64).
#[derive(Debug, Clone, Default)]
pub struct ListedPart {
    pub number: i32,
    pub etag: String,
    pub checksums: Vec<(Algorithm, String)>,
}

#[derive(Debug)]
pub enum MultipartError {
    Store(StoreError),
    NoSuchUpload,
    InvalidPart(String),
    InvalidPartOrder,
    EntityTooSmall,
    InvalidArgument(String),
    BadDigest,
    Incomplete(String),
    Sha256Mismatch,
    Checksum(ChecksumError),
}

impl From<StoreError> for MultipartError {
    fn from(e: StoreError) -> Self {
        MultipartError::Store(e)
    }
}

impl From<std::io::Error> for MultipartError {
    fn from(e: std::io::Error) -> Self {
        MultipartError::Store(StoreError::Io(e))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Upload ids are 24 hex digits we made; anything else cannot name a directory. Public only
/// for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn upload_dir(store: &DiskStore, bucket: &str, upload_id: &str) -> Result<PathBuf, MultipartError> {
    if !valid_upload_id(upload_id) {
        return Err(MultipartError::NoSuchUpload);
    }
    let dir = store.bucket_dir(bucket)?.join("uploads").join(upload_id);
    if dir.join("upload.json").is_file() {
        Ok(dir)
    } else {
        Err(MultipartError::NoSuchUpload)
    }
}

fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), MultipartError> {
    let json = serde_json::to_vec(value).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
    crate::util::write_file_atomic(path, &json, crate::util::PRIVATE_FILE_MODE)?;
    Ok(())
}

fn read_upload(dir: &Path) -> Result<UploadInfo, MultipartError> {
    let bytes = std::fs::read(dir.join("upload.json")).map_err(|_| MultipartError::NoSuchUpload)?;
    serde_json::from_slice(&bytes).map_err(|_| MultipartError::NoSuchUpload)
}

/// Starts an upload; returns its id.
pub fn create(
    store: &DiskStore,
    bucket: &str,
    key: &str,
    meta: ObjectMeta,
    checksum: Option<UploadChecksum>,
) -> Result<String, MultipartError> {
    check_key(key).map_err(|b| MultipartError::Store(StoreError::BadKey(b)))?;
    let id = random_token();
    let dir = store.bucket_dir(bucket)?.join("uploads").join(&id);
    crate::util::create_private_dir_all(&dir)?;
    write_json_atomic(
        &dir.join("upload.json"),
        &UploadInfo {
            key: key.to_string(),
            initiated: now_secs(),
            meta,
            checksum,
        },
    )?;
    Ok(id)
}

/// The upload's key must be the one it was created for.
pub fn open_upload(
    store: &DiskStore,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(PathBuf, UploadInfo), MultipartError> {
    let dir = upload_dir(store, bucket, upload_id)?;
    let info = read_upload(&dir)?;
    if info.key != key {
        return Err(MultipartError::NoSuchUpload);
    }
    Ok((dir, info))
}

/// Which part of which upload.
pub struct PartTarget<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub upload_id: &'a str,
    pub number: i32,
}

/// What a part's request says of its body.
#[derive(Default)]
pub struct PartChecks<'a> {
    pub content_length: Option<i64>,
    pub content_md5: Option<&'a str>,
    /// The additional checksum it claims.
    pub claim: Option<&'a Claim>,
    /// Its aws-chunked trailer, read once the body has been.
    pub trailers: Option<&'a s3s::TrailingHeaders>,
}

/// Stores one part from a body stream; returns what is stored of it.
pub async fn upload_part(
    store: &DiskStore,
    target: PartTarget<'_>,
    body: s3s::dto::StreamingBlob,
    checks: PartChecks<'_>,
) -> Result<PartInfo, MultipartError> {
    let PartChecks {
        content_length,
        content_md5,
        claim,
        trailers,
    } = checks;
    let PartTarget {
        bucket,
        key,
        upload_id,
        number,
    } = target;
    if !(1..=MAX_PARTS).contains(&number) {
        return Err(MultipartError::InvalidArgument(format!(
            "Part number must be an integer between 1 and {MAX_PARTS}"
        )));
    }
    let (dir, info) = open_upload(store, bucket, key, upload_id)?;
    let algorithm = match (info.checksum, claim) {
        (Some(u), Some(c)) if u.algorithm != c.algorithm => {
            return Err(MultipartError::Checksum(ChecksumError::Invalid(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                u.algorithm.name().to_ascii_lowercase(),
                c.algorithm.name().to_ascii_lowercase()
            ))))
        }
        (Some(u), _) => u.algorithm,
        (None, Some(c)) => c.algorithm,
        (None, None) => checksum::DEFAULT,
    };
    let temp = store.temp_path(bucket)?;
    let result = async {
        let received = super::transfer::receive(body, &temp, algorithm)
            .await
            .map_err(|e| match e {
                super::transfer::ReceiveError::Interrupted(m) => MultipartError::Incomplete(m),
                super::transfer::ReceiveError::Sha256Mismatch => MultipartError::Sha256Mismatch,
                super::transfer::ReceiveError::Io(e) => MultipartError::from(e),
            })?;
        let (size, digest) = (received.size, received.md5);
        if let Some(expected) = content_length {
            if expected >= 0 && expected as u64 != size {
                return Err(MultipartError::Incomplete(format!(
                    "Received {size} bytes, Content-Length said {expected}."
                )));
            }
        }
        if let Some(sent) = content_md5 {
            if sent.trim() != openssl::base64::encode_block(&digest) {
                return Err(MultipartError::BadDigest);
            }
        }
        if let Some(claim) = claim {
            let trailers = checksum::trailers_of(trailers);
            checksum::verify(claim, trailers.as_ref(), &received.checksum).map_err(MultipartError::Checksum)?;
        }
        let part = PartInfo {
            number,
            size,
            etag: hex::encode(digest),
            last_modified: now_secs(),
            checksum: Some(Stored::full(algorithm, &received.checksum)),
        };
        // Data first, then its description: a part is listed only once it is whole.
        std::fs::rename(&temp, dir.join(format!("part-{number:05}")))?;
        write_json_atomic(&dir.join(format!("part-{number:05}.json")), &part)?;
        Ok(part)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

/// The parts stored so far, by number.
pub fn list_parts(
    store: &DiskStore,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Vec<PartInfo>, MultipartError> {
    let (dir, _) = open_upload(store, bucket, key, upload_id)?;
    let mut parts = BTreeMap::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("part-") && name.ends_with(".json") {
            if let Some(p) = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<PartInfo>(&b).ok())
            {
                if dir.join(format!("part-{:05}", p.number)).is_file() {
                    parts.insert(p.number, p);
                }
            }
        }
    }
    Ok(parts.into_values().collect())
}

/// Uploads in progress: (key, upload id, initiated), ordered by key then id.
pub fn list_uploads(
    store: &DiskStore,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, String, u64)>, MultipartError> {
    let root = store.bucket_dir(bucket)?.join("uploads");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(out);
    };
    for entry in entries {
        let dir = entry?.path();
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !valid_upload_id(&id) {
            continue;
        }
        if let Ok(info) = read_upload(&dir) {
            if info.key.starts_with(prefix) {
                out.push((info.key, id, info.initiated));
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn abort(store: &DiskStore, bucket: &str, key: &str, upload_id: &str) -> Result<(), MultipartError> {
    let (dir, _) = open_upload(store, bucket, key, upload_id)?;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// How long a completed upload is remembered: completing it again within this time answers
/// as the first completion did (S3 does; clients retry a completion whose answer was lost).
const COMPLETED_KEPT_SECS: u64 = 86_400;

/// What a completion answered, kept in the upload's directory once its parts are gone.
#[derive(Serialize, Deserialize)]
struct Completed {
    key: String,
    at: u64,
    meta: ObjectMeta,
}

/// The answer of an earlier completion of this upload, if it was completed.
fn completed_before(
    store: &DiskStore,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<std::sync::Arc<ObjectMeta>, MultipartError> {
    if !valid_upload_id(upload_id) {
        return Err(MultipartError::NoSuchUpload);
    }
    let path = store
        .bucket_dir(bucket)?
        .join("uploads")
        .join(upload_id)
        .join("completed.json");
    let done: Completed = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(MultipartError::NoSuchUpload)?;
    if done.key != key {
        return Err(MultipartError::NoSuchUpload);
    }
    Ok(std::sync::Arc::new(done.meta))
}

/// Forgets completions older than [`COMPLETED_KEPT_SECS`].
fn forget_old_completions(uploads: &Path) {
    let Ok(entries) = std::fs::read_dir(uploads) else {
        return;
    };
    let now = now_secs();
    for entry in entries.flatten() {
        let dir = entry.path();
        let done = std::fs::read(dir.join("completed.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Completed>(&b).ok());
        if done.is_some_and(|d| now.saturating_sub(d.at) > COMPLETED_KEPT_SECS) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Concatenates the listed parts into the object, checking what S3 checks: the parts' order,
/// ETags, sizes and checksums, the checksum and size of the whole object when given, and the
/// write condition. An upload completed before (its parts gone) answers as it did then.
pub async fn complete(
    store: &DiskStore,
    bucket: &str,
    key: &str,
    upload_id: &str,
    listed: &[ListedPart],
    checks: &CompleteChecks,
) -> Result<std::sync::Arc<ObjectMeta>, MultipartError> {
    let (dir, info) = match open_upload(store, bucket, key, upload_id) {
        Err(MultipartError::NoSuchUpload) => return completed_before(store, bucket, key, upload_id),
        other => other?,
    };
    if listed.is_empty() {
        return Err(MultipartError::InvalidArgument(
            "You must specify at least one part".into(),
        ));
    }
    let invalid = |m: String| MultipartError::Checksum(ChecksumError::Invalid(m));
    let kind = info.checksum.map(|u| u.kind).unwrap_or(Kind::FullObject);
    let algorithm = info.checksum.map(|u| u.algorithm).unwrap_or(checksum::DEFAULT);
    if let Some(k) = &checks.kind {
        if Kind::from_name(k) != Some(kind) {
            return Err(invalid(format!(
                "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                kind.name()
            )));
        }
    }
    if let Some((a, _)) = &checks.object_checksum {
        if *a != algorithm {
            return Err(invalid(format!(
                "The upload was created using a {} checksum. The complete request must use the same checksum algorithm.",
                algorithm.name().to_ascii_lowercase()
            )));
        }
    }
    let stored: BTreeMap<i32, PartInfo> = list_parts(store, bucket, key, upload_id)?
        .into_iter()
        .map(|p| (p.number, p))
        .collect();
    if listed.windows(2).any(|w| w[0].number >= w[1].number) {
        return Err(MultipartError::InvalidPartOrder);
    }
    let mut chosen = Vec::with_capacity(listed.len());
    for (i, l) in listed.iter().enumerate() {
        let number = l.number;
        let part = stored
            .get(&number)
            .ok_or_else(|| MultipartError::InvalidPart(format!("part {number} was not uploaded")))?;
        if l.etag.trim_matches('"') != part.etag {
            return Err(MultipartError::InvalidPart(format!(
                "part {number}: the ETag does not match"
            )));
        }
        if i + 1 < listed.len() && part.size < MIN_PART_SIZE {
            return Err(MultipartError::EntityTooSmall);
        }
        for (a, value) in &l.checksums {
            match &part.checksum {
                Some(c) if c.algorithm == *a && c.value != value.trim() => {
                    return Err(MultipartError::InvalidPart(format!(
                        "part {number}: the {} checksum does not match",
                        a.name()
                    )));
                }
                Some(c) if c.algorithm == *a => {}
                _ if info.checksum.is_some() => {
                    return Err(invalid(format!(
                        "The upload was created using a {} checksum. The complete request must use the same checksum algorithm for part {number}.",
                        algorithm.name().to_ascii_lowercase()
                    )))
                }
                // An upload that named no algorithm: parts sent with one keep theirs.
                _ => {}
            }
        }
        if kind == Kind::Composite && !l.checksums.iter().any(|(a, _)| *a == algorithm) {
            return Err(invalid(format!(
                "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {number} in the request.",
                algorithm.name().to_ascii_lowercase()
            )));
        }
        chosen.push(part.clone());
    }
    store.check_condition(bucket, key, &checks.condition)?;

    let temp = store.temp_path(bucket)?;
    let result = async {
        let mut inputs = Vec::with_capacity(chosen.len());
        for p in &chosen {
            inputs.push(std::fs::File::open(dir.join(format!("part-{:05}", p.number)))?);
        }
        let hasher = (kind == Kind::FullObject).then(|| algorithm.hasher());
        let out = temp.clone();
        let (size, digest) = tokio::task::spawn_blocking(move || super::transfer::concatenate(inputs, &out, hasher))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        let mut md5s = md5::Md5::new();
        let mut part_digests = Vec::with_capacity(chosen.len());
        for part in &chosen {
            md5s.update(hex::decode(&part.etag).map_err(|e| StoreError::Io(std::io::Error::other(e)))?);
            if kind == Kind::Composite {
                let value = part.checksum.as_ref().map(|c| c.value.as_str()).unwrap_or("");
                part_digests.push(checksum::decode(algorithm, value).ok_or_else(|| {
                    MultipartError::InvalidPart(format!("part {} has no {} checksum", part.number, algorithm.name()))
                })?);
            }
        }
        let object_checksum = match digest {
            Some(d) => Stored::full(algorithm, &d),
            None => Stored {
                algorithm,
                value: checksum::composite(algorithm, &part_digests),
                kind: Kind::Composite,
            },
        };
        if let Some(expected) = checks.object_size {
            if expected < 0 || expected as u64 != size {
                return Err(invalid(format!(
                    "The provided 'x-amz-mp-object-size' header value {expected} does not match what was computed: {size}"
                )));
            }
        }
        if let Some((a, value)) = &checks.object_checksum {
            let bare = |v: &str| v.trim().split('-').next().unwrap_or("").to_string();
            if bare(value) != bare(&object_checksum.value) {
                return Err(MultipartError::Checksum(ChecksumError::Mismatch(*a)));
            }
        }
        let mut meta = info.meta.clone();
        meta.size = size;
        meta.etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
        // Each part keeps its checksum when it is of the object's algorithm: what a GET of
        // the part (`partNumber`) and GetObjectAttributes show.
        meta.parts = chosen
            .iter()
            .map(|p| PartRecord {
                size: p.size,
                checksum: p
                    .checksum
                    .as_ref()
                    .filter(|c| c.algorithm == algorithm)
                    .map(|c| c.value.clone()),
            })
            .collect();
        meta.checksum = Some(object_checksum);
        let committed = store.commit_if(bucket, key, &temp, meta, &checks.condition)?;
        Ok(committed)
    }
    .await;
    match result {
        Ok(meta) => {
            // Remember the answer, then let the parts go.
            let done = Completed {
                key: key.to_string(),
                at: now_secs(),
                meta: meta.alone(),
            };
            let _ = write_json_atomic(&dir.join("completed.json"), &done);
            let _ = std::fs::remove_file(dir.join("upload.json"));
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.file_name() != "completed.json" {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            if let Some(uploads) = dir.parent() {
                forget_old_completions(uploads);
            }
            Ok(meta)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(data: Vec<u8>) -> s3s::dto::StreamingBlob {
        s3s::dto::StreamingBlob::wrap(futures::stream::iter(vec![Ok::<_, std::io::Error>(
            bytes::Bytes::from(data),
        )]))
    }

    fn lp(number: i32, etag: &str) -> ListedPart {
        ListedPart {
            number,
            etag: etag.to_string(),
            checksums: Vec::new(),
        }
    }

    fn meta() -> ObjectMeta {
        ObjectMeta {
            content_type: Some("application/octet-stream".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn parts_become_one_object_with_the_s3_etag() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("bkt").unwrap();
        let id = create(&s, "bkt", "big", meta(), None).unwrap();
        let one = vec![1u8; MIN_PART_SIZE as usize];
        let two = vec![2u8; 10];
        let p2 = upload_part(
            &s,
            PartTarget {
                bucket: "bkt",
                key: "big",
                upload_id: &id,
                number: 2,
            },
            blob(two.clone()),
            PartChecks {
                content_length: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let p1 = upload_part(
            &s,
            PartTarget {
                bucket: "bkt",
                key: "big",
                upload_id: &id,
                number: 1,
            },
            blob(one.clone()),
            PartChecks::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            list_parts(&s, "bkt", "big", &id)
                .unwrap()
                .iter()
                .map(|p| p.number)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(list_uploads(&s, "bkt", "").unwrap().len(), 1);

        // Order, ETags and sizes are checked.
        let none = CompleteChecks::default();
        let wrong_order = [lp(2, &p2.etag), lp(1, &p1.etag)];
        assert!(matches!(
            complete(&s, "bkt", "big", &id, &wrong_order, &none).await,
            Err(MultipartError::InvalidPartOrder)
        ));
        let wrong_etag = [lp(1, &p2.etag), lp(2, &p2.etag)];
        assert!(matches!(
            complete(&s, "bkt", "big", &id, &wrong_etag, &none).await,
            Err(MultipartError::InvalidPart(_))
        ));
        let small_first = [lp(2, &p2.etag), lp(3, "x")];
        assert!(complete(&s, "bkt", "big", &id, &small_first, &none).await.is_err());
        // A wrong part checksum, a wrong size of the whole.
        let mut bad_sum = [lp(1, &p1.etag), lp(2, &p2.etag)];
        bad_sum[1].checksums = vec![(Algorithm::Crc64Nvme, "AAAAAAAAAAA=".into())];
        assert!(matches!(
            complete(&s, "bkt", "big", &id, &bad_sum, &none).await,
            Err(MultipartError::InvalidPart(_))
        ));
        let wrong_size = CompleteChecks {
            object_size: Some(3),
            ..Default::default()
        };
        assert!(
            complete(&s, "bkt", "big", &id, &[lp(1, &p1.etag), lp(2, &p2.etag)], &wrong_size)
                .await
                .is_err()
        );

        let listed = [lp(1, &format!("\"{}\"", p1.etag)), lp(2, &p2.etag)];
        let m = complete(&s, "bkt", "big", &id, &listed, &none).await.unwrap();
        let mut md5s = md5::Md5::new();
        md5s.update(md5::Md5::digest(&one));
        md5s.update(md5::Md5::digest(&two));
        assert_eq!(m.etag, format!("{}-2", hex::encode(md5s.finalize())));
        assert_eq!(m.size, one.len() as u64 + 10);
        // Without an algorithm: a full-object CRC64NVME of the whole object.
        let whole = [one.clone(), two.clone()].concat();
        assert_eq!(
            m.checksum,
            Some(Stored::full(Algorithm::Crc64Nvme, &Algorithm::Crc64Nvme.digest(&whole)))
        );
        assert_eq!(
            m.parts.iter().map(|p| p.size).collect::<Vec<_>>(),
            [one.len() as u64, 10]
        );
        let (_, mut f) = s.open_object("bkt", "big", None).unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut all).unwrap();
        assert_eq!(all, whole);
        assert!(
            matches!(list_parts(&s, "bkt", "big", &id), Err(MultipartError::NoSuchUpload)),
            "upload is gone"
        );
        // Completing it again answers as the first time (S3), for its key only.
        let again = complete(&s, "bkt", "big", &id, &listed, &none).await.unwrap();
        assert_eq!(again.etag, m.etag);
        assert!(matches!(
            complete(&s, "bkt", "other", &id, &listed, &none).await,
            Err(MultipartError::NoSuchUpload)
        ));
    }

    #[tokio::test]
    async fn composite_checksums_and_algorithm_rules() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("bkt").unwrap();
        let sha = UploadChecksum::new(Some("SHA256"), None).unwrap();
        assert_eq!(
            sha,
            Some(UploadChecksum {
                algorithm: Algorithm::Sha256,
                kind: Kind::Composite
            })
        );
        assert!(UploadChecksum::new(Some("SHA256"), Some("FULL_OBJECT")).is_err());
        assert!(UploadChecksum::new(Some("CRC64NVME"), Some("COMPOSITE")).is_err());
        assert!(UploadChecksum::new(None, Some("COMPOSITE")).is_err());
        assert!(UploadChecksum::new(Some("MD5"), None).is_err());
        let id = create(&s, "bkt", "k", meta(), sha).unwrap();
        let target = |number| PartTarget {
            bucket: "bkt",
            key: "k",
            upload_id: &id,
            number,
        };
        // A part sent with another algorithm is refused.
        let crc = Claim {
            algorithm: Algorithm::Crc32,
            value: Some(Algorithm::Crc32.digest(b"x")),
        };
        let refused = upload_part(
            &s,
            target(1),
            blob(b"x".to_vec()),
            PartChecks {
                claim: Some(&crc),
                ..Default::default()
            },
        )
        .await;
        assert!(matches!(
            refused,
            Err(MultipartError::Checksum(ChecksumError::Invalid(_)))
        ));
        // A wrong SHA-256: BadDigest, nothing kept.
        let wrong = Claim {
            algorithm: Algorithm::Sha256,
            value: Some(Algorithm::Sha256.digest(b"y")),
        };
        let bad = upload_part(
            &s,
            target(1),
            blob(b"x".to_vec()),
            PartChecks {
                claim: Some(&wrong),
                ..Default::default()
            },
        )
        .await;
        assert!(matches!(bad, Err(MultipartError::Checksum(ChecksumError::Mismatch(_)))));
        assert!(list_parts(&s, "bkt", "k", &id).unwrap().is_empty());
        // A part sent without a checksum gets the upload's.
        let p1 = upload_part(&s, target(1), blob(b"only".to_vec()), PartChecks::default())
            .await
            .unwrap();
        let c1 = p1.checksum.clone().unwrap();
        assert_eq!(c1.value, checksum::base64(&Algorithm::Sha256.digest(b"only")));
        // The complete request must list each part's checksum.
        let none = CompleteChecks::default();
        assert!(matches!(
            complete(&s, "bkt", "k", &id, &[lp(1, &p1.etag)], &none).await,
            Err(MultipartError::Checksum(ChecksumError::Invalid(_)))
        ));
        let mut listed = lp(1, &p1.etag);
        listed.checksums = vec![(Algorithm::Sha256, c1.value.clone())];
        let m = complete(&s, "bkt", "k", &id, &[listed], &none).await.unwrap();
        let stored = m.checksum.clone().unwrap();
        assert_eq!(stored.kind, Kind::Composite);
        assert_eq!(
            stored.value,
            checksum::composite(Algorithm::Sha256, &[Algorithm::Sha256.digest(b"only")])
        );
        assert!(stored.value.ends_with("-1"));
        assert_eq!(m.parts[0].checksum.as_deref(), Some(c1.value.as_str()));
    }

    #[tokio::test]
    async fn abort_and_hostile_ids() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("bkt").unwrap();
        let id = create(&s, "bkt", "k", meta(), None).unwrap();
        assert!(matches!(
            list_parts(&s, "bkt", "other-key", &id),
            Err(MultipartError::NoSuchUpload)
        ));
        abort(&s, "bkt", "k", &id).unwrap();
        assert!(matches!(abort(&s, "bkt", "k", &id), Err(MultipartError::NoSuchUpload)));
        for bad in ["../../etc", "", "ZZZZZZZZZZZZZZZZZZZZZZZZ", "../uploads/x"] {
            assert!(
                matches!(list_parts(&s, "bkt", "k", bad), Err(MultipartError::NoSuchUpload)),
                "{bad}"
            );
        }
        let id = create(&s, "bkt", "k", meta(), None).unwrap();
        assert!(matches!(
            upload_part(
                &s,
                PartTarget {
                    bucket: "bkt",
                    key: "k",
                    upload_id: &id,
                    number: 0
                },
                blob(vec![1]),
                PartChecks::default()
            )
            .await,
            Err(MultipartError::InvalidArgument(_))
        ));
        assert!(matches!(
            upload_part(
                &s,
                PartTarget {
                    bucket: "bkt",
                    key: "k",
                    upload_id: &id,
                    number: 1
                },
                blob(vec![1, 2]),
                PartChecks {
                    content_length: Some(3),
                    ..Default::default()
                }
            )
            .await,
            Err(MultipartError::Incomplete(_))
        ));
        assert!(
            list_parts(&s, "bkt", "k", &id).unwrap().is_empty(),
            "a truncated part is not kept"
        );
    }
}
