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
    let endpoint = match req.endpoint {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => {
            let mut addr = server.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
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
}
