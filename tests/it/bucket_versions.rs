//! Versioned buckets of the bucket store through the official Rust AWS SDK: versions undo a
//! bad delete, and versioning set in the YAML survives a restart.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;

const CONFIG: &str = STORE_CONFIG;

async fn body_of(s3: &aws_sdk_s3::Client, key: &str, version: Option<&str>) -> Result<String, String> {
    match s3
        .get_object()
        .bucket("site")
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
    {
        Ok(o) => Ok(String::from_utf8(o.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()),
        Err(e) => Err(format!(
            "{:?}",
            e.raw_response().map(|r| (
                r.status().as_u16(),
                r.headers().get("x-amz-delete-marker").map(str::to_string)
            ))
        )),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn versioning_undoes_a_bad_delete() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    let put = |body: &'static str| {
        s3.put_object()
            .bucket("site")
            .key("report.txt")
            .content_type("text/plain")
            .body(ByteStream::from_static(body.as_bytes()))
            .send()
    };
    // Before versioning: no status, no version ids.
    let v = s3.get_bucket_versioning().bucket("site").send().await.unwrap();
    assert_eq!(v.status(), None);
    assert_eq!(put("draft").await.unwrap().version_id(), None);

    s3.put_bucket_versioning()
        .bucket("site")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v = s3.get_bucket_versioning().bucket("site").send().await.unwrap();
    assert_eq!(v.status().map(|s| s.as_str()), Some("Enabled"));
    let v1 = put("first").await.unwrap().version_id().unwrap().to_string();
    let v2 = put("second").await.unwrap().version_id().unwrap().to_string();
    assert_ne!(v1, v2);
    let head = s3.head_object().bucket("site").key("report.txt").send().await.unwrap();
    assert_eq!(head.version_id(), Some(v2.as_str()));
    assert_eq!(body_of(&s3, "report.txt", Some(&v1)).await.unwrap(), "first");
    assert_eq!(body_of(&s3, "report.txt", Some("null")).await.unwrap(), "draft");

    // The bad delete: a delete marker on top, the key reads as gone (404 + marker header).
    let del = s3
        .delete_object()
        .bucket("site")
        .key("report.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().unwrap().to_string();
    assert_eq!(
        body_of(&s3, "report.txt", None).await.unwrap_err(),
        "Some((404, Some(\"true\")))"
    );
    assert_eq!(
        body_of(&s3, "report.txt", Some(&marker)).await.unwrap_err(),
        "Some((405, Some(\"true\")))"
    );
    let err = body_of(&s3, "report.txt", Some("0123456789abcdef01234567"))
        .await
        .unwrap_err();
    assert!(err.contains("404"), "{err}");
    let listed = s3.list_objects_v2().bucket("site").send().await.unwrap();
    assert!(listed.contents().iter().all(|o| o.key() != Some("report.txt")));

    // ListObjectVersions: newest first, the marker latest.
    let versions = s3
        .list_object_versions()
        .bucket("site")
        .prefix("report")
        .send()
        .await
        .unwrap();
    let ids: Vec<(&str, bool)> = versions
        .versions()
        .iter()
        .map(|v| (v.version_id().unwrap(), v.is_latest().unwrap()))
        .collect();
    assert_eq!(ids, [(v2.as_str(), false), (v1.as_str(), false), ("null", false)]);
    let markers: Vec<(&str, bool)> = versions
        .delete_markers()
        .iter()
        .map(|m| (m.version_id().unwrap(), m.is_latest().unwrap()))
        .collect();
    assert_eq!(markers, [(marker.as_str(), true)]);
    // Pages of one entry walk the same list through the key and version-id markers.
    let mut walked = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = s3
            .list_object_versions()
            .bucket("site")
            .prefix("report")
            .max_keys(1)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        walked.extend(page.versions().iter().map(|v| v.version_id().unwrap().to_string()));
        walked.extend(
            page.delete_markers()
                .iter()
                .map(|v| v.version_id().unwrap().to_string()),
        );
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
    assert_eq!(walked, [marker.clone(), v2.clone(), v1.clone(), "null".to_string()]);

    // Undo, the way `aws s3api copy-object` does: copy the old version over the current one.
    let copy = s3
        .copy_object()
        .bucket("site")
        .key("report.txt")
        .copy_source(format!("site/report.txt?versionId={v2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(copy.copy_source_version_id(), Some(v2.as_str()));
    let restored = copy.version_id().unwrap().to_string();
    assert_eq!(body_of(&s3, "report.txt", None).await.unwrap(), "second");
    // ... and the edge serves it.
    let via_edge = hf
        .client(&["cdn.test"])
        .get(format!("{}/report.txt", hf.http_base("cdn.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(via_edge.status(), 200);
    assert_eq!(via_edge.text().await.unwrap(), "second");

    // DELETE ?versionId= removes one version for good; the marker can be removed too.
    let gone = s3
        .delete_object()
        .bucket("site")
        .key("report.txt")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.version_id(), Some(v1.as_str()));
    assert!(body_of(&s3, "report.txt", Some(&v1)).await.is_err());
    let gone = s3
        .delete_object()
        .bucket("site")
        .key("report.txt")
        .version_id(&marker)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.delete_marker(), Some(true));

    // Suspended: new writes are the null version; the history stays.
    s3.put_bucket_versioning()
        .bucket("site")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The write's answer names no version for the null version (as S3's, and s3-tests'); a
    // read of it says `null`.
    assert_eq!(put("final").await.unwrap().version_id(), None);
    let versions = s3
        .list_object_versions()
        .bucket("site")
        .prefix("report")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = versions.versions().iter().map(|v| v.version_id().unwrap()).collect();
    assert_eq!(ids, ["null", restored.as_str(), v2.as_str()]);

    // Batch delete by version.
    let out = s3
        .delete_objects()
        .bucket("site")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key("report.txt")
                        .version_id(&v2)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted()[0].version_id(), Some(v2.as_str()));
    assert!(body_of(&s3, "report.txt", Some(&v2)).await.is_err());
    assert_eq!(body_of(&s3, "report.txt", Some(&restored)).await.unwrap(), "second");
}

#[tokio::test(flavor = "multi_thread")]
async fn versioning_from_yaml_survives_a_restart() {
    let config = CONFIG.replace("  site: {}", "  site: { versioning: enabled }");
    let mut hf = Homefront::start(&config);
    let s3 = hf.s3();
    let put = s3
        .put_object()
        .bucket("site")
        .key("a.txt")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    let v1 = put.version_id().unwrap().to_string();
    s3.put_object()
        .bucket("site")
        .key("a.txt")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap();
    s3.delete_object().bucket("site").key("a.txt").send().await.unwrap();
    hf.crash();
    hf.restart(&["serve".into(), "-c".into(), "homefront.yaml".into()]);
    hf.wait_port(hf.ports.origin);
    let s3 = hf.s3();
    let v = s3.get_bucket_versioning().bucket("site").send().await.unwrap();
    assert_eq!(v.status().map(|s| s.as_str()), Some("Enabled"));
    assert!(body_of(&s3, "a.txt", None).await.is_err());
    assert_eq!(body_of(&s3, "a.txt", Some(&v1)).await.unwrap(), "one");
    let versions = s3.list_object_versions().bucket("site").send().await.unwrap();
    assert_eq!((versions.versions().len(), versions.delete_markers().len()), (2, 1));
}
