//! The bucket store through the official Rust AWS SDK, as users' programs use it. Versioning
//! is in `bucket_versions`.

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;

const CONFIG: &str = STORE_CONFIG;

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_and_objects_with_metadata() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    s3.create_bucket().bucket("media").send().await.unwrap();
    s3.head_bucket().bucket("media").send().await.unwrap();
    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert_eq!(names, ["media", "site"]);
    // Re-creating a bucket you own: 200 in us-east-1 (S3's legacy answer), 409
    // BucketAlreadyOwnedByYou in every other region.
    s3.create_bucket().bucket("media").send().await.unwrap();
    let eu = s3_client_in(hf.ports.origin, "eu-west-1");
    let err = eu.create_bucket().bucket("media").send().await.unwrap_err();
    assert!(format!("{err:?}").contains("BucketAlreadyOwnedByYou"), "{err:?}");

    let body = b"hello, bucket store".to_vec();
    let put = s3
        .put_object()
        .bucket("media")
        .key("docs/hello.txt")
        .content_type("text/plain; charset=utf-8")
        .cache_control("max-age=60")
        .metadata("owner", "alice")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.e_tag(), Some(format!("\"{}\"", md5_hex(&body)).as_str()));

    let head = s3
        .head_object()
        .bucket("media")
        .key("docs/hello.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(body.len() as i64));
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.metadata().and_then(|m| m.get("owner")).map(String::as_str),
        Some("alice")
    );
    assert_eq!(head.e_tag(), Some(format!("\"{}\"", md5_hex(&body)).as_str()));
    assert!(head.last_modified().is_some());

    let get = s3
        .get_object()
        .bucket("media")
        .key("docs/hello.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(get.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(get.body.collect().await.unwrap().into_bytes().as_ref(), &body[..]);

    s3.delete_object()
        .bucket("media")
        .key("docs/hello.txt")
        .send()
        .await
        .unwrap();
    let err = s3
        .get_object()
        .bucket("media")
        .key("docs/hello.txt")
        .send()
        .await
        .unwrap_err();
    let svc = err.into_service_error();
    assert!(svc.is_no_such_key(), "{svc:?}");
    let err = s3.get_object().bucket("nope").key("x").send().await.unwrap_err();
    assert!(format!("{err:?}").contains("NoSuchBucket"), "{err:?}");

    // A non-empty bucket cannot be deleted; an empty one can.
    s3.put_object()
        .bucket("media")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert!(s3.delete_bucket().bucket("media").send().await.is_err());
    s3.delete_object().bucket("media").key("x").send().await.unwrap();
    s3.delete_bucket().bucket("media").send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    s3.put_object()
        .bucket("site")
        .key("digits")
        .body(ByteStream::from_static(b"0123456789"))
        .send()
        .await
        .unwrap();
    let r = s3
        .get_object()
        .bucket("site")
        .key("digits")
        .range("bytes=2-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.content_range(), Some("bytes 2-5/10"));
    assert_eq!(r.content_length(), Some(4));
    assert_eq!(r.body.collect().await.unwrap().into_bytes().as_ref(), b"2345");
    let r = s3
        .get_object()
        .bucket("site")
        .key("digits")
        .range("bytes=-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.body.collect().await.unwrap().into_bytes().as_ref(), b"789");
    let err = s3
        .get_object()
        .bucket("site")
        .key("digits")
        .range("bytes=20-30")
        .send()
        .await
        .unwrap_err();
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(416), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_with_prefix_delimiter_and_pages() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    for key in ["a/1.txt", "a/2.txt", "a/sub/3.txt", "b/4.txt", "c.txt", "a"] {
        s3.put_object()
            .bucket("site")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let out = s3.list_objects_v2().bucket("site").delimiter("/").send().await.unwrap();
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(keys, ["a", "c.txt"]);
    assert_eq!(prefixes, ["a/", "b/"]);

    let out = s3
        .list_objects_v2()
        .bucket("site")
        .prefix("a/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(keys, ["a/1.txt", "a/2.txt"]);
    assert_eq!(prefixes, ["a/sub/"]);

    // Pages of two, followed by continuation tokens, cover every key once, in order.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("site")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        if out.is_truncated() != Some(true) {
            break;
        }
        token = out.next_continuation_token().map(str::to_string);
    }
    assert_eq!(seen, ["a", "a/1.txt", "a/2.txt", "a/sub/3.txt", "b/4.txt", "c.txt"]);

    let out = s3
        .list_objects_v2()
        .bucket("site")
        .start_after("a/2.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(out.contents().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn large_objects_stream_through_intact() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    let data: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s3.put_object()
        .bucket("site")
        .key("big.bin")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("site").key("big.bin").send().await.unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.len(), data.len());
    assert!(bytes.as_ref() == data.as_slice(), "content differs");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_keys_are_refused_and_never_escape_the_bucket() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    for key in ["../../etc/passwd", "a/../../../outside", "./x"] {
        let err = s3
            .put_object()
            .bucket("site")
            .key(key)
            .body(ByteStream::from_static(b"pwned"))
            .send()
            .await
            .expect_err(key);
        let status = err.raw_response().map(|r| r.status().as_u16());
        assert_eq!(status, Some(400), "{key}: {err:?}");
        assert!(format!("{err:?}").contains("InvalidArgument"), "{key}: {err:?}");
    }
    // Nothing was written anywhere under the data dir but inside bucket directories.
    let data = hf.dir.path().join("data");
    assert!(!data.join("etc").exists() && !hf.dir.path().join("outside").exists());
    let out = s3.list_objects_v2().bucket("site").send().await.unwrap();
    assert!(out.contents().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_and_badly_signed_requests_are_refused() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    s3.put_object()
        .bucket("site")
        .key("secret.txt")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap();

    let resp = raw_http(
        hf.ports.origin,
        "GET /site/secret.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("<Code>AccessDenied</Code>"), "{resp}");
    assert!(!resp.contains("\r\n\r\nsecret"));

    let resp = raw_http(
        hf.ports.origin,
        "GET /site?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");

    let wrong = s3_client_as(hf.ports.origin, ACCESS_KEY, "wrong");
    let err = wrong
        .get_object()
        .bucket("site")
        .key("secret.txt")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("SignatureDoesNotMatch"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_upload_with_the_sdk() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    let created = s3
        .create_multipart_upload()
        .bucket("site")
        .key("mp.bin")
        .content_type("video/mp4")
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap().to_string();
    let part1 = vec![7u8; 5 * 1024 * 1024];
    let part2 = b"tail".to_vec();
    let mut done = Vec::new();
    for (n, body) in [(1, part1.clone()), (2, part2.clone())] {
        let r = s3
            .upload_part()
            .bucket("site")
            .key("mp.bin")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    let parts = s3
        .list_parts()
        .bucket("site")
        .key("mp.bin")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 2);
    let uploads = s3.list_multipart_uploads().bucket("site").send().await.unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    let out = s3
        .complete_multipart_upload()
        .bucket("site")
        .key("mp.bin")
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .unwrap();
    assert!(out.e_tag().unwrap().ends_with("-2\""), "{:?}", out.e_tag());
    let got = s3.get_object().bucket("site").key("mp.bin").send().await.unwrap();
    assert_eq!(got.content_type(), Some("video/mp4"));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.len(), part1.len() + part2.len());
    assert!(bytes[..part1.len()] == part1[..] && bytes[part1.len()..] == part2[..]);

    // An aborted upload is gone, and its parts with it.
    let id = s3
        .create_multipart_upload()
        .bucket("site")
        .key("x")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    s3.abort_multipart_upload()
        .bucket("site")
        .key("x")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let err = s3
        .list_parts()
        .bucket("site")
        .key("x")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NoSuchUpload"), "{err:?}");
    assert!(s3
        .list_multipart_uploads()
        .bucket("site")
        .send()
        .await
        .unwrap()
        .uploads()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_object_and_batch_delete() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    s3.put_object()
        .bucket("site")
        .key("v1/app.js")
        .content_type("application/javascript")
        .metadata("build", "42")
        .body(ByteStream::from_static(b"console.log(1)"))
        .send()
        .await
        .unwrap();
    s3.copy_object()
        .bucket("site")
        .key("v2/app.js")
        .copy_source("site/v1/app.js")
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("site").key("v2/app.js").send().await.unwrap();
    assert_eq!(
        head.content_type(),
        Some("application/javascript"),
        "COPY keeps the metadata"
    );
    assert_eq!(
        head.metadata().and_then(|m| m.get("build")).map(String::as_str),
        Some("42")
    );
    // Copying onto itself needs REPLACE.
    assert!(s3
        .copy_object()
        .bucket("site")
        .key("v1/app.js")
        .copy_source("site/v1/app.js")
        .send()
        .await
        .is_err());
    s3.copy_object()
        .bucket("site")
        .key("v1/app.js")
        .copy_source("site/v1/app.js")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_type("text/javascript")
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("site").key("v1/app.js").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/javascript"));

    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let del = Delete::builder()
        .objects(ObjectIdentifier::builder().key("v1/app.js").build().unwrap())
        .objects(ObjectIdentifier::builder().key("v2/app.js").build().unwrap())
        .objects(ObjectIdentifier::builder().key("never-existed").build().unwrap())
        .build()
        .unwrap();
    let out = s3.delete_objects().bucket("site").delete(del).send().await.unwrap();
    assert_eq!(out.deleted().len(), 3);
    assert!(s3
        .list_objects_v2()
        .bucket("site")
        .send()
        .await
        .unwrap()
        .contents()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_gets_and_heads() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    let put = s3
        .put_object()
        .bucket("site")
        .key("c.txt")
        .body(ByteStream::from_static(b"cond"))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_string();
    let err = s3
        .get_object()
        .bucket("site")
        .key("c.txt")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(304));
    let ok = s3
        .get_object()
        .bucket("site")
        .key("c.txt")
        .if_none_match("\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.body.collect().await.unwrap().into_bytes().as_ref(), b"cond");
    let err = s3
        .get_object()
        .bucket("site")
        .key("c.txt")
        .if_match("\"other\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));
    let future = aws_sdk_s3::primitives::DateTime::from_secs(4_102_444_800);
    let err = s3
        .head_object()
        .bucket("site")
        .key("c.txt")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(304));
    let past = aws_sdk_s3::primitives::DateTime::from_secs(1_000_000_000);
    let err = s3
        .head_object()
        .bucket("site")
        .key("c.txt")
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));

    // Through the edge a browser revalidates with If-None-Match and gets an empty 304.
    let resp = raw_http(
        hf.ports.http,
        &format!("GET /c.txt HTTP/1.1\r\nHost: any.test\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"),
    );
    assert!(resp.starts_with("HTTP/1.1 304"), "{resp}");
    assert!(resp.ends_with("\r\n\r\n"), "a 304 has no body: {resp:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn object_tagging() {
    use aws_sdk_s3::types::{Tag, Tagging};
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    s3.put_object()
        .bucket("site")
        .key("t.txt")
        .tagging("team=web&stage=beta%20one")
        .body(ByteStream::from_static(b"t"))
        .send()
        .await
        .unwrap();
    let tags = s3
        .get_object_tagging()
        .bucket("site")
        .key("t.txt")
        .send()
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("stage".to_string(), "beta one".to_string()),
            ("team".to_string(), "web".to_string())
        ]
    );
    let get = s3.get_object().bucket("site").key("t.txt").send().await.unwrap();
    assert_eq!(get.tag_count(), Some(2));

    let set = Tagging::builder()
        .tag_set(Tag::builder().key("only").value("1").build().unwrap())
        .build()
        .unwrap();
    s3.put_object_tagging()
        .bucket("site")
        .key("t.txt")
        .tagging(set)
        .send()
        .await
        .unwrap();
    let tags = s3
        .get_object_tagging()
        .bucket("site")
        .key("t.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tag_set().len(), 1);
    // The content is untouched by tagging.
    let body = s3
        .get_object()
        .bucket("site")
        .key("t.txt")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(body.into_bytes().as_ref(), b"t");

    let too_many = Tagging::builder()
        .set_tag_set(Some(
            (0..11)
                .map(|i| Tag::builder().key(format!("k{i}")).value("v").build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap();
    let err = s3
        .put_object_tagging()
        .bucket("site")
        .key("t.txt")
        .tagging(too_many)
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("InvalidTag"), "{err:?}");
    s3.delete_object_tagging()
        .bucket("site")
        .key("t.txt")
        .send()
        .await
        .unwrap();
    assert!(s3
        .get_object_tagging()
        .bucket("site")
        .key("t.txt")
        .send()
        .await
        .unwrap()
        .tag_set()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn canned_acls_open_reads_and_nothing_else() {
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl};
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    let anon_get = |path: &str| {
        raw_http(
            hf.ports.origin,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
    };
    s3.put_object()
        .bucket("site")
        .key("pub.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"open"))
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("site")
        .key("priv.txt")
        .body(ByteStream::from_static(b"closed"))
        .send()
        .await
        .unwrap();
    let r = anon_get("/site/pub.txt");
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("open"), "{r}");
    let r = anon_get("/site/priv.txt");
    assert!(r.starts_with("HTTP/1.1 403") && !r.contains("closed"), "{r}");
    // Public objects are readable, not listable or writable.
    assert!(anon_get("/site?list-type=2").starts_with("HTTP/1.1 403"));
    let put = raw_http(
        hf.ports.origin,
        "PUT /site/pub.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad",
    );
    assert!(put.starts_with("HTTP/1.1 403"), "{put}");
    let acl = s3.get_object_acl().bucket("site").key("pub.txt").send().await.unwrap();
    assert_eq!(acl.grants().len(), 2);

    // Flip the object back to private; make the whole bucket public instead.
    s3.put_object_acl()
        .bucket("site")
        .key("pub.txt")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert!(anon_get("/site/pub.txt").starts_with("HTTP/1.1 403"));
    s3.put_bucket_acl()
        .bucket("site")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert!(anon_get("/site/priv.txt").starts_with("HTTP/1.1 200"));
    // A copy does not inherit the source's ACL, but the bucket's applies to it.
    s3.put_bucket_acl()
        .bucket("site")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert!(anon_get("/site/priv.txt").starts_with("HTTP/1.1 403"));
    let err = s3
        .put_object()
        .bucket("site")
        .key("x")
        .acl(ObjectCannedAcl::PublicReadWrite)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NotImplemented"), "{err:?}");
    assert!(
        format!("{err:?}").contains("canned ACLs private, public-read"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_access_logs_in_s3_format_for_buckets_that_ask() {
    let config = STORE_CONFIG.replace("  site: {}", "  site: { access_log: true }\n  quiet: {}");
    let hf = Homefront::start(&config);
    let s3 = hf.s3();
    s3.put_object()
        .bucket("site")
        .key("docs/a b.txt")
        .body(b"hello".to_vec().into())
        .send()
        .await
        .unwrap();
    s3.get_object().bucket("site").key("docs/a b.txt").send().await.unwrap();
    assert!(s3.get_object().bucket("site").key("nope").send().await.is_err());
    let anon = raw_http(
        hf.ports.origin,
        "GET /site/docs/a%20b.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nConnection: close\r\n\r\n",
    );
    assert!(anon.starts_with("HTTP/1.1 403"));
    s3.put_object()
        .bucket("quiet")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();

    let dir = hf.dir.path().join("data/logs/buckets/site");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one file for this hour");
    let name = files[0].file_name().to_string_lossy().to_string();
    assert!(
        name.ends_with(".log") && name.len() == "2026-11-23-08.log".len(),
        "{name}"
    );
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("homefront site ["), "{}", lines[0]);
    assert!(
        lines[0].contains(" testkey ")
            && lines[0].contains(" REST.PUT.OBJECT docs/a%20b.txt \"PUT /site/docs/a%20b.txt"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(" 200 - "), "{}", lines[0]);
    assert!(lines[0].contains(" SigV4 - AuthHeader 127.0.0.1:"), "{}", lines[0]);
    assert!(
        lines[1].contains(" REST.GET.OBJECT docs/a%20b.txt ") && lines[1].contains(" 200 - 5 5 "),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(" 404 NoSuchKey "), "{}", lines[2]);
    assert!(
        lines[3].contains(" - ") && lines[3].contains(" 403 AccessDenied "),
        "{}",
        lines[3]
    );
    assert!(
        lines[3].contains("\"curl/8\"") && lines[3].ends_with(" - - - - x -"),
        "{}",
        lines[3]
    );
    assert!(
        !hf.dir.path().join("data/logs/buckets/quiet").exists(),
        "quiet does not log"
    );
}
