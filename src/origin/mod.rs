//! The built-in bucket store: an S3-compatible origin on disk. s3s speaks the protocol
//! (routing, XML, SigV4); [`store::DiskStore`] keeps the bytes; [`serve`] runs it on a
//! listener with hyper.

pub mod access_log;
pub mod checksum;
pub mod cors;
pub mod multipart;
pub mod post_form;
pub mod presign;
pub mod query;
pub mod s3;
pub mod store;
pub mod transfer;

use std::sync::Arc;

use s3s::service::S3ServiceBuilder;

use query::Query;
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
    let auth = Credentials(
        credentials
            .into_iter()
            .map(|(id, secret)| (id, secret.into()))
            .collect(),
    );
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
                    // Parsed once, as s3s parses it: every check below reads this.
                    let Ok(query) = Query::parse(req.uri().query()) else {
                        return Ok(xml_error(400, "InvalidURI", "Couldn't parse the specified URI."));
                    };
                    let bucket = bucket_of(req.uri().path());
                    let logging = log.as_ref().filter(|l| l.enabled(&bucket));
                    let Some(log) = logging else {
                        return respond(&service, &store, req, &query).await;
                    };
                    let started = std::time::Instant::now();
                    let mut entry = log_entry(&req, &query, &bucket, peer.ip());
                    let mut resp = respond(&service, &store, req, &query).await?;
                    let n = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    finish_entry(&mut entry, &mut resp, started, n).await;
                    log.write(entry).await;
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

/// The store's credentials. An unknown access key id gets S3's InvalidAccessKeyId (s3s's
/// `SimpleAuth` answers NotSignedUp).
struct Credentials(std::collections::HashMap<String, s3s::auth::SecretKey>);

#[async_trait::async_trait]
impl s3s::auth::S3Auth for Credentials {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        self.0.get(access_key).cloned().ok_or_else(|| {
            s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )
        })
    }
}

/// Signed requests may do anything their credential allows (all credentials are the
/// owner's); unsigned ones may only GET or HEAD objects that are `public-read` (by the
/// object's or the bucket's canned ACL). Which object and version is read from the
/// operation's input, after s3s has parsed it: exactly what it will serve.
struct PublicReadAccess {
    store: Arc<DiskStore>,
}

impl PublicReadAccess {
    fn anonymous_read(&self, bucket: &str, key: &str, version: Option<&str>) -> s3s::S3Result<()> {
        if !self.store.bucket_exists(bucket) {
            // As S3: a bucket that does not exist is 404 for anyone.
            return Err(s3s::s3_error!(NoSuchBucket, "The specified bucket does not exist"));
        }
        if self.store.anonymous_read_allowed(bucket, key, version) {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied, "Access Denied"))
        }
    }
}

#[async_trait::async_trait]
impl s3s::access::S3Access for PublicReadAccess {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        // An anonymous GetObject or HeadObject goes on to `get_object` / `head_object`
        // below, which decide on the parsed input; nothing else is open.
        match cx.s3_op().name() {
            "GetObject" | "HeadObject" => Ok(()),
            _ => Err(s3s::s3_error!(AccessDenied, "Access Denied")),
        }
    }

    async fn get_object(&self, req: &mut s3s::S3Request<s3s::dto::GetObjectInput>) -> s3s::S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let i = &req.input;
        self.anonymous_read(&i.bucket, &i.key, i.version_id.as_deref())
    }

    async fn head_object(&self, req: &mut s3s::S3Request<s3s::dto::HeadObjectInput>) -> s3s::S3Result<()> {
        if req.credentials.is_some() {
            return Ok(());
        }
        let i = &req.input;
        self.anonymous_read(&i.bucket, &i.key, i.version_id.as_deref())
    }

    /// A browser form upload (POST policy) signed with SigV2 is refused like the other
    /// SigV2 forms; s3s leaves the region empty only for SigV2 (a SigV4 credential names it).
    async fn post_object(&self, req: &mut s3s::S3Request<s3s::dto::PostObjectInput>) -> s3s::S3Result<()> {
        if req.credentials.is_some() && req.region.is_none() {
            return Err(s3s::s3_error!(InvalidRequest, "{SIGV2_REFUSED}"));
        }
        Ok(())
    }
}

/// One request through the S3 API. An error answer to a request with a body says
/// `Connection: close`: its body may not have been read (a request refused early, one that
/// waits for `100 Continue`), so the connection cannot carry another request, and a client
/// must not send one on it (hyper closes it; without the header boto3 reuses it and reads
/// a lost answer).
async fn respond(
    service: &s3s::service::S3Service,
    store: &DiskStore,
    req: http::Request<hyper::body::Incoming>,
    query: &Query,
) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
    let has_body = req.headers().contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let is_post = req.method() == http::Method::POST;
    let attributes = req.method() == http::Method::GET && query.has("attributes");
    let mut resp = answer(service, store, req, query).await?;
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut()
            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    Ok(shaped(resp, is_post, attributes, &request_id()).await)
}

/// A request id, unique in this process and across restarts (its start time leads).
fn request_id() -> String {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let started = *STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:08X}{:08X}", started as u32, n as u32)
}

/// The store's answer as S3 gives it, where s3s's differs; the body is read (it is small
/// and in memory) at most once, only for an error or a GetObjectAttributes answer:
/// - every answer names its request (`x-amz-request-id`, which the SDKs report with an
///   error), and an error's XML carries the same id (`<RequestId>`);
/// - a form upload (`post`) that its policy does not allow is 403 AccessDenied
///   ([`policy_failure`]);
/// - GetObjectAttributes (`attributes`) shows the ETag unquoted ([`unquote_etag`]).
async fn shaped(resp: http::Response<s3s::Body>, post: bool, attributes: bool, id: &str) -> http::Response<s3s::Body> {
    use http_body_util::BodyExt;
    let (mut parts, body) = resp.into_parts();
    if let Ok(v) = http::HeaderValue::from_str(id) {
        parts.headers.insert("x-amz-request-id", v);
    }
    let status = parts.status.as_u16();
    let attributes = attributes && status == 200;
    let limit = if attributes { 1 << 20 } else { 65_536 };
    let small = hyper::body::Body::size_hint(&body).upper().is_some_and(|u| u <= limit);
    if !(attributes || status >= 300) || !small {
        return http::Response::from_parts(parts, body);
    }
    let Ok(collected) = body.collect().await else {
        return http::Response::from_parts(parts, s3s::Body::empty());
    };
    let bytes = collected.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let mut changed: Option<String> = None;
    if post && status == 400 {
        if let Some(denied) = policy_failure(&text) {
            parts.status = http::StatusCode::FORBIDDEN;
            changed = Some(denied);
        }
    }
    if attributes {
        changed = Some(unquote_etag(changed.as_deref().unwrap_or(&text)));
    }
    if let Some(with_id) = add_request_id(changed.as_deref().unwrap_or(&text), id) {
        changed = Some(with_id);
    }
    match changed {
        None => http::Response::from_parts(parts, s3s::Body::from(bytes)),
        Some(text) => {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            http::Response::from_parts(parts, s3s::Body::from(text))
        }
    }
}

/// An error's XML with its request id (`None`: not an error document, or it has one).
fn add_request_id(xml: &str, id: &str) -> Option<String> {
    (xml.contains("</Error>") && !xml.contains("<RequestId>"))
        .then(|| xml.replacen("</Error>", &format!("<RequestId>{id}</RequestId></Error>"), 1))
}

/// GetObjectAttributes shows the ETag without quotes, unlike every other S3 answer; s3s
/// writes every XML ETag quoted.
fn unquote_etag(xml: &str) -> String {
    xml.replacen("<ETag>\"", "<ETag>", 1)
        .replacen("\"</ETag>", "</ETag>", 1)
}

/// A form upload that its policy does not allow: S3 answers 403 AccessDenied ("Invalid
/// according to Policy"); s3s, 400 InvalidPolicyDocument as for a policy it cannot parse.
/// The 403's XML, when `xml` is that error.
fn policy_failure(xml: &str) -> Option<String> {
    if !(xml.contains("<Code>InvalidPolicyDocument</Code>") && xml.contains("Policy condition")) {
        return None;
    }
    let detail = xml
        .split("<Message>")
        .nth(1)
        .and_then(|m| m.split("</Message>").next())
        .unwrap_or("");
    Some(error_xml(
        "AccessDenied",
        &format!("Invalid according to Policy: Policy Condition failed: {detail}"),
    ))
}

/// The answer of the S3 API: expiry bound, preflight, s3s, CORS headers.
async fn answer(
    service: &s3s::service::S3Service,
    store: &DiskStore,
    req: http::Request<hyper::body::Incoming>,
    query: &Query,
) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
    if let Some(resp) = refusal(query, req.headers()) {
        return Ok(resp);
    }
    let bucket = bucket_of(req.uri().path());
    let origin = req
        .headers()
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if req.method() == http::Method::OPTIONS {
        return Ok(preflight_response(store, &bucket, req.headers()));
    }
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let signed = signed_header_values(query, req.headers());
    let mut resp = service.call(with_form_key(req).await).await?;
    if resp.status().is_server_error() {
        // Client errors are the client's; these are ours (s3s's own log of them is off).
        tracing::error!("bucket store: {method} {path} failed with {}", resp.status());
    }
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

/// The request as s3s takes it; a browser form upload's `${filename}` in the key field is
/// replaced first (`post_form`): its head is read (at most [`post_form::HEAD_LIMIT`]) and
/// put back in front of the rest of the body.
async fn with_form_key(req: http::Request<hyper::body::Incoming>) -> http::Request<s3s::Body> {
    use http_body_util::BodyExt;
    let boundary = (req.method() == http::Method::POST)
        .then(|| {
            req.headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(post_form::boundary)
                .map(str::to_string)
        })
        .flatten();
    let Some(boundary) = boundary else {
        return req.map(s3s::Body::from);
    };
    let (mut parts, mut body) = req.into_parts();
    let mut head = Vec::new();
    let rewritten = loop {
        match post_form::read_head(&head, &boundary) {
            post_form::Head::Incomplete if head.len() < post_form::HEAD_LIMIT => {}
            post_form::Head::Found { rewritten } => break rewritten,
            _ => break None,
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                }
            }
            // The end, or a broken body: s3s reports it on what there is.
            _ => break None,
        }
    };
    if let Some(new_head) = rewritten {
        let length = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = length {
            let n = (n + new_head.len() as u64).saturating_sub(head.len() as u64);
            parts.headers.insert(http::header::CONTENT_LENGTH, n.into());
        }
        head = new_head;
    }
    let first = futures::stream::iter([Ok::<_, hyper::Error>(bytes::Bytes::from(head))]);
    let rest = body.into_data_stream();
    let stream = futures::StreamExt::map(futures::StreamExt::chain(first, rest), |r| {
        r.map(hyper::body::Frame::data)
    });
    http::Request::from_parts(parts, s3s::Body::http_body(http_body_util::StreamBody::new(stream)))
}

/// What the request itself tells the access log.
fn log_entry(
    req: &http::Request<hyper::body::Incoming>,
    query: &Query,
    bucket: &str,
    ip: std::net::IpAddr,
) -> access_log::Entry {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = h("authorization");
    let (requester, auth_type) = if let Some(a) = &authorization {
        let id = a
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').next())
            .map(str::to_string);
        (id, Some("AuthHeader"))
    } else if let Some(c) = query.get("X-Amz-Credential") {
        (c.split('/').next().map(str::to_string), Some("QueryString"))
    } else {
        (None, None)
    };
    let path = req.uri().path();
    // S3 logs the key URL-encoded: as the client sent it.
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
        version_id: query.get("versionId").map(str::to_string),
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
fn signed_header_values(query: &Query, headers: &http::HeaderMap) -> Vec<(String, Option<String>)> {
    let Some(list) = query.get("X-Amz-SignedHeaders") else {
        return Vec::new();
    };
    list.split(';')
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

/// The bucket of a path-style request (`/bucket/key`), decoded as s3s decodes it (empty
/// when it cannot be).
fn bucket_of(path: &str) -> String {
    let decoded = query::decode_path(path).unwrap_or_default();
    decoded
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

fn error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
}

fn xml_error(status: u16, code: &str, message: &str) -> http::Response<s3s::Body> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(error_xml(code, message)))
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

/// The account that owns every bucket and object of the store (all its credentials are the
/// owner's): the ID listings and ACLs show, and what `x-amz-expected-bucket-owner` must name.
pub const OWNER_ID: &str = "homefront";

/// S3's answer to a SigV2 signature where only SigV4 is accepted.
const SIGV2_REFUSED: &str =
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.";

/// Parameters whose repetition could make two readers disagree: refused, as S3 does.
const UNIQUE_PARAMS: &[(&str, &str)] = &[
    ("versionId", "InvalidArgument"),
    ("X-Amz-Algorithm", "AuthorizationQueryParametersError"),
    ("X-Amz-Credential", "AuthorizationQueryParametersError"),
    ("X-Amz-Date", "AuthorizationQueryParametersError"),
    ("X-Amz-Expires", "AuthorizationQueryParametersError"),
    ("X-Amz-SignedHeaders", "AuthorizationQueryParametersError"),
    ("X-Amz-Signature", "AuthorizationQueryParametersError"),
    ("X-Amz-Security-Token", "AuthorizationQueryParametersError"),
];

/// What the store refuses before s3s sees the request, all read from the decoded query:
/// SigV2, repeated security parameters, an expiry outside S3's bounds, unsigned `x-amz-*`
/// headers on a signed request.
fn refusal(query: &Query, headers: &http::HeaderMap) -> Option<http::Response<s3s::Body>> {
    if is_sigv2(query, headers) {
        return Some(xml_error(400, "InvalidRequest", SIGV2_REFUSED));
    }
    for (name, code) in UNIQUE_PARAMS {
        if query.unique(name).is_err() {
            return Some(xml_error(
                400,
                code,
                &format!("The query parameter {name} is given more than once."),
            ));
        }
    }
    if let Some(resp) = presign_expiry_error(query) {
        return Some(resp);
    }
    // The account every bucket belongs to; a request that expects another gets S3's 403.
    for name in ["x-amz-expected-bucket-owner", "x-amz-source-expected-bucket-owner"] {
        if headers
            .get_all(name)
            .iter()
            .any(|v| v.as_bytes() != OWNER_ID.as_bytes())
        {
            return Some(xml_error(403, "AccessDenied", "Access Denied"));
        }
    }
    let unsigned = unsigned_amz_headers(query, headers);
    if !unsigned.is_empty() {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
             <Message>There were headers present in the request which were not signed</Message>\
             <HeadersNotSigned>{}</HeadersNotSigned></Error>",
            unsigned.join(", ")
        );
        return http::Response::builder()
            .status(403)
            .header("content-type", "application/xml")
            .body(s3s::Body::from(body))
            .ok();
    }
    None
}

/// A SigV2 signature in the header (`AWS AKID:sig`, which s3s would check) or the query
/// (`Signature`, `AWSAccessKeyId`).
fn is_sigv2(query: &Query, headers: &http::HeaderMap) -> bool {
    query.has("Signature")
        || query.has("AWSAccessKeyId")
        || headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .any(|v| v.as_bytes().starts_with(b"AWS "))
}

/// The `x-amz-*` headers of a SigV4-signed request that its signature does not cover, as S3
/// refuses them (HeadersNotSigned). `x-amz-content-sha256` may go unsigned, as on S3 (s3s
/// checks the body against it either way). Which signature counts is decided as s3s does:
/// the query's (`X-Amz-Signature`) before the Authorization header's.
fn unsigned_amz_headers(query: &Query, headers: &http::HeaderMap) -> Vec<String> {
    let list = if query.has("X-Amz-Signature") {
        query.get("X-Amz-SignedHeaders").unwrap_or("").to_string()
    } else {
        let Some(auth) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|a| a.starts_with("AWS4-HMAC-SHA256"))
        else {
            return Vec::new();
        };
        // `AWS4-HMAC-SHA256 Credential=.., SignedHeaders=a;b, Signature=..`; none found:
        // nothing counts as signed (and s3s refuses the header anyway).
        auth.split(',')
            .find_map(|p| p.trim().strip_prefix("SignedHeaders="))
            .unwrap_or("")
            .to_string()
    };
    let signed: Vec<&str> = list.split(';').map(str::trim).collect();
    let mut unsigned: Vec<String> = Vec::new();
    for name in headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-")
            && name != "x-amz-content-sha256"
            && !signed.contains(&name)
            && !unsigned.iter().any(|u| u == name)
        {
            unsigned.push(name.to_string());
        }
    }
    unsigned
}

/// AWS accepts presigned URLs valid for 1 second to 7 days; s3s does not check the bound.
fn presign_expiry_error(query: &Query) -> Option<http::Response<s3s::Body>> {
    let value = query.get("X-Amz-Expires")?;
    let ok = value.parse::<u64>().is_ok_and(|v| (1..=604_800).contains(&v));
    if ok {
        return None;
    }
    Some(xml_error(
        400,
        "AuthorizationQueryParametersError",
        &format!(
            "X-Amz-Expires must be a number of seconds from 1 to 604800 (one week); got {}",
            value.replace(['<', '>', '&'], "")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::Query;

    fn q(raw: &str) -> Query {
        Query::parse(Some(raw)).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn signed_headers_of_presigned_urls() {
        let h = headers(&[("content-type", "image/jpeg")]);
        let url =
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-meta-a&X-Amz-Signature=x";
        assert_eq!(
            super::signed_header_values(&q(url), &h),
            vec![
                ("content-type".to_string(), Some("image/jpeg".to_string())),
                ("x-amz-meta-a".to_string(), None)
            ]
        );
        assert!(super::signed_header_values(&q("X-Amz-SignedHeaders=host"), &h).is_empty());
        assert!(super::signed_header_values(&Query::default(), &h).is_empty());
    }

    #[test]
    fn answers_shaped_as_s3s_does_not() {
        let err = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>";
        assert_eq!(
            super::add_request_id(err, "ABC").as_deref(),
            Some("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>ABC</RequestId></Error>")
        );
        assert_eq!(
            super::add_request_id("<Error><RequestId>X</RequestId></Error>", "ABC"),
            None
        );
        assert_eq!(super::add_request_id("<ListBucketResult/>", "ABC"), None);
        assert_eq!(
            super::unquote_etag("<R><ETag>\"abc-2\"</ETag><ObjectSize>1</ObjectSize></R>"),
            "<R><ETag>abc-2</ETag><ObjectSize>1</ObjectSize></R>"
        );
        let failed = "<Error><Code>InvalidPolicyDocument</Code><Message>Policy condition 'eq' for field 'key' failed</Message></Error>";
        let denied = super::policy_failure(failed).unwrap();
        assert!(denied.contains("<Code>AccessDenied</Code>"), "{denied}");
        assert!(denied.contains("Invalid according to Policy: Policy Condition failed: Policy condition 'eq'"));
        // A policy s3s could not parse stays a 400.
        let unreadable =
            "<Error><Code>InvalidPolicyDocument</Code><Message>failed to parse POST policy</Message></Error>";
        assert_eq!(super::policy_failure(unreadable), None);
    }

    #[test]
    fn presign_expiry_bounds() {
        use super::presign_expiry_error as e;
        assert!(e(&Query::default()).is_none());
        assert!(e(&q("list-type=2")).is_none());
        assert!(e(&q("X-Amz-Expires=1&a=b")).is_none());
        assert!(e(&q("X-Amz-Expires=604800")).is_none());
        for bad in [
            "X-Amz-Expires=0",
            "X-Amz-Expires=604801",
            "X-Amz-Expires=-5",
            "X-Amz-Expires=soon",
            // Names are read decoded, as s3s reads them.
            "X-Amz-%45xpires=999999",
            "%58-Amz-Expires=999999",
            "X-Amz-Expires=%39%39%39%39%39%39%39",
        ] {
            assert_eq!(e(&q(bad)).map(|r| r.status().as_u16()), Some(400), "{bad}");
        }
    }

    #[test]
    fn refusals_before_s3s() {
        let status =
            |query: &str, h: &[(&str, &str)]| super::refusal(&q(query), &headers(h)).map(|r| r.status().as_u16());
        assert_eq!(status("", &[]), None);
        assert_eq!(status("versionId=a", &[]), None);
        // Repeated security parameters, however spelled.
        assert_eq!(status("versionId=a&version%49d=b", &[]), Some(400));
        assert_eq!(status("X-Amz-Expires=5&X-Amz-%45xpires=5", &[]), Some(400));
        assert_eq!(status("X-Amz-Signature=a&X-Amz-Signature=b", &[]), Some(400));
        // SigV2, header or query.
        assert_eq!(status("", &[("authorization", "AWS AKID:c2ln")]), Some(400));
        assert_eq!(status("AWSAccessKeyId=a&Expires=1&Signature=s", &[]), Some(400));
        assert_eq!(status("%53ignature=s", &[]), Some(400));
        // x-amz-* headers outside SignedHeaders.
        let v4 = "AWS4-HMAC-SHA256 Credential=k/20250101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=abc";
        assert_eq!(
            status(
                "",
                &[
                    ("authorization", v4),
                    ("x-amz-date", "d"),
                    ("x-amz-content-sha256", "h")
                ]
            ),
            None
        );
        assert_eq!(
            status("", &[("authorization", v4), ("x-amz-acl", "public-read")]),
            Some(403)
        );
        assert_eq!(status("", &[("authorization", v4), ("x-amz-cf-id", "x")]), Some(403));
        // The expected bucket owner must be the store's account.
        let signed_owner = "AWS4-HMAC-SHA256 Credential=k/20250101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-expected-bucket-owner, Signature=abc";
        assert_eq!(
            status(
                "",
                &[
                    ("authorization", signed_owner),
                    ("x-amz-expected-bucket-owner", "homefront")
                ]
            ),
            None
        );
        assert_eq!(
            status(
                "",
                &[
                    ("authorization", signed_owner),
                    ("x-amz-expected-bucket-owner", "111122223333")
                ]
            ),
            Some(403)
        );
        // Unsigned requests may carry what they like: they are anonymous.
        assert_eq!(status("", &[("x-amz-acl", "public-read")]), None);
    }

    #[test]
    fn unsigned_amz_headers_of_either_signature() {
        use super::unsigned_amz_headers as u;
        let presigned = q("X-Amz-SignedHeaders=host%3Bx-amz-meta-a&X-Amz-Signature=x");
        let h = headers(&[
            ("x-amz-meta-a", "1"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-acl", "public-read"),
            ("x-amz-acl", "private"),
            ("x-amzn-trace-id", "t"),
            ("content-type", "text/plain"),
        ]);
        assert_eq!(u(&presigned, &h), ["x-amz-acl"]);
        // The presigned signature is the one s3s checks when both are there.
        let both = headers(&[
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=k, SignedHeaders=host;x-amz-tagging, Signature=s",
            ),
            ("x-amz-tagging", "a=b"),
        ]);
        assert_eq!(u(&presigned, &both), ["x-amz-tagging"]);
        assert!(u(&Query::default(), &both).is_empty());
        let compact = headers(&[
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=k,SignedHeaders=host;x-amz-date,Signature=s",
            ),
            ("x-amz-date", "d"),
            ("x-amz-meta-b", "2"),
        ]);
        assert_eq!(u(&Query::default(), &compact), ["x-amz-meta-b"]);
    }
}
