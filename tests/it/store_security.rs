//! The bucket store against an attacker: raw HTTP requests, signed by hand where a real
//! client would refuse to build them, to the real binary.

use std::time::{Duration, SystemTime};

use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use homefront::policy::sigv4;

const CONFIG: &str = STORE_CONFIG;

/// One request on its own connection: `(status, whole answer)`.
fn send(port: u16, request: &str) -> (u16, String) {
    let resp = raw_http(port, request);
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {resp:?}"));
    (status, resp)
}

/// A GET without credentials of its own (a presigned target carries them in its query).
fn anon_get(hf: &Homefront, target: &str) -> (u16, String) {
    send(
        hf.ports.origin,
        &format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            hf.ports.origin
        ),
    )
}

/// A request signed with SigV4 in the Authorization header (as the SDKs do), `extra` signed
/// headers included; `unsigned` headers are added after signing. `query` is sent as given.
#[allow(clippy::too_many_arguments)]
fn signed_request(
    hf: &Homefront,
    method: &str,
    path: &str,
    query: Option<&str>,
    extra: &[(&str, &str)],
    unsigned: &[(&str, &str)],
    body: &[u8],
    payload_hash: &str,
    access_key: &str,
    now: SystemTime,
) -> String {
    let host = format!("127.0.0.1:{}", hf.ports.origin);
    let sig = sigv4::sign(
        &sigv4::SignInput {
            method,
            path,
            query,
            host: &host,
            extra_headers: extra,
            payload_hash,
            region: "us-east-1",
            service: "s3",
        },
        access_key,
        SECRET_KEY,
        now,
    );
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {}\r\nx-amz-content-sha256: {payload_hash}\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        sig.amz_date,
        sig.authorization,
        body.len()
    );
    for (n, v) in extra.iter().chain(unsigned) {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(std::str::from_utf8(body).unwrap());
    req
}

/// A presigned URL's target (`/bucket/key?X-Amz-...`) for `method`, valid `expires` seconds.
fn presigned_target(hf: &Homefront, method: &str, path: &str, expires: u64) -> String {
    let host = format!("127.0.0.1:{}", hf.ports.origin);
    let query = sigv4::presign_query(
        &sigv4::SignInput {
            method,
            path,
            query: None,
            host: &host,
            extra_headers: &[],
            payload_hash: sigv4::UNSIGNED_PAYLOAD,
            region: "us-east-1",
            service: "s3",
        },
        ACCESS_KEY,
        SECRET_KEY,
        SystemTime::now(),
        expires,
    );
    format!("{path}?{query}")
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn code(resp: &str) -> &str {
    resp.split("<Code>")
        .nth(1)
        .and_then(|c| c.split("</Code>").next())
        .unwrap_or("")
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: &'static str, public: bool) -> Option<String> {
    let mut p = s3
        .put_object()
        .bucket("site")
        .key(key)
        .body(ByteStream::from_static(body.as_bytes()));
    if public {
        p = p.acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead);
    }
    p.send().await.unwrap().version_id().map(str::to_string)
}

/// Issue 22, item 3: the public-read check must read `versionId` as s3s does, so an encoded
/// parameter name cannot reach a private older version behind a public current one.
#[tokio::test(flavor = "multi_thread")]
async fn an_encoded_version_id_does_not_open_a_private_version() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
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
    let old = put(&s3, "doc.txt", "private draft", false).await.unwrap();
    let new = put(&s3, "doc.txt", "public text", true).await.unwrap();

    let (status, resp) = anon_get(&hf, "/site/doc.txt");
    assert_eq!(status, 200, "{resp}");
    assert!(resp.ends_with("public text"), "{resp}");
    let (status, resp) = anon_get(&hf, &format!("/site/doc.txt?versionId={new}"));
    assert_eq!(status, 200, "{resp}");
    for target in [
        format!("/site/doc.txt?versionId={old}"),
        format!("/site/doc.txt?version%49d={old}"),
        format!("/site/doc.txt?%76ersionId={old}"),
        format!("/site/doc.txt?versionId%3D{old}&version%49d={old}"),
        format!("/site/doc.txt?x=1&version%49d={old}"),
    ] {
        let (status, resp) = anon_get(&hf, &target);
        assert_eq!(status, 403, "{target}: {resp}");
        assert!(!resp.contains("private draft"), "{target}: {resp}");
        let head = send(
            hf.ports.origin,
            &format!("HEAD {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(head.0, 403, "HEAD {target}: {}", head.1);
    }
    // Two versionIds (one of them the public one) are refused, whichever comes first.
    for target in [
        format!("/site/doc.txt?versionId={new}&version%49d={old}"),
        format!("/site/doc.txt?version%49d={old}&versionId={new}"),
    ] {
        let (status, resp) = anon_get(&hf, &target);
        assert_eq!(status, 400, "{target}: {resp}");
        assert!(!resp.contains("private draft"), "{target}: {resp}");
    }
}

/// Issue 22, item 3: the 7-day presign cap reads `X-Amz-Expires` as s3s does; an encoded or
/// repeated name is not a way around it.
#[tokio::test(flavor = "multi_thread")]
async fn presign_expiry_cap_reads_the_decoded_query() {
    let hf = Homefront::start(CONFIG);
    put(&hf.s3(), "secret.txt", "secret", false).await;
    let ok = presigned_target(&hf, "GET", "/site/secret.txt", 300);
    let (status, resp) = anon_get(&hf, &ok);
    assert_eq!(status, 200, "{resp}");

    // Signed for 999999 s: the signature is good (s3s signs the decoded query), the cap holds.
    let long = presigned_target(&hf, "GET", "/site/secret.txt", 999_999);
    let (status, resp) = anon_get(&hf, &long);
    assert_eq!(status, 400, "{resp}");
    for target in [
        long.replace("X-Amz-Expires=", "X-Amz-%45xpires="),
        long.replace("X-Amz-Expires=", "%58-Amz-Expires="),
        long.replace("X-Amz-Expires=", "X-Amz-Expires%3D"),
    ] {
        let (status, resp) = anon_get(&hf, &target);
        assert_eq!(status, 400, "{target}: {resp}");
        assert!(!resp.contains("\r\n\r\nsecret"), "{resp}");
    }
    // A second X-Amz-Expires, encoded or not, is refused.
    for extra in ["&X-Amz-Expires=300", "&X-Amz-%45xpires=300", "&X-Amz-Expires=999999"] {
        let target = format!("{ok}{extra}");
        let (status, resp) = anon_get(&hf, &target);
        assert_eq!(status, 400, "{target}: {resp}");
        assert_eq!(code(&resp), "AuthorizationQueryParametersError", "{resp}");
    }
}

/// Issue 22, item 7: an `x-amz-*` header added to a signed request after signing is refused
/// as S3 refuses it, so `x-amz-acl: public-read` cannot make an upload public.
#[tokio::test(flavor = "multi_thread")]
async fn unsigned_amz_headers_are_refused() {
    let hf = Homefront::start(CONFIG);
    let body = b"my data";
    let hash = sha256_hex(body);
    let req = signed_request(
        &hf,
        "PUT",
        "/site/mine.txt",
        None,
        &[],
        &[("x-amz-acl", "public-read")],
        body,
        &hash,
        ACCESS_KEY,
        SystemTime::now(),
    );
    let (status, resp) = send(hf.ports.origin, &req);
    assert_eq!(status, 403, "{resp}");
    assert_eq!(code(&resp), "AccessDenied", "{resp}");
    assert!(
        resp.contains("<HeadersNotSigned>x-amz-acl</HeadersNotSigned>"),
        "{resp}"
    );
    let (status, _) = anon_get(&hf, "/site/mine.txt");
    assert_eq!(status, 403);
    assert!(hf
        .s3()
        .head_object()
        .bucket("site")
        .key("mine.txt")
        .send()
        .await
        .is_err());

    // The same header signed is obeyed.
    let req = signed_request(
        &hf,
        "PUT",
        "/site/mine.txt",
        None,
        &[("x-amz-acl", "public-read")],
        &[],
        body,
        &hash,
        ACCESS_KEY,
        SystemTime::now(),
    );
    let (status, resp) = send(hf.ports.origin, &req);
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = anon_get(&hf, "/site/mine.txt");
    assert_eq!(status, 200, "{resp}");

    // A presigned PUT with an x-amz-* header it did not sign.
    let target = presigned_target(&hf, "PUT", "/site/up.txt", 300);
    let (status, resp) = send(
        hf.ports.origin,
        &format!(
            "PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-amz-acl: public-read\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
            hf.ports.origin
        ),
    );
    assert_eq!(status, 403, "{resp}");
    assert!(
        resp.contains("<HeadersNotSigned>x-amz-acl</HeadersNotSigned>"),
        "{resp}"
    );
    // x-amz-content-sha256 may go unsigned (S3 allows it); without extra headers the URL works.
    let (status, resp) = send(
        hf.ports.origin,
        &format!(
            "PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
            hf.ports.origin
        ),
    );
    assert_eq!(status, 200, "{resp}");
    let (status, _) = anon_get(&hf, "/site/up.txt");
    assert_eq!(status, 403, "a presigned upload stays private");
}

fn hmac_sha1_base64(key: &str, data: &str) -> String {
    use openssl::base64::encode_block;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;
    let key = PKey::hmac(key.as_bytes()).unwrap();
    let mut s = Signer::new(MessageDigest::sha1(), &key).unwrap();
    s.update(data.as_bytes()).unwrap();
    encode_block(&s.sign_to_vec().unwrap())
}

/// The README says SigV4 only; s3s would also check SigV2 (header and query), with no
/// clock check on the header form, so a captured request could be replayed forever.
#[tokio::test(flavor = "multi_thread")]
async fn sigv2_is_refused() {
    let hf = Homefront::start(CONFIG);
    put(&hf.s3(), "secret.txt", "secret", false).await;

    let date = httpdate::fmt_http_date(SystemTime::now());
    let sig = hmac_sha1_base64(SECRET_KEY, &format!("GET\n\n\n{date}\n/site/secret.txt"));
    let (status, resp) = send(
        hf.ports.origin,
        &format!(
            "GET /site/secret.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nDate: {date}\r\nAuthorization: AWS {ACCESS_KEY}:{sig}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 400, "{resp}");
    assert_eq!(code(&resp), "InvalidRequest", "{resp}");
    assert!(resp.contains("Please use AWS4-HMAC-SHA256"), "{resp}");
    assert!(!resp.contains("\r\n\r\nsecret"), "{resp}");

    let expires = (SystemTime::now() + Duration::from_secs(300))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sig = hmac_sha1_base64(SECRET_KEY, &format!("GET\n\n\n{expires}\n/site/secret.txt"));
    let enc: String = sig
        .bytes()
        .map(|b| match b {
            b'+' => "%2B".to_string(),
            b'/' => "%2F".to_string(),
            b'=' => "%3D".to_string(),
            b => (b as char).to_string(),
        })
        .collect();
    for query in [
        format!("AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={enc}"),
        format!("AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&%53ignature={enc}"),
    ] {
        let (status, resp) = anon_get(&hf, &format!("/site/secret.txt?{query}"));
        assert_eq!(status, 400, "{query}: {resp}");
        assert_eq!(code(&resp), "InvalidRequest", "{resp}");
        assert!(!resp.contains("\r\n\r\nsecret"), "{resp}");
    }
}

/// The bucket store's answers to requests S3 refuses (issue 22's list).
#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_answers_s3_gives() {
    let hf = Homefront::start(CONFIG);
    let s3 = hf.s3();
    put(&s3, "pub.txt", "open", true).await;
    s3.put_object_tagging()
        .bucket("site")
        .key("pub.txt")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(aws_sdk_s3::types::Tag::builder().key("k").value("v").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let empty = sha256_hex(b"");

    // An access key id the store does not know.
    let req = signed_request(
        &hf,
        "GET",
        "/site/pub.txt",
        None,
        &[],
        &[],
        b"",
        &empty,
        "nobody",
        SystemTime::now(),
    );
    let (status, resp) = send(hf.ports.origin, &req);
    assert_eq!((status, code(&resp)), (403, "InvalidAccessKeyId"), "{resp}");

    // A presigned GET replayed as PUT or DELETE.
    let get = presigned_target(&hf, "GET", "/site/pub.txt", 300);
    for method in ["PUT", "DELETE"] {
        let (status, resp) = send(
            hf.ports.origin,
            &format!(
                "{method} {get} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
                hf.ports.origin
            ),
        );
        assert_eq!(
            (status, code(&resp)),
            (403, "SignatureDoesNotMatch"),
            "{method}: {resp}"
        );
    }
    let (status, resp) = anon_get(&hf, "/site/pub.txt");
    assert!(status == 200 && resp.ends_with("open"), "{resp}");

    // A parameter added to a presigned URL.
    let private = {
        put(&s3, "priv.txt", "closed", false).await;
        presigned_target(&hf, "GET", "/site/priv.txt", 300)
    };
    let (status, resp) = send(
        hf.ports.origin,
        &format!(
            "GET {private} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            hf.ports.origin
        ),
    );
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = send(
        hf.ports.origin,
        &format!(
            "GET {private}&response-content-type=text%2Fhtml HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            hf.ports.origin
        ),
    );
    assert_eq!((status, code(&resp)), (403, "SignatureDoesNotMatch"), "{resp}");

    // A body that is not the one whose hash was signed.
    let req = signed_request(
        &hf,
        "PUT",
        "/site/hashed.txt",
        None,
        &[],
        &[],
        b"evil",
        &sha256_hex(b"good"),
        ACCESS_KEY,
        SystemTime::now(),
    );
    let (status, resp) = send(hf.ports.origin, &req);
    assert_eq!((status, code(&resp)), (400, "XAmzContentSHA256Mismatch"), "{resp}");
    assert!(s3.head_object().bucket("site").key("hashed.txt").send().await.is_err());

    // A header-signed request from 20 minutes ago (S3 allows 15).
    let req = signed_request(
        &hf,
        "GET",
        "/site/priv.txt",
        None,
        &[],
        &[],
        b"",
        &empty,
        ACCESS_KEY,
        SystemTime::now() - Duration::from_secs(20 * 60),
    );
    let (status, resp) = send(hf.ports.origin, &req);
    assert_eq!((status, code(&resp)), (403, "RequestTimeTooSkewed"), "{resp}");

    // A public object's ACL and tags are not public.
    for target in ["/site/pub.txt?acl", "/site/pub.txt?tagging", "/site/pub.txt?%61cl"] {
        let (status, resp) = anon_get(&hf, target);
        assert_eq!((status, code(&resp)), (403, "AccessDenied"), "{target}: {resp}");
    }
    let log = hf.stderr();
    assert!(
        !log.lines().any(|l| l.contains(" ERROR ") && l.contains("S3Error")),
        "client errors are not logged at ERROR:\n{log}"
    );
}

/// Issue 22, item 6: with an object stored, cached by the edge, a multipart upload in
/// progress and logs written, nothing under data_dir is readable by group or others.
#[tokio::test(flavor = "multi_thread")]
async fn data_dir_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    // `signing: never`: the edge's reads are anonymous, so the public object is fetched and
    // cached whatever the edge sends beside the request.
    let config = STORE_CONFIG
        .replace("site: { bucket: site }", "site: { bucket: site, signing: never }")
        .replace(
            "  - domains: [\"*\"]\n",
            "  - domains: [\"*\"]\n    access_log: cloudfront\n",
        )
        .replace("  site: {}", "  site: { access_log: true }");
    let hf = Homefront::start(&config);
    let s3 = hf.s3();
    s3.put_object()
        .bucket("site")
        .key("page.html")
        .cache_control("max-age=600")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"<p>cached</p>"))
        .send()
        .await
        .unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("site")
        .key("big.bin")
        .send()
        .await
        .unwrap();
    s3.upload_part()
        .bucket("site")
        .key("big.bin")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .unwrap();
    let client = hf.client(&["cdn.test"]);
    let r = client
        .get(format!("{}/page.html", hf.http_base("cdn.test")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<p>cached</p>");

    let data = hf.dir.path().join("data");
    // The cache and the logs are written after the answer: wait for them to appear.
    let deadline = std::time::Instant::now() + EVENT_DEADLINE;
    let walk = |root: &std::path::Path| {
        let mut all = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(p) = pending.pop() {
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                pending.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
            }
            all.push((p, meta));
        }
        all
    };
    loop {
        let names: Vec<String> = walk(&data).iter().map(|(p, _)| p.display().to_string()).collect();
        let has = |suffix: &str| names.iter().any(|n| n.ends_with(suffix));
        let cached = names.iter().any(|n| n.contains("/cache/") && n.ends_with(".body"));
        if (cached && has(".log") && names.iter().any(|n| n.contains("/logs/buckets/site/")))
            || std::time::Instant::now() > deadline
        {
            assert!(cached, "the edge cached the page: {names:#?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let entries = walk(&data);
    for (path, meta) in &entries {
        let mode = meta.permissions().mode() & 0o777;
        if meta.file_type().is_symlink() {
            continue;
        }
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
    for part in [
        "/buckets/site/objects/",
        "/buckets/site/uploads/",
        "/cache/",
        "/logs/",
        "/secrets/",
        "/tls/",
    ] {
        assert!(
            entries.iter().any(|(p, _)| p.display().to_string().contains(part)),
            "{part} was written and checked"
        );
    }
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
}

/// Issue 22, item 6: an install from before is made private at start, and the log says so.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_data_dir_is_made_private_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("origin.key"), SECRET_KEY).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("old/notes")).unwrap();
    std::fs::write(data.join("old/notes/a.txt"), b"old").unwrap();
    let set = |p: &std::path::Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    for d in ["", "old", "old/notes"] {
        set(&data.join(d), 0o755);
    }
    set(&data.join("old/notes/a.txt"), 0o644);
    let hf = Homefront::start_in(dir, CONFIG, &[]);
    let mode = |p: &str| std::fs::metadata(data_of(&hf).join(p)).unwrap().permissions().mode() & 0o777;
    fn data_of(hf: &Homefront) -> std::path::PathBuf {
        hf.dir.path().join("data")
    }
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode("old/notes"), 0o700);
    assert_eq!(mode("old/notes/a.txt"), 0o600);
    let log = hf.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains(" INFO ") && l.contains("made 4 entries of data_dir")),
        "{log}"
    );
}
