//! Crash safety of the bucket store: a writer keeps uploading, overwriting and deleting
//! while the store is killed with SIGKILL over and over. Afterwards every listed object reads
//! back byte-identical to a version a client sent, and nothing half-written is listed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;

const CONFIG: &str = STORE_CONFIG;

/// Deterministic pseudo-random numbers (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..len).map(|_| r.next() as u8).collect()
}

fn client(port: u16) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_credential_types::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "t",
        ))
        .force_path_style(true)
        // A request cut by the crash must fail, not be silently re-sent to the next process.
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_writes_never_leaves_a_partial_object() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), SECRET_KEY).unwrap();
    let ports = Ports::new();
    std::fs::write(dir.path().join("homefront.yaml"), ports.fill(CONFIG, dir.path())).unwrap();
    let args: Vec<String> = ["origin", "-c", "homefront.yaml"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut hf = Homefront::spawn_args(dir, &args, ports);
    hf.wait_port(hf.ports.origin);

    // Each key's history in order: (Some(seed) for a PUT or None for a DELETE, acknowledged?).
    let mut history: HashMap<String, Vec<(Option<u64>, bool)>> = HashMap::new();
    let mut rng = Rng(0x5eed_cafe);
    let mut kills = 0;
    // Kill until enough writes were both cut off and acknowledged (a loaded machine gets
    // fewer done between two kills), at least twelve times; the deadline is a safety net.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let counts = |history: &HashMap<String, Vec<(Option<u64>, bool)>>| {
        let ops: Vec<_> = history.values().flatten().collect();
        let cut = ops.iter().filter(|(_, ok)| !ok).count();
        (cut, ops.len() - cut)
    };
    for round in 0u64.. {
        let (cut, acked) = counts(&history);
        if kills >= 12 && cut >= 6 && acked >= 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after {kills} kills, {cut} writes cut off and {acked} acknowledged"
        );
        let s3 = client(hf.ports.origin);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writes = tokio::spawn({
            let s3 = s3.clone();
            let stop = stop.clone();
            let mut r = Rng(rng.next());
            async move {
                let mut log = Vec::new();
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("k{}", r.next() % 8);
                    if r.next().is_multiple_of(5) {
                        let res = s3.delete_object().bucket("site").key(&key).send().await;
                        log.push((key, None, res.is_ok()));
                    } else {
                        // Up to 1 MiB, so that kills land mid-body too.
                        let seed = round << 32 | i;
                        let len = (r.next() % (1 << 20)) as usize;
                        let res = s3
                            .put_object()
                            .bucket("site")
                            .key(&key)
                            .body(ByteStream::from(body(seed, len)))
                            .send()
                            .await;
                        log.push((key, Some((seed, len)), res.is_ok()));
                    }
                    if log.last().is_some_and(|l| !l.2) {
                        break;
                    }
                }
                log
            }
        });
        tokio::time::sleep(Duration::from_millis(150 + rng.next() % 450)).await;
        hf.crash();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        kills += 1;
        let log = tokio::time::timeout(Duration::from_secs(60), writes)
            .await
            .expect("writer stops")
            .unwrap();
        hf.restart(&args);
        for (key, version, ok) in log {
            history
                .entry(key)
                .or_default()
                .push((version.map(|(seed, _)| seed), ok));
        }
        hf.wait_port(hf.ports.origin);
    }
    assert!(kills >= 12);
    let (cut, acked) = counts(&history);
    eprintln!("{kills} kills, {acked} acknowledged writes, {cut} cut off by a kill");
    assert!(
        cut >= 6 && acked >= 20,
        "the kills must land during writes ({cut} cut, {acked} acknowledged)"
    );

    // The states a key may be in: its last acknowledged write, or any write attempted after
    // it that a kill cut off (it may have committed without being acknowledged).
    let allowed = |key: &str| -> HashSet<Option<u64>> {
        let h = &history[key];
        let last_ok = h.iter().rposition(|(_, ok)| *ok);
        let mut set: HashSet<Option<u64>> = match last_ok {
            Some(i) => [h[i].0].into(),
            None => [None].into(),
        };
        set.extend(h[last_ok.map_or(0, |i| i + 1)..].iter().map(|(v, _)| *v));
        set
    };

    // After the last restart: what is listed is whole and is something a client sent; what
    // was acknowledged and never superseded by a later attempt is there.
    let s3 = client(hf.ports.origin);
    let listed = s3.list_objects_v2().bucket("site").send().await.unwrap();
    let mut seen = HashSet::new();
    for obj in listed.contents() {
        let key = obj.key().unwrap().to_string();
        assert!(history.contains_key(&key), "{key} was never written");
        let got = s3.get_object().bucket("site").key(&key).send().await.unwrap();
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(
            obj.size(),
            Some(bytes.len() as i64),
            "{key}: listed size differs from content"
        );
        let matched = allowed(&key)
            .into_iter()
            .flatten()
            .any(|seed| body(seed, bytes.len()) == bytes.as_ref());
        assert!(
            matched,
            "{key}: {} bytes that are not a version this key may hold",
            bytes.len()
        );
        seen.insert(key);
    }
    for key in history.keys() {
        if !seen.contains(key) {
            assert!(allowed(key).contains(&None), "{key} was acknowledged and is gone");
        }
    }
    // No leftovers of interrupted writes remain after a restart.
    let tmp = hf.dir.path().join("data/buckets/site/tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
}

/// Object Lock survives crashes: versions written with retention or a legal hold, and
/// retention lengthened, while the store is killed with SIGKILL; afterwards every
/// acknowledged version is there, still locked at least as long as acknowledged, and its
/// deletion is refused.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_never_loses_object_lock_retention() {
    use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), SECRET_KEY).unwrap();
    let ports = Ports::new();
    std::fs::write(dir.path().join("homefront.yaml"), ports.fill(CONFIG, dir.path())).unwrap();
    let args: Vec<String> = ["origin", "-c", "homefront.yaml"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut hf = Homefront::spawn_args(dir, &args, ports);
    hf.wait_port(hf.ports.origin);
    client(hf.ports.origin)
        .create_bucket()
        .bucket("vault")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Acknowledged: (key, version id) → the retain-until it was acknowledged with (seconds;
    // 0 for a legal hold).
    let mut acked: HashMap<(String, String), i64> = HashMap::new();
    let mut rng = Rng(0x10c4_0001);
    for round in 0..6u64 {
        let s3 = client(hf.ports.origin);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writes = tokio::spawn({
            let s3 = s3.clone();
            let stop = stop.clone();
            let mut r = Rng(rng.next());
            async move {
                let mut log = Vec::new();
                let mut mine: Vec<(String, String, i64)> = Vec::new();
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("backup-{}", r.next() % 4);
                    let pick = r.next() % 3;
                    if pick == 0 && !mine.is_empty() {
                        // Lengthen an acknowledged version's retention.
                        let (k, v, until) = mine[(r.next() as usize) % mine.len()].clone();
                        if until == 0 {
                            continue;
                        }
                        let longer = until + 60;
                        let res = s3
                            .put_object_retention()
                            .bucket("vault")
                            .key(&k)
                            .version_id(&v)
                            .retention(
                                ObjectLockRetention::builder()
                                    .mode(ObjectLockRetentionMode::Compliance)
                                    .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(longer))
                                    .build(),
                            )
                            .send()
                            .await;
                        if res.is_err() {
                            break;
                        }
                        log.push((k, v, longer));
                        continue;
                    }
                    let len = (r.next() % (512 << 10)) as usize;
                    let put = s3
                        .put_object()
                        .bucket("vault")
                        .key(&key)
                        .body(ByteStream::from(body(round << 32 | i, len)));
                    let (put, until) = if pick == 1 {
                        (
                            put.object_lock_legal_hold_status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On),
                            0,
                        )
                    } else {
                        let until = now + 3600 + (r.next() % 600) as i64;
                        (
                            put.object_lock_mode(ObjectLockMode::Compliance)
                                .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(until)),
                            until,
                        )
                    };
                    match put.send().await {
                        Ok(out) => {
                            let v = out.version_id().unwrap().to_string();
                            mine.push((key.clone(), v.clone(), until));
                            log.push((key, v, until));
                        }
                        Err(_) => break,
                    }
                }
                log
            }
        });
        tokio::time::sleep(Duration::from_millis(200 + rng.next() % 400)).await;
        hf.crash();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let log = tokio::time::timeout(Duration::from_secs(60), writes)
            .await
            .expect("writer stops")
            .unwrap();
        for (k, v, until) in log {
            let e = acked.entry((k, v)).or_insert(until);
            *e = (*e).max(until);
        }
        hf.restart(&args);
        hf.wait_port(hf.ports.origin);
    }
    assert!(acked.len() >= 10, "only {} locked versions acknowledged", acked.len());
    let s3 = client(hf.ports.origin);
    for ((key, version), until) in &acked {
        let head = s3
            .head_object()
            .bucket("vault")
            .key(key)
            .version_id(version)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key} {version} was acknowledged and is gone: {e:?}"));
        if *until == 0 {
            assert_eq!(
                head.object_lock_legal_hold_status().map(|s| s.as_str()),
                Some("ON"),
                "{key} {version}"
            );
        } else {
            let kept = head.object_lock_retain_until_date().map(|d| d.secs()).unwrap_or(0);
            assert!(
                kept >= *until,
                "{key} {version}: retained until {kept}, acknowledged {until}"
            );
        }
        let del = s3
            .delete_object()
            .bucket("vault")
            .key(key)
            .version_id(version)
            .bypass_governance_retention(true)
            .send()
            .await;
        assert!(del.is_err(), "{key} {version}: a locked version was deleted");
    }
}
