//! What is stored beside each object (`ObjectMeta`, one version with the older ones) and
//! how a record's versions are addressed and stacked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::origin::checksum::Stored;

/// One part of a multipart object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub size: u64,
    /// The part's checksum (base64), for an object with a composite checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Object Lock's two retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    /// Protected, but a user who asks to bypass governance may shorten, remove or delete.
    #[serde(rename = "GOVERNANCE")]
    Governance,
    /// Nobody may shorten it or delete the version until it ends.
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

impl LockMode {
    pub fn name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn from_name(s: &str) -> Option<LockMode> {
        match s {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A version's retention: its mode, and until when (milliseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: LockMode,
    pub until_ms: i64,
}

impl Retention {
    pub fn active(&self, now_ms: i64) -> bool {
        self.until_ms > now_ms
    }
}

/// Why a version may not be removed or have its retention changed (S3: 403 AccessDenied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    LegalHold,
    Retention(LockMode),
}

impl ObjectMeta {
    /// Whether this version may be deleted for good now: not under a legal hold, and its
    /// retention over, or GOVERNANCE bypassed.
    pub fn removable(&self, now_ms: i64, bypass_governance: bool) -> Result<(), Locked> {
        if self.legal_hold {
            return Err(Locked::LegalHold);
        }
        match self.retention {
            Some(r) if r.active(now_ms) => match r.mode {
                LockMode::Governance if bypass_governance => Ok(()),
                mode => Err(Locked::Retention(mode)),
            },
            _ => Ok(()),
        }
    }
}

/// A conditional write (PutObject, CompleteMultipartUpload): `If-None-Match: *` and
/// `If-Match: <etag>` on the key's current version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCondition {
    /// The key must not exist.
    pub if_none_match_any: bool,
    /// The key must exist with this ETag (hex MD5, no quotes); `*`: exist.
    pub if_match: Option<String>,
}

/// Why a conditional write's precondition fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionFailed {
    /// `If-Match` on a key with no current version (S3: 404 NoSuchKey).
    Missing,
    /// S3: 412 PreconditionFailed.
    Failed,
}

impl WriteCondition {
    pub fn is_none(&self) -> bool {
        !self.if_none_match_any && self.if_match.is_none()
    }

    /// Checks the condition against the key's record as it is (`None`: no such key; a delete
    /// marker as the current version counts as none).
    pub fn check(&self, current: Option<&ObjectMeta>) -> Result<(), ConditionFailed> {
        let current = current.filter(|m| !m.delete_marker);
        if self.if_none_match_any && current.is_some() {
            return Err(ConditionFailed::Failed);
        }
        if let Some(want) = &self.if_match {
            let Some(m) = current else {
                return Err(ConditionFailed::Missing);
            };
            if want != "*" && want.trim_matches('"') != m.etag {
                return Err(ConditionFailed::Failed);
            }
        }
        Ok(())
    }
}

/// What is stored beside each object: one version of it. The `.meta` file of a key holds its
/// current version, with the older ones (in a bucket that has had versioning) in `noncurrent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Hex MD5 of the content, without quotes.
    pub etag: String,
    /// Seconds since the epoch.
    pub last_modified: u64,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    /// HTTP date, as sent.
    pub expires: Option<String>,
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
    /// Object tags (at most 10).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Canned ACL `public-read`: anyone may GET/HEAD it without a signature.
    #[serde(default)]
    pub public_read: bool,
    /// File name of the data file in the same directory (empty for a delete marker).
    pub data_file: String,
    /// `None`: the `null` version (written while versioning was never enabled, or suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// A delete marker: no data; as the current version it makes the key read as deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    /// The additional checksum (S3's CRC32, CRC32C, CRC64NVME, SHA-1 or SHA-256); absent on
    /// objects stored before homefront kept them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Stored>,
    /// A multipart object's parts, in order: what `partNumber` reads and GetObjectAttributes
    /// lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartRecord>,
    /// Object Lock retention of this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Object Lock legal hold of this version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
    /// Older versions, newest first; only on the record of the current version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noncurrent: Vec<ObjectMeta>,
}

impl ObjectMeta {
    /// Every version of the key, newest first: this record's current version, then the older.
    pub fn versions(&self) -> impl Iterator<Item = &ObjectMeta> {
        std::iter::once(self).chain(self.noncurrent.iter())
    }

    /// This version without the older ones.
    pub fn alone(&self) -> ObjectMeta {
        let mut m = self.clone();
        m.noncurrent.clear();
        m
    }

    /// The version id as S3 shows it: `null` for the null version.
    pub fn version_label(&self) -> &str {
        self.version_id.as_deref().unwrap_or("null")
    }

    pub(super) fn is_version(&self, id: &str) -> bool {
        self.version_label() == id
    }

    /// A record from versions listed newest first; `None` when there are none.
    pub(super) fn from_versions(versions: Vec<ObjectMeta>) -> Option<ObjectMeta> {
        let mut it = versions.into_iter();
        let mut current = it.next()?;
        current.noncurrent = it.collect();
        Some(current)
    }

    /// Every version of the record, each alone, newest first.
    pub(super) fn into_versions(self) -> Vec<ObjectMeta> {
        let mut current = self;
        let mut rest = std::mem::take(&mut current.noncurrent);
        rest.insert(0, current);
        rest
    }
}

/// `versionId` values we can have issued: `null` or our tokens; anything else is malformed.
pub(super) fn check_version_id(v: &str) -> Result<(), StoreError> {
    if v == "null" || (!v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())) {
        Ok(())
    } else {
        Err(StoreError::InvalidVersionId)
    }
}

/// Which version of a key's record (`None`: no such key) a request reads, as its index in
/// [`ObjectMeta::versions`]: the current one without `version`, else the one with that id.
/// Missing: NoSuchKey (NoSuchVersion when an id was given); a delete marker: DeleteMarker.
pub(super) fn select_version(record: Option<&ObjectMeta>, version: Option<&str>) -> Result<usize, StoreError> {
    let missing = if version.is_some() {
        StoreError::NoSuchVersion
    } else {
        StoreError::NoSuchKey
    };
    let record = record.ok_or(missing)?;
    let (i, m) = match version {
        None => (0, record),
        Some(v) => record
            .versions()
            .enumerate()
            .find(|(_, m)| m.is_version(v))
            .ok_or(StoreError::NoSuchVersion)?,
    };
    if m.delete_marker {
        return Err(StoreError::DeleteMarker {
            version_id: m.version_id.clone(),
            addressed: version.is_some(),
        });
    }
    Ok(i)
}

/// Adds `new` as the current version on top of `old`: the null version it replaces (when
/// `new` is null) leaves, its data file returned for removal.
pub(super) fn push_version(old: Option<&ObjectMeta>, new: ObjectMeta) -> (ObjectMeta, Vec<String>) {
    let mut versions = old.map(|o| o.clone().into_versions()).unwrap_or_default();
    let mut garbage = Vec::new();
    if new.version_id.is_none() {
        versions.retain(|v| {
            if v.version_id.is_some() {
                return true;
            }
            if !v.data_file.is_empty() {
                garbage.push(v.data_file.clone());
            }
            false
        });
    }
    versions.insert(0, new);
    (ObjectMeta::from_versions(versions).unwrap_or_default(), garbage)
}
