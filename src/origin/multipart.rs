//! Multipart uploads on disk: parts are stored as they arrive, and completing the upload
//! concatenates them into one object through the store's crash-safe commit. S3's rules:
//! parts 1..=10000, every part but the last at least 5 MiB, the listed parts in ascending
//! order with matching ETags, and the object's ETag is the MD5 of the parts' MD5s plus `-N`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use md5::Digest as _;
use serde::{Deserialize, Serialize};

use super::store::{check_key, random_token, DiskStore, ObjectMeta, StoreError};

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartInfo {
    pub number: i32,
    pub size: u64,
    /// Hex MD5, no quotes.
    pub etag: String,
    pub last_modified: u64,
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
pub fn create(store: &DiskStore, bucket: &str, key: &str, meta: ObjectMeta) -> Result<String, MultipartError> {
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
        },
    )?;
    Ok(id)
}

/// The upload's key must be the one it was created for.
fn open_upload(
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

/// Stores one part from a body stream; returns its ETag (hex MD5).
pub async fn upload_part(
    store: &DiskStore,
    target: PartTarget<'_>,
    body: s3s::dto::StreamingBlob,
    content_length: Option<i64>,
    content_md5: Option<&str>,
) -> Result<PartInfo, MultipartError> {
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
    let (dir, _) = open_upload(store, bucket, key, upload_id)?;
    let temp = store.temp_path(bucket)?;
    let result = async {
        let received = super::transfer::receive(body, &temp).await.map_err(|e| match e {
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
        let part = PartInfo {
            number,
            size,
            etag: hex::encode(digest),
            last_modified: now_secs(),
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

/// Concatenates the listed parts into the object. `listed`: (part number, ETag as sent).
pub async fn complete(
    store: &DiskStore,
    bucket: &str,
    key: &str,
    upload_id: &str,
    listed: &[(i32, String)],
) -> Result<std::sync::Arc<ObjectMeta>, MultipartError> {
    let (dir, info) = open_upload(store, bucket, key, upload_id)?;
    if listed.is_empty() {
        return Err(MultipartError::InvalidArgument(
            "You must specify at least one part".into(),
        ));
    }
    let stored: BTreeMap<i32, PartInfo> = list_parts(store, bucket, key, upload_id)?
        .into_iter()
        .map(|p| (p.number, p))
        .collect();
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(MultipartError::InvalidPartOrder);
    }
    let mut chosen = Vec::with_capacity(listed.len());
    for (i, (number, etag)) in listed.iter().enumerate() {
        let part = stored
            .get(number)
            .ok_or_else(|| MultipartError::InvalidPart(format!("part {number} was not uploaded")))?;
        if etag.trim_matches('"') != part.etag {
            return Err(MultipartError::InvalidPart(format!(
                "part {number}: the ETag does not match"
            )));
        }
        if i + 1 < listed.len() && part.size < MIN_PART_SIZE {
            return Err(MultipartError::EntityTooSmall);
        }
        chosen.push(part.clone());
    }

    let temp = store.temp_path(bucket)?;
    let result = async {
        let mut out = tokio::fs::File::from_std(crate::util::create_private_file(&temp)?);
        let mut md5s = md5::Md5::new();
        let mut size = 0u64;
        for part in &chosen {
            let mut input = tokio::fs::File::open(dir.join(format!("part-{:05}", part.number))).await?;
            size += tokio::io::copy(&mut input, &mut out).await?;
            md5s.update(hex::decode(&part.etag).map_err(|e| StoreError::Io(std::io::Error::other(e)))?);
        }
        out.sync_all().await?;
        let mut meta = info.meta.clone();
        meta.size = size;
        meta.etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
        let committed = store.commit(bucket, key, &temp, meta)?;
        Ok(committed)
    }
    .await;
    match result {
        Ok(meta) => {
            let _ = std::fs::remove_dir_all(&dir);
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
        let id = create(&s, "bkt", "big", meta()).unwrap();
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
            Some(10),
            None,
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
            None,
            None,
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
        let wrong_order = [(2, p2.etag.clone()), (1, p1.etag.clone())];
        assert!(matches!(
            complete(&s, "bkt", "big", &id, &wrong_order).await,
            Err(MultipartError::InvalidPartOrder)
        ));
        let wrong_etag = [(1, p2.etag.clone()), (2, p2.etag.clone())];
        assert!(matches!(
            complete(&s, "bkt", "big", &id, &wrong_etag).await,
            Err(MultipartError::InvalidPart(_))
        ));
        let small_first = [(2, p2.etag.clone()), (3, "x".into())];
        assert!(complete(&s, "bkt", "big", &id, &small_first).await.is_err());

        let m = complete(
            &s,
            "bkt",
            "big",
            &id,
            &[(1, format!("\"{}\"", p1.etag)), (2, p2.etag.clone())],
        )
        .await
        .unwrap();
        let mut md5s = md5::Md5::new();
        md5s.update(md5::Md5::digest(&one));
        md5s.update(md5::Md5::digest(&two));
        assert_eq!(m.etag, format!("{}-2", hex::encode(md5s.finalize())));
        assert_eq!(m.size, one.len() as u64 + 10);
        let (_, mut f) = s.open_object("bkt", "big", None).unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut all).unwrap();
        assert_eq!(&all[..one.len()], &one[..]);
        assert_eq!(&all[one.len()..], &two[..]);
        assert!(
            matches!(list_parts(&s, "bkt", "big", &id), Err(MultipartError::NoSuchUpload)),
            "upload is gone"
        );
    }

    #[tokio::test]
    async fn abort_and_hostile_ids() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(dir.path()).unwrap();
        s.ensure_bucket("bkt").unwrap();
        let id = create(&s, "bkt", "k", meta()).unwrap();
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
        let id = create(&s, "bkt", "k", meta()).unwrap();
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
                None,
                None
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
                Some(3),
                None
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
