//! The built-in bucket store: an S3-compatible origin on disk. s3s speaks the protocol
//! (routing, XML, SigV4); [`store::DiskStore`] keeps the bytes; [`serve`] runs it on a
//! listener with hyper.

pub mod access_log;
pub mod cors;
pub mod multipart;
pub mod presign;
pub mod s3;
pub mod store;
pub mod transfer;

use std::sync::Arc;

use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub use store::DiskStore;

/// Serves the S3 API on `listener` until the future is dropped. Only requests signed with
/// one of `credentials` (access key id, secret) are accepted. `log` writes server access
/// logs for the buckets that asked for them.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<DiskStore>,
    credentials: Vec<(String, String)>,
    log: Option<Arc<access_log::AccessLog>>,
) -> std::io::Result<()> {
    let mut auth = SimpleAuth::new();
    for (id, secret) in credentials {
        auth.register(id, secret.into());
    }
    let mut builder = S3ServiceBuilder::new(s3::S3Api { store: store.clone() });
    builder.set_auth(auth);
    builder.set_access(PublicReadAccess { store: store.clone() });
    let service = builder.build();
    let ids = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("bucket store: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let store = store.clone();
        let log = log.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let service = service.clone();
                let store = store.clone();
                let log = log.clone();
                let ids = ids.clone();
                async move {
                    let bucket = bucket_of(req.uri().path()).to_string();
                    let logging = log.as_ref().filter(|l| l.enabled(&bucket));
                    let Some(log) = logging else {
                        return respond(&service, &store, req).await;
                    };
                    let started = std::time::Instant::now();
                    let mut entry = log_entry(&req, &bucket, peer.ip());
                    let mut resp = respond(&service, &store, req).await?;
                    let n = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    finish_entry(&mut entry, &mut resp, started, n).await;
                    log.write(&entry);
                    Ok(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, svc);
            if let Err(e) = conn.await {
                tracing::debug!("bucket store connection ended: {e}");
            }
        });
    }
}

/// Signed requests may do anything their credential allows (all credentials are the
/// owner's); unsigned ones may only GET or HEAD objects that are `public-read` (by the
/// object's or the bucket's canned ACL).
struct PublicReadAccess {
    store: Arc<DiskStore>,
}

#[async_trait::async_trait]
impl s3s::access::S3Access for PublicReadAccess {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        let op = cx.s3_op().name();
        if let (true, s3s::path::S3Path::Object { bucket, key }) =
            (op == "GetObject" || op == "HeadObject", cx.s3_path())
        {
            let version = cx.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|p| p.strip_prefix("versionId="))
                    .and_then(|v| crate::edge::viewer::percent_decode(v.as_bytes()))
                    .and_then(|v| String::from_utf8(v).ok())
            });
            if self.store.anonymous_read_allowed(bucket, key, version.as_deref()) {
                return Ok(());
            }
        }
        Err(s3s::s3_error!(AccessDenied, "Access Denied"))
    }
}

/// One request through the S3 API: expiry bound, preflight, s3s, CORS headers.
async fn respond(
    service: &s3s::service::S3Service,
    store: &DiskStore,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
    if let Some(resp) = presign_expiry_error(req.uri().query()) {
        return Ok(resp);
    }
    let bucket = bucket_of(req.uri().path()).to_string();
    let origin = req
        .headers()
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if req.method() == http::Method::OPTIONS {
        return Ok(preflight_response(store, &bucket, req.headers()));
    }
    let method = req.method().as_str().to_string();
    let signed = signed_header_values(req.uri().query(), req.headers());
    let mut resp = hyper::service::Service::call(service, req).await?;
    if resp.status() == 403 && !signed.is_empty() {
        resp = explain_signature_mismatch(resp, &signed).await;
    }
    if let Some(origin) = origin {
        if let Ok(Some(rules)) = store.bucket_cors(&bucket) {
            add_headers(&mut resp, cors::actual(&rules, &origin, &method));
        }
    }
    Ok(resp)
}

/// What the request itself tells the access log.
fn log_entry(req: &http::Request<hyper::body::Incoming>, bucket: &str, ip: std::net::IpAddr) -> access_log::Entry {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let query = req.uri().query();
    let authorization = h("authorization");
    let (requester, auth_type) = if let Some(a) = &authorization {
        let id = a
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').next())
            .map(str::to_string);
        (id, Some("AuthHeader"))
    } else if let Some(c) = query
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Credential="))
    {
        let id = c
            .split("%2F")
            .next()
            .and_then(|i| i.split('/').next())
            .map(str::to_string);
        (id, Some("QueryString"))
    } else {
        (None, None)
    };
    let path = req.uri().path();
    let key = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, k)| k.to_string())
        .filter(|k| !k.is_empty());
    let method = req.method().as_str();
    let object_size = (method == "PUT" && key.is_some())
        .then(|| {
            h("x-amz-decoded-content-length")
                .or_else(|| h("content-length"))
                .and_then(|v| v.parse().ok())
        })
        .flatten();
    access_log::Entry {
        bucket: bucket.to_string(),
        time: access_log::now_secs(),
        remote_ip: ip.to_string(),
        requester,
        operation: access_log::operation(method, key.is_some(), query),
        request_uri: format!(
            "{method} {} HTTP/1.1",
            req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(path)
        ),
        key,
        object_size,
        referer: h("referer"),
        user_agent: h("user-agent"),
        version_id: query
            .unwrap_or("")
            .split('&')
            .find_map(|p| p.strip_prefix("versionId="))
            .map(str::to_string),
        auth_type,
        host: h("host"),
        ..access_log::Entry::default()
    }
}

/// What the response tells the access log: status, error code (read from a small error
/// body, which is put back), bytes, object size, request id, timing.
async fn finish_entry(
    e: &mut access_log::Entry,
    resp: &mut http::Response<s3s::Body>,
    started: std::time::Instant,
    n: u64,
) {
    use http_body_util::BodyExt;
    let h = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    e.status = resp.status().as_u16();
    e.request_id = h("x-amz-request-id").unwrap_or_else(|| format!("{:016X}", (e.time << 20) ^ n));
    let length: Option<u64> = h("content-length").and_then(|v| v.parse().ok());
    e.bytes_sent = length;
    if e.object_size.is_none() && e.operation.ends_with(".OBJECT") && e.status < 300 {
        e.object_size = h("content-range")
            .and_then(|r| r.rsplit('/').next().and_then(|t| t.parse().ok()))
            .or(length);
    }
    // Error bodies are small XML documents held in memory (their size is known).
    let small = hyper::body::Body::size_hint(resp.body())
        .upper()
        .is_some_and(|u| u <= 65_536);
    if e.status >= 400 && small {
        let body = std::mem::replace(resp.body_mut(), s3s::Body::empty());
        if let Ok(collected) = body.collect().await {
            let bytes = collected.to_bytes();
            e.bytes_sent = Some(bytes.len() as u64);
            let text = String::from_utf8_lossy(&bytes);
            e.error_code = text
                .split("<Code>")
                .nth(1)
                .and_then(|c| c.split("</Code>").next())
                .map(str::to_string);
            *resp.body_mut() = s3s::Body::from(bytes);
        }
    }
    let ms = started.elapsed().as_millis() as u64;
    e.total_ms = ms;
    e.turn_around_ms = ms;
}

/// For a presigned request: the headers it signed besides Host, with the values this
/// request sent (`None` when it sent none).
fn signed_header_values(query: Option<&str>, headers: &http::HeaderMap) -> Vec<(String, Option<String>)> {
    let Some(list) = query
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="))
    else {
        return Vec::new();
    };
    list.replace("%3B", ";")
        .replace("%3b", ";")
        .split(';')
        .filter(|h| !h.is_empty() && *h != "host")
        .map(|h| {
            let sent = headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
            (h.to_string(), sent)
        })
        .collect()
}

/// A presigned URL that signed headers besides Host failed its signature check: say which
/// headers the URL requires and what this request sent, instead of S3's bare message (the
/// usual cause is a Content-Type that differs from the one the URL was made for).
async fn explain_signature_mismatch(
    resp: http::Response<s3s::Body>,
    signed: &[(String, Option<String>)],
) -> http::Response<s3s::Body> {
    use http_body_util::BodyExt;
    let (parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await else {
        return xml_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    };
    let bytes = collected.to_bytes();
    if !bytes.windows(21).any(|w| w == b"SignatureDoesNotMatch") {
        return http::Response::from_parts(parts, s3s::Body::from(bytes));
    }
    let sent: Vec<String> = signed
        .iter()
        .map(|(h, v)| match v {
            Some(v) => format!("{h}: {v}"),
            None => format!("{h}: (not sent)"),
        })
        .collect();
    let names: Vec<&str> = signed.iter().map(|(h, _)| h.as_str()).collect();
    let message = format!(
        "The request signature we calculated does not match the signature you provided. This URL was signed with the header(s) {} and the request must send them with exactly the values it was signed for; this request sent {}.",
        names.join(", "),
        sent.join(", ")
    )
    .replace(['<', '>', '&'], "");
    let mut out = xml_error(403, "SignatureDoesNotMatch", &message);
    for (name, value) in parts.headers.iter() {
        if name.as_str().starts_with("access-control-")
            || name == http::header::VARY
            || name.as_str().starts_with("x-amz-")
        {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// The bucket of a path-style request (`/bucket/key`).
fn bucket_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

fn xml_error(status: u16, code: &str, message: &str) -> http::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    http::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(body))
        .unwrap_or_else(|_| http::Response::new(s3s::Body::empty()))
}

fn add_headers(resp: &mut http::Response<s3s::Body>, headers: cors::CorsHeaders) {
    for (name, value) in headers.0 {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            if name == "Vary" {
                resp.headers_mut().append(name, v);
            } else {
                resp.headers_mut().insert(name, v);
            }
        }
    }
}

/// An OPTIONS preflight, answered from the bucket's CORS rules as S3 does (no signature).
fn preflight_response(store: &DiskStore, bucket: &str, headers: &http::HeaderMap) -> http::Response<s3s::Body> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(method)) = (text("origin"), text("access-control-request-method")) else {
        return xml_error(
            400,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let rules = match store.bucket_cors(bucket) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return xml_error(
                403,
                "AccessForbidden",
                "CORSResponse: CORS is not enabled for this bucket.",
            )
        }
        Err(_) => return xml_error(404, "NoSuchBucket", "The specified bucket does not exist"),
    };
    match cors::preflight(&rules, origin, method, text("access-control-request-headers")) {
        Some(h) => {
            let mut resp = http::Response::new(s3s::Body::empty());
            add_headers(&mut resp, h);
            resp
        }
        None => {
            let mut resp = xml_error(
                403,
                "AccessForbidden",
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            );
            add_headers(&mut resp, cors::CorsHeaders(vec![("Vary", cors::VARY.into())]));
            resp
        }
    }
}

/// AWS accepts presigned URLs valid for 1 second to 7 days; s3s does not check the bound.
fn presign_expiry_error(query: Option<&str>) -> Option<http::Response<s3s::Body>> {
    let value = query?.split('&').find_map(|p| p.strip_prefix("X-Amz-Expires="))?;
    let ok = value.parse::<u64>().is_ok_and(|v| (1..=604_800).contains(&v));
    if ok {
        return None;
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AuthorizationQueryParametersError</Code>\
         <Message>X-Amz-Expires must be a number of seconds from 1 to 604800 (one week); got {}</Message></Error>",
        value.replace(['<', '>', '&'], "")
    );
    http::Response::builder()
        .status(400)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(body))
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signed_headers_of_presigned_urls() {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", http::HeaderValue::from_static("image/jpeg"));
        let q =
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-meta-a&X-Amz-Signature=x";
        assert_eq!(
            super::signed_header_values(Some(q), &h),
            vec![
                ("content-type".to_string(), Some("image/jpeg".to_string())),
                ("x-amz-meta-a".to_string(), None)
            ]
        );
        assert!(super::signed_header_values(Some("X-Amz-SignedHeaders=host"), &h).is_empty());
        assert!(super::signed_header_values(None, &h).is_empty());
    }

    #[test]
    fn presign_expiry_bounds() {
        use super::presign_expiry_error as e;
        assert!(e(None).is_none());
        assert!(e(Some("list-type=2")).is_none());
        assert!(e(Some("X-Amz-Expires=1&a=b")).is_none());
        assert!(e(Some("X-Amz-Expires=604800")).is_none());
        for bad in [
            "X-Amz-Expires=0",
            "X-Amz-Expires=604801",
            "X-Amz-Expires=-5",
            "X-Amz-Expires=soon",
        ] {
            assert_eq!(e(Some(bad)).map(|r| r.status().as_u16()), Some(400), "{bad}");
        }
    }
}
