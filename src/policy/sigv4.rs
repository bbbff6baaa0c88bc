//! AWS Signature Version 4 for requests the edge sends to S3-compatible origins (origin
//! access control). Pure: the caller passes the time, so tests use fixed clocks.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::percent::percent_decode;

/// `x-amz-content-sha256` value for requests whose body is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What to sign. `path` and `query` are as they will be sent (percent-encoded).
#[derive(Clone, Copy)]
pub struct SignInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub host: &'a str,
    /// Further headers to sign, names lower-case (e.g. `range`).
    pub extra_headers: &'a [(&'a str, &'a str)],
    pub payload_hash: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The headers to add to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub authorization: String,
    pub amz_date: String,
}

pub fn sign(input: &SignInput<'_>, access_key_id: &str, secret: &str, now: SystemTime) -> Signature {
    let amz_date = amz_date(now);
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3 + input.extra_headers.len());
    headers.push(("host", input.host));
    headers.push(("x-amz-content-sha256", input.payload_hash));
    headers.push(("x-amz-date", &amz_date));
    headers.extend_from_slice(input.extra_headers);
    let (signed_headers, signature) = signature(input, input.query.unwrap_or(""), &mut headers, &amz_date, secret);
    let scope = scope(&amz_date, input);
    Signature {
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
        ),
        amz_date,
    }
}

fn scope(amz_date: &str, input: &SignInput<'_>) -> String {
    format!("{}/{}/{}/aws4_request", &amz_date[..8], input.region, input.service)
}

/// Canonical request → string to sign → signature. Returns (signed header names, hex signature).
fn signature(
    input: &SignInput<'_>,
    query: &str,
    headers: &mut [(&str, &str)],
    amz_date: &str,
    secret: &str,
) -> (String, String) {
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let mut canonical = String::with_capacity(256);
    canonical.push_str(input.method);
    canonical.push('\n');
    canonical_uri(&mut canonical, input.path);
    canonical.push('\n');
    canonical_query(&mut canonical, query);
    canonical.push('\n');
    let mut signed_headers = String::new();
    for (i, (name, value)) in headers.iter().enumerate() {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value.trim());
        canonical.push('\n');
        if i > 0 {
            signed_headers.push(';');
        }
        signed_headers.push_str(name);
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers);
    canonical.push('\n');
    canonical.push_str(input.payload_hash);

    let scope = scope(amz_date, input);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_signing = signing_key(secret, amz_date, input.region, input.service);
    (signed_headers, hex::encode(hmac(&k_signing, string_to_sign.as_bytes())))
}

/// SigV4's signing key for a day (`amz_date`'s first 8 characters), region and service.
fn signing_key(secret: &str, amz_date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), &amz_date.as_bytes()[..8]);
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The signature of a browser form upload: the base64 POST policy, signed with the day's S3
/// key for `region` (`x-amz-signature`).
pub fn sign_post_policy(policy_base64: &str, secret: &str, amz_date: &str, region: &str) -> String {
    hex::encode(hmac(
        &signing_key(secret, amz_date, region, "s3"),
        policy_base64.as_bytes(),
    ))
}

/// A presigned URL's query string (SigV4 query authentication, `UNSIGNED-PAYLOAD`), valid
/// for `expires_secs` from `now`. `input.extra_headers` (e.g. `content-type`) are signed
/// and must then be sent with exactly those values.
pub fn presign_query(
    input: &SignInput<'_>,
    access_key_id: &str,
    secret: &str,
    now: SystemTime,
    expires_secs: u64,
) -> String {
    let amz_date = amz_date(now);
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(1 + input.extra_headers.len());
    headers.push(("host", input.host));
    headers.extend_from_slice(input.extra_headers);
    let mut names: Vec<&str> = headers.iter().map(|h| h.0).collect();
    names.sort();
    let credential = format!("{access_key_id}/{}", scope(&amz_date, input));
    let mut enc_credential = String::new();
    uri_encode(&mut enc_credential, credential.as_bytes(), true);
    let mut enc_names = String::new();
    uri_encode(&mut enc_names, names.join(";").as_bytes(), true);
    let mut query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={enc_credential}&X-Amz-Date={amz_date}&X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders={enc_names}"
    );
    if let Some(q) = input.query.filter(|q| !q.is_empty()) {
        query = format!("{q}&{query}");
    }
    let unsigned = SignInput {
        payload_hash: UNSIGNED_PAYLOAD,
        ..*input
    };
    let (_, signature) = signature(&unsigned, &query, &mut headers, &amz_date, secret);
    format!("{query}&X-Amz-Signature={signature}")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// S3's canonical URI: the decoded path, each byte outside the unreserved set encoded once,
/// `/` kept.
fn canonical_uri(out: &mut String, path: &str) {
    let decoded = percent_decode(path.as_bytes()).unwrap_or_else(|| path.as_bytes().to_vec());
    if decoded.is_empty() {
        out.push('/');
    }
    uri_encode(out, &decoded, false);
}

fn canonical_query(out: &mut String, query: &str) {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut ek = String::new();
            let mut ev = String::new();
            uri_encode(
                &mut ek,
                &percent_decode(k.as_bytes()).unwrap_or_else(|| k.as_bytes().to_vec()),
                true,
            );
            uri_encode(
                &mut ev,
                &percent_decode(v.as_bytes()).unwrap_or_else(|| v.as_bytes().to_vec()),
                true,
            );
            (ek, ev)
        })
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

/// Percent-encodes an object key for a path, `/` kept: what S3 clients send.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    uri_encode(&mut out, key.as_bytes(), false);
    out
}

fn uri_encode(out: &mut String, bytes: &[u8], encode_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (b == b'/' && !encode_slash) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::util::civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The "GET Object" example of the AWS S3 SigV4 documentation.
    #[test]
    fn aws_documentation_get_object_example() {
        let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        let sig = sign(
            &SignInput {
                method: "GET",
                path: "/test.txt",
                query: None,
                host: "examplebucket.s3.amazonaws.com",
                extra_headers: &[("range", "bytes=0-9")],
                payload_hash: EMPTY_SHA256,
                region: "us-east-1",
                service: "s3",
            },
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            t,
        );
        assert_eq!(sig.amz_date, "20130524T000000Z");
        assert_eq!(
            sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// The "GET Bucket lifecycle" / list example with a query string from the same page.
    #[test]
    fn aws_documentation_list_objects_example() {
        let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        let sig = sign(
            &SignInput {
                method: "GET",
                path: "/",
                query: Some("max-keys=2&prefix=J"),
                host: "examplebucket.s3.amazonaws.com",
                extra_headers: &[],
                payload_hash: EMPTY_SHA256,
                region: "us-east-1",
                service: "s3",
            },
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            t,
        );
        assert!(sig
            .authorization
            .ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
    }

    /// The presigned-URL example of the AWS S3 SigV4 documentation.
    #[test]
    fn aws_documentation_presigned_url_example() {
        let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        let q = presign_query(
            &SignInput {
                method: "GET",
                path: "/test.txt",
                query: None,
                host: "examplebucket.s3.amazonaws.com",
                extra_headers: &[],
                payload_hash: UNSIGNED_PAYLOAD,
                region: "us-east-1",
                service: "s3",
            },
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            t,
            86_400,
        );
        assert_eq!(
            q,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn canonical_uri_encodes_once() {
        let mut s = String::new();
        canonical_uri(&mut s, "/site/a%20b/c+d/%E2%82%AC");
        assert_eq!(s, "/site/a%20b/c%2Bd/%E2%82%AC");
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "20991231T235959Z"
        );
    }

    /// Our signatures for origin requests equal the official AWS signer's (aws-sigv4, with
    /// S3's settings: single percent-encoding, no path normalization, x-amz-content-sha256).
    #[test]
    fn origin_request_signatures_match_the_aws_sigv4_crate() {
        use aws_sigv4::http_request::{
            sign as aws_sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
            UriPathNormalizationMode,
        };
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let identity =
            aws_credential_types::Credentials::new("remotekey", "remote/secret+key", None, None, "test").into();
        for (host, path, region) in [
            ("127.0.0.1:9000", "/media/photos/cat.jpg", "us-east-1"),
            (
                "media.s3.eu-west-1.amazonaws.com",
                "/docs/a%20b%2Bc%20%C3%BC.txt",
                "eu-west-1",
            ),
            ("minio.lan:9000", "/bucket/deep/path/index.html", "garage"),
        ] {
            let ours = sign(
                &SignInput {
                    method: "GET",
                    path,
                    query: None,
                    host,
                    extra_headers: &[],
                    payload_hash: UNSIGNED_PAYLOAD,
                    region,
                    service: "s3",
                },
                "remotekey",
                "remote/secret+key",
                t,
            );
            let mut settings = SigningSettings::default();
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region(region)
                .name("s3")
                .time(t)
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let url = format!("http://{host}{path}");
            let request =
                SignableRequest::new("GET", &url, [("host", host)].into_iter(), SignableBody::UnsignedPayload).unwrap();
            let (instructions, _) = aws_sign(request, &params).unwrap().into_parts();
            let (headers, _) = instructions.into_parts();
            let theirs = headers
                .iter()
                .find(|h| h.name() == "authorization")
                .map(|h| h.value().to_string())
                .unwrap();
            assert_eq!(ours.authorization, theirs, "{host}{path}");
        }
    }
}
