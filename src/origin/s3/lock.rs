//! Object Lock: the bucket's configuration (Get/PutObjectLockConfiguration), each version's
//! retention and legal hold (Get/PutObjectRetention, Get/PutObjectLegalHold), and what a new
//! version gets from its upload's headers or the bucket's default. Deletes of locked
//! versions are refused by the store ([`DiskStore::delete_as`]).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use crate::origin::store::{now_ms, DefaultRetention, DiskStore, LockMode, Locked, ObjectLock, Retention, StoreError};

pub(super) fn to_ms(t: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = t.clone().into();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn from_ms(ms: i64) -> Timestamp {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(Timestamp::from)
        .unwrap_or_else(|_| Timestamp::from(std::time::UNIX_EPOCH))
}

/// A mode from a header (400 InvalidArgument, as S3) ...
fn mode_of(m: &str) -> S3Result<LockMode> {
    LockMode::from_name(m).ok_or_else(|| s3_error!(InvalidArgument, "Unknown wormMode directive."))
}

/// ... or from an XML body (400 MalformedXML).
fn xml_mode_of(m: &str) -> S3Result<LockMode> {
    LockMode::from_name(m).ok_or_else(|| {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema (Mode must be GOVERNANCE or COMPLIANCE)."
        )
    })
}

fn hold_of(h: &str) -> S3Result<bool> {
    match h {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(s3_error!(MalformedXML, "The legal hold status must be ON or OFF.")),
    }
}

/// The Object Lock headers of an upload (PutObject, CreateMultipartUpload, CopyObject).
pub(super) struct LockHeaders<'a> {
    pub(super) mode: Option<&'a ObjectLockMode>,
    pub(super) until: Option<&'a Timestamp>,
    pub(super) hold: Option<&'a ObjectLockLegalHoldStatus>,
}

macro_rules! lock_headers {
    ($input:expr) => {
        crate::origin::s3::lock::LockHeaders {
            mode: $input.object_lock_mode.as_ref(),
            until: $input.object_lock_retain_until_date.as_ref(),
            hold: $input.object_lock_legal_hold_status.as_ref(),
        }
    };
}
pub(super) use lock_headers;

/// The retention and legal hold a new version gets: what its upload says, else the bucket's
/// default retention. `lock`: the bucket's configuration (`None`: it has none, and an upload
/// may not ask for any).
pub(super) fn for_new_version(
    lock: Option<&ObjectLock>,
    h: &LockHeaders<'_>,
    now_ms: i64,
) -> S3Result<(Option<Retention>, bool)> {
    let asked = h.mode.is_some() || h.until.is_some() || h.hold.is_some();
    let Some(lock) = lock else {
        if asked {
            return Err(map_err(StoreError::ObjectLockNotEnabled));
        }
        return Ok((None, false));
    };
    let retention = match (h.mode, h.until) {
        (Some(m), Some(u)) => Some(retention(mode_of(m.as_str())?, u, now_ms)?),
        (None, None) => lock.default_retention.map(|d| d.from(now_ms)),
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ))
        }
    };
    let hold = match h.hold {
        Some(s) => hold_of(s.as_str())?,
        None => false,
    };
    Ok((retention, hold))
}

/// What may replace a version's retention: COMPLIANCE may only be kept or lengthened;
/// GOVERNANCE may be shortened, removed or made COMPLIANCE only with the bypass.
pub(super) fn retention_change(
    old: Option<Retention>,
    new: Option<Retention>,
    bypass_governance: bool,
    now_ms: i64,
) -> Result<(), Locked> {
    let Some(old) = old.filter(|o| o.active(now_ms)) else {
        return Ok(());
    };
    let lengthens = new.is_some_and(|n| n.mode == old.mode && n.until_ms >= old.until_ms);
    let allowed = match old.mode {
        LockMode::Compliance => lengthens,
        LockMode::Governance => lengthens || bypass_governance,
    };
    if allowed {
        Ok(())
    } else {
        Err(Locked::Retention(old.mode))
    }
}

fn lock_enabled(store: &DiskStore, bucket: &str) -> S3Result<ObjectLock> {
    store
        .object_lock(bucket)
        .map_err(map_err)?
        .ok_or_else(|| map_err(StoreError::ObjectLockNotEnabled))
}

/// A retention asked for (by an upload's headers or PutObjectRetention): it must end in the
/// future.
fn retention(mode: LockMode, until: &Timestamp, now_ms: i64) -> S3Result<Retention> {
    let until_ms = to_ms(until);
    if until_ms <= now_ms {
        return Err(s3_error!(
            InvalidArgument,
            "The retain until date must be in the future!"
        ));
    }
    Ok(Retention { mode, until_ms })
}

pub(super) async fn put_object_lock_configuration(
    store: &DiskStore,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let input = req.input;
    let config = input.object_lock_configuration.unwrap_or_default();
    if config.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some(ObjectLockEnabled::ENABLED) {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled."));
    }
    let default_retention = match config.rule.and_then(|r| r.default_retention) {
        None => None,
        Some(d) => {
            let mode = xml_mode_of(d.mode.as_ref().map(|m| m.as_str()).unwrap_or(""))?;
            let period = |v: Option<i32>| -> S3Result<Option<u32>> {
                match v {
                    None => Ok(None),
                    Some(n) if n > 0 => Ok(Some(n as u32)),
                    Some(_) => {
                        let mut e = s3s::S3Error::with_message(
                            s3s::S3ErrorCode::Custom("InvalidRetentionPeriod".into()),
                            "Default retention period must be a positive integer value.",
                        );
                        e.set_status_code(http::StatusCode::BAD_REQUEST);
                        Err(e)
                    }
                }
            };
            let (days, years) = (period(d.days)?, period(d.years)?);
            if days.is_some() == years.is_some() {
                return Err(s3_error!(
                    MalformedXML,
                    "A default retention names either Days or Years, not both nor neither."
                ));
            }
            Some(DefaultRetention { mode, days, years })
        }
    };
    store
        .set_object_lock(&input.bucket, ObjectLock { default_retention })
        .map_err(map_err)?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(super) async fn get_object_lock_configuration(
    store: &DiskStore,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let Some(lock) = store.object_lock(&req.input.bucket).map_err(map_err)? else {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    };
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule: lock.default_retention.map(|d| ObjectLockRule {
                default_retention: Some(s3s::dto::DefaultRetention {
                    mode: Some(ObjectLockRetentionMode::from(d.mode.name().to_string())),
                    days: d.days.map(|n| n as i32),
                    years: d.years.map(|n| n as i32),
                }),
            }),
        }),
    }))
}

pub(super) async fn put_object_retention(
    store: &DiskStore,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let input = req.input;
    lock_enabled(store, &input.bucket)?;
    let now = now_ms();
    let new = match input.retention {
        None => None,
        Some(r) => match (r.mode, r.retain_until_date) {
            (Some(m), Some(u)) => Some(retention(xml_mode_of(m.as_str())?, &u, now)?),
            (None, None) => None,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "A retention names both a Mode and a RetainUntilDate."
                ))
            }
        },
    };
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    store
        .update_meta_if(&input.bucket, &input.key, input.version_id.as_deref(), |m| {
            retention_change(m.retention, new, bypass, now).map_err(StoreError::Locked)?;
            m.retention = new;
            Ok(())
        })
        .map_err(map_err)?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(super) async fn get_object_retention(
    store: &DiskStore,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let input = req.input;
    lock_enabled(store, &input.bucket)?;
    let meta = store
        .head_version(&input.bucket, &input.key, input.version_id.as_deref())
        .map_err(map_err)?;
    let Some(r) = meta.retention else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(r.mode.name().to_string())),
            retain_until_date: Some(from_ms(r.until_ms)),
        }),
    }))
}

pub(super) async fn put_object_legal_hold(
    store: &DiskStore,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let input = req.input;
    lock_enabled(store, &input.bucket)?;
    let status = input
        .legal_hold
        .and_then(|h| h.status)
        .ok_or_else(|| s3_error!(MalformedXML, "The legal hold status must be ON or OFF."))?;
    let on = hold_of(status.as_str())?;
    store
        .update_meta(&input.bucket, &input.key, input.version_id.as_deref(), |m| {
            m.legal_hold = on
        })
        .map_err(map_err)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(super) async fn get_object_legal_hold(
    store: &DiskStore,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let input = req.input;
    lock_enabled(store, &input.bucket)?;
    let meta = store
        .head_version(&input.bucket, &input.key, input.version_id.as_deref())
        .map_err(map_err)?;
    let status = if meta.legal_hold { "ON" } else { "OFF" };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from(status.to_string())),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn ret(mode: LockMode, until_ms: i64) -> Retention {
        Retention { mode, until_ms }
    }

    #[test]
    fn new_versions_get_the_asked_or_the_default_retention() {
        let none = LockHeaders {
            mode: None,
            until: None,
            hold: None,
        };
        assert_eq!(for_new_version(None, &none, NOW).unwrap(), (None, false));
        let lock = ObjectLock {
            default_retention: Some(DefaultRetention {
                mode: LockMode::Governance,
                days: Some(2),
                years: None,
            }),
        };
        assert_eq!(
            for_new_version(Some(&lock), &none, NOW).unwrap(),
            (Some(ret(LockMode::Governance, NOW + 2 * 86_400_000)), false)
        );
        let mode = ObjectLockMode::from("COMPLIANCE".to_string());
        let until = from_ms(NOW + 5_000);
        let hold = ObjectLockLegalHoldStatus::from("ON".to_string());
        let asked = LockHeaders {
            mode: Some(&mode),
            until: Some(&until),
            hold: Some(&hold),
        };
        assert_eq!(
            for_new_version(Some(&lock), &asked, NOW).unwrap(),
            (Some(ret(LockMode::Compliance, NOW + 5_000)), true)
        );
        // Without Object Lock on the bucket, asking is an error.
        assert!(for_new_version(None, &asked, NOW).is_err());
        // Both or neither; in the future.
        let half = LockHeaders {
            mode: Some(&mode),
            until: None,
            hold: None,
        };
        assert!(for_new_version(Some(&lock), &half, NOW).is_err());
        let past = from_ms(NOW - 1);
        let old = LockHeaders {
            mode: Some(&mode),
            until: Some(&past),
            hold: None,
        };
        assert!(for_new_version(Some(&lock), &old, NOW).is_err());
        let bad_mode = ObjectLockMode::from("FOREVER".to_string());
        let bad = LockHeaders {
            mode: Some(&bad_mode),
            until: Some(&until),
            hold: None,
        };
        assert!(for_new_version(Some(&lock), &bad, NOW).is_err());
        assert_eq!(to_ms(&from_ms(NOW + 123)), NOW + 123);
    }

    #[test]
    fn retention_may_only_grow_unless_governance_is_bypassed() {
        let c = ret(LockMode::Compliance, NOW + 1_000);
        let g = ret(LockMode::Governance, NOW + 1_000);
        let ok = |old, new, bypass| retention_change(old, new, bypass, NOW).is_ok();
        assert!(ok(None, Some(c), false));
        assert!(ok(Some(c), Some(ret(LockMode::Compliance, NOW + 2_000)), false));
        assert!(!ok(Some(c), Some(ret(LockMode::Compliance, NOW + 500)), false));
        assert!(
            !ok(Some(c), None, true),
            "COMPLIANCE cannot be removed, even with the bypass"
        );
        assert!(!ok(Some(c), Some(ret(LockMode::Governance, NOW + 5_000)), true));
        assert!(!ok(Some(g), None, false));
        assert!(ok(Some(g), None, true));
        assert!(ok(Some(g), Some(ret(LockMode::Governance, NOW + 5_000)), false));
        assert!(!ok(Some(g), Some(ret(LockMode::Compliance, NOW + 5_000)), false));
        assert!(ok(Some(g), Some(ret(LockMode::Compliance, NOW + 5_000)), true));
        // A retention that has ended protects nothing.
        assert!(ok(Some(ret(LockMode::Compliance, NOW - 1)), None, false));
    }
}
