//! Presigned URLs for the bucket store (SigV4 query authentication), as `aws s3 presign` and
//! boto3's `generate_presigned_url` make them: a browser can then GET or PUT one object
//! without credentials.

use std::time::{Duration, SystemTime};

use crate::config::model::OriginServer;
use crate::policy::sigv4::{self, SignInput, UNSIGNED_PAYLOAD};

/// What to presign.
pub struct PresignRequest<'a> {
    /// `GET`, `PUT`, `HEAD` or `DELETE`.
    pub method: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    /// Signed when given: the upload must then send exactly this Content-Type.
    pub content_type: Option<&'a str>,
    /// 1 second to 7 days.
    pub expires: Duration,
    /// Base URL clients use to reach the bucket store (default: `http://<origin_server.listen>`).
    pub endpoint: Option<&'a str>,
}

/// `s3://bucket/key` → (bucket, key).
pub fn parse_s3_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("'{url}' is not an s3://bucket/key URL"))?;
    match rest.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b, k)),
        _ => Err(format!("'{url}' is not an s3://bucket/key URL")),
    }
}

/// The presigned URL, signed with the store's first credential.
pub fn presign(server: &OriginServer, req: &PresignRequest<'_>, now: SystemTime) -> Result<String, String> {
    let secs = req.expires.as_secs();
    if !(1..=604_800).contains(&secs) {
        return Err(format!(
            "expiry must be from 1 second to 7 days (604800 s), not {secs} s"
        ));
    }
    if !matches!(req.method, "GET" | "PUT" | "HEAD" | "DELETE") {
        return Err(format!(
            "method {} cannot be presigned here (GET, PUT, HEAD, DELETE)",
            req.method
        ));
    }
    crate::origin::store::check_key(req.key).map_err(|e| e.0.to_string())?;
    let cred = server.credentials.first().ok_or("origin_server has no credentials")?;
    if cred.secret_access_key.is_empty() {
        return Err("the bucket-store secret does not exist yet: start `homefront serve` once to generate it".into());
    }
    let endpoint = endpoint_of(server, req.endpoint);
    let host = endpoint.split_once("://").map(|(_, h)| h).unwrap_or(&endpoint);
    let host = host.split('/').next().unwrap_or(host);
    let path = format!("/{}/{}", req.bucket, sigv4::encode_key(req.key));
    let content_type = req.content_type.map(|ct| [("content-type", ct)]);
    let input = SignInput {
        method: req.method,
        path: &path,
        query: None,
        host,
        extra_headers: content_type.as_ref().map(|h| &h[..]).unwrap_or(&[]),
        payload_hash: UNSIGNED_PAYLOAD,
        region: "us-east-1",
        service: "s3",
    };
    let query = sigv4::presign_query(&input, &cred.access_key_id, &cred.secret_access_key, now, secs);
    Ok(format!("{endpoint}{path}?{query}"))
}

/// What a browser form upload (POST Object) may send, as boto3's `generate_presigned_post`
/// and the JS SDK's `createPresignedPost` describe it.
#[derive(Clone, Copy)]
pub struct PostRequest<'a> {
    pub bucket: &'a str,
    /// The key; one ending in `${filename}` allows any key with the part before it as prefix
    /// (the store then puts the uploaded file's name there).
    pub key: &'a str,
    /// The Content-Type the form must send, when given.
    pub content_type: Option<&'a str>,
    /// The largest file accepted (bytes).
    pub max_size: Option<u64>,
    /// 200, 201 (an XML answer) or 204 (the default).
    pub success_action_status: Option<u16>,
    /// Where the browser goes after the upload (303 with bucket, key and ETag).
    pub success_action_redirect: Option<&'a str>,
    /// 1 second to 7 days.
    pub expires: Duration,
    pub endpoint: Option<&'a str>,
}

/// A form upload: where to POST, and the form fields to send before the file (`file`, last).
#[derive(Debug)]
pub struct PresignedPost {
    pub url: String,
    pub fields: Vec<(String, String)>,
}

/// An ISO 8601 time with milliseconds, as POST policies write their expiration.
fn iso8601(t: SystemTime) -> String {
    let d = sigv4::amz_date(t);
    format!(
        "{}-{}-{}T{}:{}:{}.000Z",
        &d[..4],
        &d[4..6],
        &d[6..8],
        &d[9..11],
        &d[11..13],
        &d[13..15]
    )
}

/// The endpoint clients use, without a trailing `/`.
fn endpoint_of(server: &OriginServer, endpoint: Option<&str>) -> String {
    match endpoint {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => {
            let mut addr = server.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    }
}

/// A signed POST policy and its form fields (SigV4), signed with the store's first credential.
pub fn presign_post(server: &OriginServer, req: &PostRequest<'_>, now: SystemTime) -> Result<PresignedPost, String> {
    let secs = req.expires.as_secs();
    if !(1..=604_800).contains(&secs) {
        return Err(format!(
            "expiry must be from 1 second to 7 days (604800 s), not {secs} s"
        ));
    }
    let prefix = req.key.strip_suffix("${filename}");
    let checked = match prefix {
        Some(p) => format!("{p}x"),
        None => req.key.to_string(),
    };
    crate::origin::store::check_key(&checked).map_err(|e| e.0.to_string())?;
    if let Some(s) = req.success_action_status {
        if ![200, 201, 204].contains(&s) {
            return Err(format!("success_action_status must be 200, 201 or 204, not {s}"));
        }
    }
    let cred = server.credentials.first().ok_or("origin_server has no credentials")?;
    if cred.secret_access_key.is_empty() {
        return Err("the bucket-store secret does not exist yet: start `homefront serve` once to generate it".into());
    }
    let amz_date = sigv4::amz_date(now);
    let region = "us-east-1";
    let credential = format!("{}/{}/{region}/s3/aws4_request", cred.access_key_id, &amz_date[..8]);
    let mut fields: Vec<(String, String)> = vec![("key".into(), req.key.into())];
    let mut conditions = vec![serde_json::json!({ "bucket": req.bucket })];
    conditions.push(match prefix {
        Some(p) => serde_json::json!(["starts-with", "$key", p]),
        None => serde_json::json!({ "key": req.key }),
    });
    if let Some(ct) = req.content_type {
        fields.push(("Content-Type".into(), ct.into()));
        conditions.push(serde_json::json!({ "Content-Type": ct }));
    }
    if let Some(max) = req.max_size {
        conditions.push(serde_json::json!(["content-length-range", 0, max]));
    }
    if let Some(s) = req.success_action_status {
        fields.push(("success_action_status".into(), s.to_string()));
        conditions.push(serde_json::json!({ "success_action_status": s.to_string() }));
    }
    if let Some(r) = req.success_action_redirect {
        fields.push(("success_action_redirect".into(), r.into()));
        conditions.push(serde_json::json!({ "success_action_redirect": r }));
    }
    for (name, value) in [
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_string()),
        ("x-amz-credential", credential),
        ("x-amz-date", amz_date.clone()),
    ] {
        conditions.push(serde_json::json!({ name: value }));
        fields.push((name.into(), value));
    }
    let policy = serde_json::json!({
        "expiration": iso8601(now + req.expires),
        "conditions": conditions,
    });
    let policy = openssl::base64::encode_block(policy.to_string().as_bytes());
    let signature = sigv4::sign_post_policy(&policy, &cred.secret_access_key, &amz_date, region);
    fields.push(("policy".into(), policy));
    fields.push(("x-amz-signature".into(), signature));
    Ok(PresignedPost {
        url: format!("{}/{}", endpoint_of(server, req.endpoint), req.bucket),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Credential;

    fn server() -> OriginServer {
        OriginServer {
            listen: "0.0.0.0:9000".parse().unwrap(),
            credentials: vec![Credential {
                access_key_id: "AK".into(),
                secret_access_key: "SK".into(),
            }],
        }
    }

    #[test]
    fn urls() {
        assert_eq!(parse_s3_url("s3://site/a/b c.txt"), Ok(("site", "a/b c.txt")));
        assert!(parse_s3_url("s3://site").is_err());
        assert!(parse_s3_url("https://x/y").is_err());
        let req = PresignRequest {
            method: "PUT",
            bucket: "site",
            key: "up loads/a.png",
            content_type: Some("image/png"),
            expires: Duration::from_secs(300),
            endpoint: None,
        };
        let url = presign(&server(), &req, SystemTime::UNIX_EPOCH).unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:9000/site/up%20loads/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"),
            "{url}"
        );
        assert!(
            url.contains("X-Amz-SignedHeaders=content-type%3Bhost") && url.contains("X-Amz-Expires=300"),
            "{url}"
        );
        let too_long = PresignRequest {
            expires: Duration::from_secs(604_801),
            ..req
        };
        assert!(presign(&server(), &too_long, SystemTime::UNIX_EPOCH).is_err());
    }

    #[test]
    fn post_policies() {
        let req = PostRequest {
            bucket: "site",
            key: "uploads/${filename}",
            content_type: Some("image/png"),
            max_size: Some(1_000_000),
            success_action_status: Some(201),
            success_action_redirect: None,
            expires: Duration::from_secs(600),
            endpoint: Some("https://store.example/"),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let post = presign_post(&server(), &req, now).unwrap();
        assert_eq!(post.url, "https://store.example/site");
        let field = |n: &str| {
            post.fields
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(field("key"), "uploads/${filename}");
        assert_eq!(field("x-amz-credential"), "AK/20231114/us-east-1/s3/aws4_request");
        let policy: serde_json::Value =
            serde_json::from_slice(&openssl::base64::decode_block(&field("policy")).unwrap()).unwrap();
        assert_eq!(policy["expiration"], "2023-11-14T22:23:20.000Z");
        let conditions = policy["conditions"].as_array().unwrap();
        assert!(conditions.contains(&serde_json::json!(["starts-with", "$key", "uploads/"])));
        assert!(conditions.contains(&serde_json::json!(["content-length-range", 0, 1_000_000])));
        assert!(conditions.contains(&serde_json::json!({"success_action_status": "201"})));
        // The signature is SigV4's over the base64 policy with the day's key.
        assert_eq!(
            field("x-amz-signature"),
            sigv4::sign_post_policy(&field("policy"), "SK", "20231114T222320Z", "us-east-1")
        );
        // The file is last and not a field here; bad inputs are refused.
        assert!(!post.fields.iter().any(|(k, _)| k == "file"));
        for bad in [
            PostRequest { key: "../x", ..req },
            PostRequest {
                success_action_status: Some(302),
                ..req
            },
            PostRequest {
                expires: Duration::ZERO,
                ..req
            },
        ] {
            assert!(presign_post(&server(), &bad, now).is_err());
        }
    }
}
