//! Today's S3 API through the official Rust AWS SDK, with its default settings: additional
//! checksums (validated, stored, returned; per part, composite and full-object), conditional
//! writes, Object Lock, GetObjectAttributes, `partNumber`, bucket tagging, and the smaller
//! answers S3 clients rely on. boto3 and the aws cli run the same flows in `compat`.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};

use crate::common::*;

fn b64(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
}

fn crc32(data: &[u8]) -> String {
    b64(&crc32fast::hash(data).to_be_bytes())
}

fn crc64nvme() -> homefront::origin::checksum::Hasher {
    homefront::origin::checksum::Algorithm::Crc64Nvme.hasher()
}

fn sha256(data: &[u8]) -> String {
    b64(&openssl::sha::sha256(data))
}

fn code<E: std::fmt::Debug>(e: E) -> String {
    let text = format!("{e:?}");
    text.split("code: Some(\"")
        .nth(1)
        .and_then(|c| c.split('"').next())
        .unwrap_or(&text)
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn checksums_are_validated_stored_and_returned() {
    let hf = Homefront::start(STORE_CONFIG);
    let s3 = hf.s3();
    let data = b"checksummed bytes".to_vec();

    // The SDK's default: a CRC32 of every upload, checked by the store and returned.
    let put = s3
        .put_object()
        .bucket("site")
        .key("sum/default.txt")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.checksum_crc32(), Some(crc32(&data).as_str()));
    assert_eq!(put.checksum_type(), Some(&ChecksumType::FullObject));
    // With checksum mode the SDK validates the answer against the header itself.
    let got = s3
        .get_object()
        .bucket("site")
        .key("sum/default.txt")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.checksum_crc32(), Some(crc32(&data).as_str()));
    assert_eq!(got.content_encoding(), None, "aws-chunked is not stored as an encoding");
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), &data[..]);
    // Without it, no checksum is shown.
    let head = s3
        .head_object()
        .bucket("site")
        .key("sum/default.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32(), None);

    // A streamed file body (aws-chunked, the checksum in the trailer) and other algorithms.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &big).unwrap();
    for algorithm in [
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let key = format!("sum/{}.bin", algorithm.as_str());
        let put = s3
            .put_object()
            .bucket("site")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from_path(&path).await.unwrap())
            .send()
            .await
            .unwrap();
        let head = s3
            .head_object()
            .bucket("site")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let (sent, shown) = match algorithm {
            ChecksumAlgorithm::Sha256 => (put.checksum_sha256(), head.checksum_sha256()),
            ChecksumAlgorithm::Crc32C => (put.checksum_crc32_c(), head.checksum_crc32_c()),
            _ => (put.checksum_crc64_nvme(), head.checksum_crc64_nvme()),
        };
        assert!(sent.is_some() && sent == shown, "{algorithm:?}: {sent:?} {shown:?}");
        assert_eq!(head.content_length(), Some(big.len() as i64));
        assert_eq!(head.content_encoding(), None);
    }
    let head = s3
        .head_object()
        .bucket("site")
        .key("sum/SHA256.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_sha256(), Some(sha256(&big).as_str()));

    // A checksum that does not match the body: 400 BadDigest, and nothing is stored.
    let err = s3
        .put_object()
        .bucket("site")
        .key("sum/wrong.txt")
        .checksum_crc32(crc32(b"something else"))
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BadDigest");
    let missing = s3.head_object().bucket("site").key("sum/wrong.txt").send().await;
    assert!(missing.is_err());
    // Two checksums, or a value that is not one: InvalidRequest.
    let err = s3
        .put_object()
        .bucket("site")
        .key("sum/two.txt")
        .checksum_crc32(crc32(&data))
        .checksum_sha256(sha256(&data))
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRequest");

    // Multipart, composite CRC32: each part checked and listed, the object's value `-N`.
    let part_size = 5 << 20;
    let whole: Vec<u8> = (0..(2 * part_size + 1234)).map(|i| (i % 253) as u8).collect();
    let create = s3
        .create_multipart_upload()
        .bucket("site")
        .key("sum/multi.bin")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    assert_eq!(create.checksum_type(), Some(&ChecksumType::Composite));
    let id = create.upload_id().unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in whole.chunks(part_size).enumerate() {
        let n = i as i32 + 1;
        let up = s3
            .upload_part()
            .bucket("site")
            .key("sum/multi.bin")
            .upload_id(id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        assert_eq!(up.checksum_crc32(), Some(crc32(chunk).as_str()));
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(up.e_tag().unwrap())
                .checksum_crc32(up.checksum_crc32().unwrap())
                .build(),
        );
    }
    let listed = s3
        .list_parts()
        .bucket("site")
        .key("sum/multi.bin")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.parts()[1].checksum_crc32(),
        Some(crc32(&whole[part_size..2 * part_size]).as_str())
    );
    let done = s3
        .complete_multipart_upload()
        .bucket("site")
        .key("sum/multi.bin")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts.clone()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut joined = Vec::new();
    for chunk in whole.chunks(part_size) {
        joined.extend_from_slice(&crc32fast::hash(chunk).to_be_bytes());
    }
    let composite = format!("{}-3", b64(&crc32fast::hash(&joined).to_be_bytes()));
    assert_eq!(done.checksum_crc32(), Some(composite.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    // Completing it again answers as the first time did.
    let again = s3
        .complete_multipart_upload()
        .bucket("site")
        .key("sum/multi.bin")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    assert_eq!(again.e_tag(), done.e_tag());

    // GetObjectAttributes and partNumber read the parts.
    let attrs = s3
        .get_object_attributes()
        .bucket("site")
        .key("sum/multi.bin")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!(attrs.object_size(), Some(whole.len() as i64));
    // Here, and only here, S3 shows the ETag unquoted.
    assert_eq!(attrs.e_tag().map(|e| format!("\"{e}\"")).as_deref(), done.e_tag());
    assert_eq!(
        attrs.checksum().and_then(|c| c.checksum_crc32()),
        Some(composite.as_str())
    );
    let object_parts = attrs.object_parts().unwrap();
    assert_eq!(object_parts.total_parts_count(), Some(3));
    assert_eq!(object_parts.parts()[2].size(), Some(1234));
    let part2 = s3
        .get_object()
        .bucket("site")
        .key("sum/multi.bin")
        .part_number(2)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(part2.parts_count(), Some(3));
    assert_eq!(
        part2.checksum_crc32(),
        Some(crc32(&whole[part_size..2 * part_size]).as_str())
    );
    assert_eq!(
        part2.body.collect().await.unwrap().into_bytes().as_ref(),
        &whole[part_size..2 * part_size]
    );
    let err = s3
        .get_object()
        .bucket("site")
        .key("sum/multi.bin")
        .part_number(4)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidPartNumber");

    // A full-object CRC64NVME upload: the value of the whole object.
    let create = s3
        .create_multipart_upload()
        .bucket("site")
        .key("sum/full.bin")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap();
    let id = create.upload_id().unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in whole.chunks(part_size).enumerate() {
        let up = s3
            .upload_part()
            .bucket("site")
            .key("sum/full.bin")
            .upload_id(id)
            .part_number(i as i32 + 1)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(up.e_tag().unwrap())
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket("site")
        .key("sum/full.bin")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));
    let single = s3
        .put_object()
        .bucket("site")
        .key("sum/full-single.bin")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(ByteStream::from(whole.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(done.checksum_crc64_nvme(), single.checksum_crc64_nvme());
    // A part of it shows its own checksum, with the object's type.
    let part1 = s3
        .get_object()
        .bucket("site")
        .key("sum/full.bin")
        .part_number(1)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(part1.checksum_type(), Some(&ChecksumType::FullObject));
    let first = &whole[..part_size];
    let mut h = crc64nvme();
    h.update(first);
    assert_eq!(part1.checksum_crc64_nvme(), Some(b64(&h.finish()).as_str()));
    // The SDK checks a full-object checksum of a whole multipart download.
    let got = s3
        .get_object()
        .bucket("site")
        .key("sum/full.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), whole.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_writes_are_a_lock() {
    let hf = Homefront::start(STORE_CONFIG);
    let s3 = hf.s3();
    let put = |key: &'static str, body: &'static str| {
        s3.put_object()
            .bucket("site")
            .key(key)
            .body(ByteStream::from_static(body.as_bytes()))
    };
    let first = put("lock", "mine").if_none_match("*").send().await.unwrap();
    let err = put("lock", "yours").if_none_match("*").send().await.unwrap_err();
    assert_eq!(code(&err), "PreconditionFailed");
    let err = put("lock", "yours")
        .if_match("\"00000000000000000000000000000000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PreconditionFailed");
    let err = put("absent", "x")
        .if_match(first.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchKey");
    put("lock", "mine, updated")
        .if_match(first.e_tag().unwrap())
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("site").key("lock").send().await.unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"mine, updated"
    );

    // CompleteMultipartUpload takes them too.
    let create = s3
        .create_multipart_upload()
        .bucket("site")
        .key("lock")
        .send()
        .await
        .unwrap();
    let id = create.upload_id().unwrap();
    let up = s3
        .upload_part()
        .bucket("site")
        .key("lock")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"multipart"))
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(up.e_tag().unwrap())
                .build(),
        )
        .build();
    let err = s3
        .complete_multipart_upload()
        .bucket("site")
        .key("lock")
        .upload_id(id)
        .multipart_upload(parts.clone())
        .if_none_match("*")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PreconditionFailed");

    // The race: a conditional PUT whose body is still arriving when another write takes the
    // key loses with 409 ConditionalRequestConflict, and the other write stays.
    let url = s3
        .put_object()
        .bucket("site")
        .key("race")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
    let slow = tokio::spawn(
        reqwest::Client::new()
            .put(url)
            .header("if-none-match", "*")
            .header("content-length", "8")
            .body(body)
            .send(),
    );
    tx.send(Ok(b"slow".to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    put("race", "fast").send().await.unwrap();
    tx.send(Ok(b"body".to_vec())).await.unwrap();
    drop(tx);
    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("ConditionalRequestConflict"));
    let got = s3.get_object().bucket("site").key("race").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"fast");
}

/// A stream of the chunks a channel receives.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread")]
async fn object_lock_protects_versions() {
    let hf = Homefront::start(STORE_CONFIG);
    let s3 = hf.s3();
    s3.create_bucket()
        .bucket("vault")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let versioning = s3.get_bucket_versioning().bucket("vault").send().await.unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let err = s3
        .put_bucket_versioning()
        .bucket("vault")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidBucketState");

    // A default retention: GOVERNANCE for a day.
    s3.put_object_lock_configuration()
        .bucket("vault")
        .object_lock_configuration(
            aws_sdk_s3::types::ObjectLockConfiguration::builder()
                .object_lock_enabled(aws_sdk_s3::types::ObjectLockEnabled::Enabled)
                .rule(
                    aws_sdk_s3::types::ObjectLockRule::builder()
                        .default_retention(
                            aws_sdk_s3::types::DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Governance)
                                .days(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let put = s3
        .put_object()
        .bucket("vault")
        .key("backup.tar")
        .body(ByteStream::from_static(b"snapshot 1"))
        .send()
        .await
        .unwrap();
    let v1 = put.version_id().unwrap().to_string();
    let head = s3.head_object().bucket("vault").key("backup.tar").send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((until - now - 86_400).abs() < 120, "{until} vs {now}");
    // Ransomware's move: delete the version. Refused; with the bypass, GOVERNANCE gives way.
    let err = s3
        .delete_object()
        .bucket("vault")
        .key("backup.tar")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
    // A delete without a version only hides it behind a marker; the version stays readable.
    s3.delete_object()
        .bucket("vault")
        .key("backup.tar")
        .send()
        .await
        .unwrap();
    let old = s3
        .get_object()
        .bucket("vault")
        .key("backup.tar")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(old.body.collect().await.unwrap().into_bytes().as_ref(), b"snapshot 1");
    s3.delete_object()
        .bucket("vault")
        .key("backup.tar")
        .version_id(&v1)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();

    // COMPLIANCE, asked by the upload: nobody may delete or shorten it.
    let in_an_hour = aws_sdk_s3::primitives::DateTime::from_secs(now + 3600);
    let put = s3
        .put_object()
        .bucket("vault")
        .key("ledger")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_an_hour)
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();
    let v = put.version_id().unwrap().to_string();
    let err = s3
        .delete_object()
        .bucket("vault")
        .key("ledger")
        .version_id(&v)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
    let shorter = ObjectLockRetention::builder()
        .mode(ObjectLockRetentionMode::Compliance)
        .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(now + 60))
        .build();
    let err = s3
        .put_object_retention()
        .bucket("vault")
        .key("ledger")
        .version_id(&v)
        .retention(shorter)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");
    let longer = ObjectLockRetention::builder()
        .mode(ObjectLockRetentionMode::Compliance)
        .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(now + 7200))
        .build();
    s3.put_object_retention()
        .bucket("vault")
        .key("ledger")
        .version_id(&v)
        .retention(longer)
        .send()
        .await
        .unwrap();
    let r = s3
        .get_object_retention()
        .bucket("vault")
        .key("ledger")
        .version_id(&v)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.retention().and_then(|r| r.retain_until_date()).map(|d| d.secs()),
        Some(now + 7200)
    );

    // A legal hold holds until it is lifted.
    let put = s3
        .put_object()
        .bucket("vault")
        .key("evidence")
        .body(ByteStream::from_static(b"held"))
        .send()
        .await
        .unwrap();
    let v = put.version_id().unwrap().to_string();
    s3.put_object_legal_hold()
        .bucket("vault")
        .key("evidence")
        .version_id(&v)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let err = s3
        .delete_objects()
        .bucket("vault")
        .bypass_governance_retention(true)
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key("evidence")
                        .version_id(&v)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(err.errors()[0].code(), Some("AccessDenied"));
    s3.put_object_legal_hold()
        .bucket("vault")
        .key("evidence")
        .version_id(&v)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::Off)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("vault")
        .key("evidence")
        .version_id(&v)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();

    // Lock settings on a bucket without Object Lock: refused.
    let err = s3
        .put_object()
        .bucket("site")
        .key("x")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_an_hour)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRequest");
    let err = s3
        .get_object_lock_configuration()
        .bucket("site")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ObjectLockConfigurationNotFoundError");
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_listings_and_the_smaller_answers() {
    let hf = Homefront::start(STORE_CONFIG);
    let s3 = hf.s3();

    // Bucket tagging.
    let err = s3.get_bucket_tagging().bucket("site").send().await.unwrap_err();
    assert_eq!(code(&err), "NoSuchTagSet");
    s3.put_bucket_tagging()
        .bucket("site")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("team")
                        .value("photos")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let tags = s3.get_bucket_tagging().bucket("site").send().await.unwrap();
    assert_eq!(tags.tag_set()[0].value(), "photos");
    s3.delete_bucket_tagging().bucket("site").send().await.unwrap();
    assert!(s3.get_bucket_tagging().bucket("site").send().await.is_err());

    // A 304 carries the ETag and Last-Modified.
    let put = s3
        .put_object()
        .bucket("site")
        .key("page.html")
        .tagging("a=1&b=2")
        .body(ByteStream::from_static(b"<p>hi</p>"))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_string();
    let url = s3
        .get_object()
        .bucket("site")
        .key("page.html")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_string();
    let client = reqwest::Client::new();
    let r = client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.headers().contains_key("last-modified"));
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["x-amz-tagging-count"], "2");
    let head_url = s3
        .head_object()
        .bucket("site")
        .key("page.html")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_string();
    let r = client.head(&head_url).send().await.unwrap();
    assert_eq!(r.headers()["x-amz-tagging-count"], "2", "HEAD says what GET says");

    // max-keys=0 lists nothing and is not truncated; an empty delimiter is no delimiter.
    let page = s3.list_objects_v2().bucket("site").max_keys(0).send().await.unwrap();
    assert_eq!(page.is_truncated(), Some(false));
    assert!(page.contents().is_empty());
    let page = s3.list_objects_v2().bucket("site").delimiter("").send().await.unwrap();
    assert_eq!(page.delimiter(), None);
    let page = s3
        .list_objects_v2()
        .bucket("site")
        .fetch_owner(true)
        .send()
        .await
        .unwrap();
    assert!(page.contents()[0].owner().is_some());

    // ListBuckets pages.
    for name in ["b-one", "b-two", "b-three"] {
        s3.create_bucket().bucket(name).send().await.unwrap();
    }
    let first = s3.list_buckets().max_buckets(2).send().await.unwrap();
    assert_eq!(first.buckets().len(), 2);
    let token = first.continuation_token().unwrap();
    let rest = s3
        .list_buckets()
        .max_buckets(2)
        .continuation_token(token)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = first
        .buckets()
        .iter()
        .chain(rest.buckets())
        .filter_map(|b| b.name())
        .collect();
    assert_eq!(names, ["b-one", "b-three", "b-two", "site"]);
    assert!(rest.continuation_token().is_none());
    let prefixed = s3.list_buckets().prefix("b-t").send().await.unwrap();
    assert_eq!(prefixed.buckets().len(), 2);

    // The expected bucket owner must be this store's account.
    s3.head_bucket()
        .bucket("site")
        .expected_bucket_owner("homefront")
        .send()
        .await
        .unwrap();
    let err = s3
        .get_object()
        .bucket("site")
        .key("page.html")
        .expected_bucket_owner("111122223333")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDenied");

    // Every answer names its request; an error's XML carries the same id.
    let r = client
        .get(url.replace("page.html", "missing.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a presigned URL is for its key");
    let id = r.headers()["x-amz-request-id"].to_str().unwrap().to_string();
    assert!(r
        .text()
        .await
        .unwrap()
        .contains(&format!("<RequestId>{id}</RequestId>")));
    let err = s3
        .get_object()
        .bucket("site")
        .key("missing.html")
        .send()
        .await
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("x-amz-request-id") && text.contains("<RequestId>"),
        "{text}"
    );
    // An anonymous read from a bucket that does not exist: 404, as for anyone.
    let anon = raw_http(
        hf.ports.origin,
        "GET /no-such-bucket/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(
        anon.starts_with("HTTP/1.1 404") && anon.contains("NoSuchBucket"),
        "{anon}"
    );

    // UploadPartCopy: a range that is not one is 400; one past the source, 416.
    let up = s3
        .create_multipart_upload()
        .bucket("site")
        .key("copied")
        .send()
        .await
        .unwrap();
    for (range, expected) in [("bytes=5-1", "InvalidArgument"), ("bytes=0-99", "InvalidRange")] {
        let err = s3
            .upload_part_copy()
            .bucket("site")
            .key("copied")
            .upload_id(up.upload_id().unwrap())
            .part_number(1)
            .copy_source("site/page.html")
            .copy_source_range(range)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), expected, "{range}");
    }

    // ACL grants that amount to a canned ACL work; others say what is supported.
    s3.put_object_acl()
        .bucket("site")
        .key("page.html")
        .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
        .send()
        .await
        .unwrap();
    let acl = s3
        .get_object_acl()
        .bucket("site")
        .key("page.html")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.grants().len(), 2);
    let err = s3
        .put_object_acl()
        .bucket("site")
        .key("page.html")
        .grant_read("id=\"someone-else\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NotImplemented");
    assert!(
        format!("{err:?}").contains("canned ACLs private, public-read"),
        "{err:?}"
    );
    let err = s3
        .create_bucket()
        .bucket("open")
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NotImplemented");
}

/// The checksum in an aws-chunked trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, what the
/// SDKs send for streamed bodies), made by hand so that both answers are certain.
#[tokio::test(flavor = "multi_thread")]
async fn a_checksum_in_the_trailer_is_checked() {
    let hf = Homefront::start(STORE_CONFIG);
    let data = b"a body whose checksum follows it";
    let send = |key: &'static str, trailer_value: String| {
        let port = hf.ports.origin;
        async move {
            let body = format!(
                "{:x}\r\n{}\r\n0\r\nx-amz-checksum-crc32:{trailer_value}\r\n\r\n",
                data.len(),
                String::from_utf8_lossy(data)
            );
            let host = format!("127.0.0.1:{port}");
            let decoded = data.len().to_string();
            let extra = [
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", decoded.as_str()),
                ("x-amz-sdk-checksum-algorithm", "CRC32"),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
            ];
            let path = format!("/site/{key}");
            let sig = homefront::policy::sigv4::sign(
                &homefront::policy::sigv4::SignInput {
                    method: "PUT",
                    path: &path,
                    query: None,
                    host: &host,
                    extra_headers: &extra,
                    payload_hash: "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                    region: "us-east-1",
                    service: "s3",
                },
                ACCESS_KEY,
                SECRET_KEY,
                std::time::SystemTime::now(),
            );
            let mut req = reqwest::Client::new()
                .put(format!("http://{host}{path}"))
                .header("authorization", sig.authorization)
                .header("x-amz-date", sig.amz_date)
                .header("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
            for (k, v) in extra {
                req = req.header(k, v);
            }
            let r = req.body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, text) = send("trailer/good", crc32(data)).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = send("trailer/bad", crc32(b"other")).await;
    assert_eq!(status, 400);
    assert!(text.contains("BadDigest"), "{text}");
    let s3 = hf.s3();
    assert!(s3.head_object().bucket("site").key("trailer/bad").send().await.is_err());
    let head = s3
        .head_object()
        .bucket("site")
        .key("trailer/good")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32(), Some(crc32(data).as_str()));
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.content_encoding(), None);
}
