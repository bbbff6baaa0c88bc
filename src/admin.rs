//! The admin API (`admin.listen`): cache invalidations for operators and scripts, and the
//! client `homefront invalidate` uses.
//!
//! `POST /invalidations` with `Authorization: Bearer <token>` and a JSON body
//! `{"distribution": "default", "paths": ["/images/*", "/index.html"]}` removes every
//! covered entry before answering `{"distribution", "paths", "removed", "status":
//! "Completed"}`. `POST /presign` with `{"method": "PUT", "bucket": "site", "key":
//! "uploads/a.png", "content_type": "image/png", "expires": "5m"}` answers `{"url", "method",
//! "expires_in", "headers"}`: a presigned URL for the bucket store, as the Lambda that hands a
//! browser its upload URL would. `GET /healthz` answers `ok` without a token.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};

use crate::cache::DiskCache;
use crate::edge::state::EdgeState;
use crate::policy::cache_policy::InvalidationPath;

/// Largest accepted request body.
const MAX_BODY: usize = 1 << 20;
/// CloudFront's limit on paths per invalidation batch.
const MAX_PATHS: usize = 3000;

/// What an invalidation request asks for, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidationRequest {
    pub distribution: String,
    pub paths: Vec<String>,
    pub parsed: Vec<InvalidationPath>,
}

/// Parses and checks an invalidation body; the error is the message for a 400.
pub fn parse_invalidation(body: &[u8]) -> Result<InvalidationRequest, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let distribution = v
        .get("distribution")
        .and_then(|d| d.as_str())
        .ok_or("\"distribution\" (a distribution name) is required")?
        .to_string();
    let paths: Vec<String> = v
        .get("paths")
        .and_then(|p| p.as_array())
        .ok_or("\"paths\" (a list of paths like \"/images/*\") is required")?
        .iter()
        .map(|p| p.as_str().map(str::to_string).ok_or("every path must be a string"))
        .collect::<Result<_, _>>()?;
    if paths.is_empty() {
        return Err("\"paths\" is empty".into());
    }
    if paths.len() > MAX_PATHS {
        return Err(format!("at most {MAX_PATHS} paths per invalidation"));
    }
    let parsed = paths
        .iter()
        .map(|p| InvalidationPath::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InvalidationRequest {
        distribution,
        paths,
        parsed,
    })
}

/// A presign request from the admin API, checked; the error is the message for a 400.
#[derive(Debug, PartialEq, Eq)]
pub struct PresignBody {
    pub method: String,
    pub bucket: String,
    pub key: String,
    pub content_type: Option<String>,
    pub expires: Duration,
    pub endpoint: Option<String>,
    /// POST (a browser form upload) only: the largest file, the answer's status, where the
    /// browser goes afterwards.
    pub max_size: Option<u64>,
    pub success_action_status: Option<u16>,
    pub success_action_redirect: Option<String>,
}

pub fn parse_presign(body: &[u8]) -> Result<PresignBody, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let text = |name: &str| -> Result<Option<String>, String> {
        match v.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("\"{name}\" must be a string")),
        }
    };
    let bucket = text("bucket")?.ok_or("\"bucket\" is required")?;
    let key = text("key")?.ok_or("\"key\" is required")?;
    let method = text("method")?.unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
    let expires = match v.get("expires") {
        None | Some(serde_json::Value::Null) => Duration::from_secs(3600),
        Some(serde_json::Value::Number(n)) => {
            Duration::from_secs(n.as_u64().ok_or("\"expires\" must be whole seconds")?)
        }
        Some(serde_json::Value::String(s)) => crate::config::parse_duration(s)?,
        Some(_) => return Err("\"expires\" must be seconds or a duration like \"5m\"".into()),
    };
    const FIELDS: &[&str] = &["method", "bucket", "key", "content_type", "expires", "endpoint"];
    const POST_FIELDS: &[&str] = &["max_size", "success_action_status", "success_action_redirect"];
    for k in v.as_object().map(|o| o.keys().collect::<Vec<_>>()).unwrap_or_default() {
        if POST_FIELDS.contains(&k.as_str()) && method != "POST" {
            return Err(format!("\"{k}\" is for browser form uploads (\"method\": \"POST\")"));
        }
        if !FIELDS.contains(&k.as_str()) && !POST_FIELDS.contains(&k.as_str()) {
            return Err(format!(
                "unknown field \"{k}\" ({}, and for POST {})",
                FIELDS.join(", "),
                POST_FIELDS.join(", ")
            ));
        }
    }
    let number = |name: &str| -> Result<Option<u64>, String> {
        match v.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("\"{name}\" must be a whole number")),
            Some(serde_json::Value::String(s)) if name == "max_size" => crate::config::parse_size(s).map(Some),
            Some(_) => Err(format!("\"{name}\" must be a number")),
        }
    };
    let success_action_status = match number("success_action_status")? {
        None => None,
        Some(n) => Some(u16::try_from(n).map_err(|_| "\"success_action_status\" must be 200, 201 or 204".to_string())?),
    };
    Ok(PresignBody {
        method,
        bucket,
        key,
        content_type: text("content_type")?,
        expires,
        endpoint: text("endpoint")?,
        max_size: number("max_size")?,
        success_action_status,
        success_action_redirect: text("success_action_redirect")?,
    })
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{value}\n"))))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({ "error": code, "message": message }))
}

fn authorized(req: &Request<hyper::body::Incoming>, token: &str) -> bool {
    let Some(given) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    given.len() == token.len() && openssl::memcmp::eq(given.as_bytes(), token.as_bytes())
}

fn unauthorized() -> Response<Full<Bytes>> {
    error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "send Authorization: Bearer <the token in admin.token_file>",
    )
}

/// The body of an authorized request, or the answer to send instead (401, or 400 for a body
/// that cannot be read or is too large).
async fn authorized_body(req: Request<hyper::body::Incoming>, token: &str) -> Result<Bytes, Response<Full<Bytes>>> {
    if !authorized(&req, token) {
        return Err(unauthorized());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, "InvalidBody", &e.to_string())),
    }
}

/// A live reload of the config, as `POST /reload` asks for it (the server's reloader: the
/// admin API sits above nothing it serves).
pub trait Reload: Send + Sync {
    /// `Ok`: what changed; `Err`: why the running config was kept.
    fn reload_and_log(&self) -> Result<String, String>;
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<ArcSwap<EdgeState>>,
    cache: Option<&'static DiskCache>,
    token: Arc<String>,
    reloader: Arc<dyn Reload>,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") | (&Method::GET, "/readyz") => Response::new(Full::new(Bytes::from_static(b"ok\n"))),
        (&Method::POST, "/reload") => {
            if !authorized(&req, &token) {
                return unauthorized();
            }
            // The reload reads files: off the async workers.
            let r = tokio::task::spawn_blocking(move || reloader.reload_and_log()).await;
            match r {
                Ok(Ok(summary)) => json(
                    StatusCode::OK,
                    serde_json::json!({ "status": "reloaded", "message": summary }),
                ),
                Ok(Err(e)) => error(StatusCode::BAD_REQUEST, "InvalidConfig", &e),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e.to_string()),
            }
        }
        (&Method::POST, "/invalidations") => {
            let body = match authorized_body(req, &token).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let inv = match parse_invalidation(&body) {
                Ok(i) => i,
                Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidArgument", &m),
            };
            let known = state
                .load()
                .config
                .distributions
                .iter()
                .any(|d| d.name == inv.distribution);
            if !known {
                return error(
                    StatusCode::NOT_FOUND,
                    "NoSuchDistribution",
                    &format!("no distribution named '{}'", inv.distribution),
                );
            }
            let removed = cache.map(|c| c.invalidate(&inv.distribution, &inv.parsed)).unwrap_or(0);
            tracing::info!(distribution = %inv.distribution, paths = ?inv.paths, removed, "invalidation");
            json(
                StatusCode::OK,
                serde_json::json!({
                    "distribution": inv.distribution,
                    "paths": inv.paths,
                    "removed": removed,
                    "status": "Completed",
                }),
            )
        }
        (&Method::POST, "/presign") => {
            let body = match authorized_body(req, &token).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let p = match parse_presign(&body) {
                Ok(p) => p,
                Err(m) => return error(StatusCode::BAD_REQUEST, "InvalidArgument", &m),
            };
            let config = state.load().config.clone();
            let Some(server) = config.origin_server.as_ref() else {
                return error(
                    StatusCode::NOT_FOUND,
                    "NoBucketStore",
                    "this server runs no bucket store",
                );
            };
            if !config.buckets.contains_key(&p.bucket) {
                return error(
                    StatusCode::NOT_FOUND,
                    "NoSuchBucket",
                    &format!("no bucket named '{}' under buckets", p.bucket),
                );
            }
            if p.method == "POST" {
                let req = crate::origin::presign::PostRequest {
                    bucket: &p.bucket,
                    key: &p.key,
                    content_type: p.content_type.as_deref(),
                    max_size: p.max_size,
                    success_action_status: p.success_action_status,
                    success_action_redirect: p.success_action_redirect.as_deref(),
                    expires: p.expires,
                    endpoint: p.endpoint.as_deref(),
                };
                return match crate::origin::presign::presign_post(server, &req, std::time::SystemTime::now()) {
                    Ok(post) => {
                        let fields: serde_json::Map<String, serde_json::Value> =
                            post.fields.into_iter().map(|(k, v)| (k, v.into())).collect();
                        json(
                            StatusCode::OK,
                            serde_json::json!({
                                "url": post.url,
                                "method": "POST",
                                "expires_in": p.expires.as_secs(),
                                "fields": fields,
                            }),
                        )
                    }
                    Err(m) => error(StatusCode::BAD_REQUEST, "InvalidArgument", &m),
                };
            }
            let req = crate::origin::presign::PresignRequest {
                method: &p.method,
                bucket: &p.bucket,
                key: &p.key,
                content_type: p.content_type.as_deref(),
                expires: p.expires,
                endpoint: p.endpoint.as_deref(),
            };
            match crate::origin::presign::presign(server, &req, std::time::SystemTime::now()) {
                Ok(url) => {
                    let mut headers = serde_json::Map::new();
                    if let Some(ct) = &p.content_type {
                        headers.insert("Content-Type".into(), ct.clone().into());
                    }
                    json(
                        StatusCode::OK,
                        serde_json::json!({
                            "url": url,
                            "method": p.method,
                            "expires_in": p.expires.as_secs(),
                            "headers": headers,
                        }),
                    )
                }
                Err(m) => error(StatusCode::BAD_REQUEST, "InvalidArgument", &m),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the admin API offers POST /invalidations, POST /presign, POST /reload, GET /healthz and GET /readyz",
        ),
    }
}

/// Serves the admin API on `listener` until dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ArcSwap<EdgeState>>,
    cache: Option<&'static DiskCache>,
    token: String,
    reloader: Arc<dyn Reload>,
) {
    let token = Arc::new(token);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (state, token, reloader) = (state.clone(), token.clone(), reloader.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (state, token, reloader) = (state.clone(), token.clone(), reloader.clone());
                async move { Ok::<_, Infallible>(handle(req, state, cache, token, reloader).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// `homefront invalidate`: posts one invalidation and returns the number of removed
/// entries, or a message for the operator.
pub fn invalidate(addr: SocketAddr, token: &str, distribution: &str, paths: &[String]) -> Result<u64, String> {
    let body = serde_json::json!({ "distribution": distribution, "paths": paths }).to_string();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot reach the admin API at {addr}: {e} (is homefront serve running?)"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let req = format!(
        "POST /invalidations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("cannot send to the admin API at {addr}: {e}"))?;
    let mut resp = String::new();
    stream
        .read_to_string(&mut resp)
        .map_err(|e| format!("no answer from the admin API at {addr}: {e}"))?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("the admin API at {addr} sent an invalid answer"))?;
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null);
    if status != 200 {
        let msg = v.get("message").and_then(|m| m.as_str()).unwrap_or(body.trim());
        return Err(format!("the admin API refused ({status}): {msg}"));
    }
    v.get("removed")
        .and_then(|r| r.as_u64())
        .ok_or_else(|| format!("the admin API at {addr} sent an invalid answer: {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presign_bodies() {
        let p = parse_presign(
            br#"{"method":"put","bucket":"site","key":"a/b.png","content_type":"image/png","expires":"5m"}"#,
        )
        .unwrap();
        assert_eq!(p.method, "PUT");
        assert_eq!(p.expires, Duration::from_secs(300));
        assert_eq!(p.content_type.as_deref(), Some("image/png"));
        let p = parse_presign(br#"{"bucket":"site","key":"k","expires":60}"#).unwrap();
        assert_eq!((p.method.as_str(), p.expires.as_secs()), ("GET", 60));
        let p = parse_presign(
            br#"{"method":"POST","bucket":"site","key":"up/${filename}","max_size":"10MB","success_action_status":201}"#,
        )
        .unwrap();
        assert_eq!(p.max_size, Some(10_000_000));
        assert_eq!(p.success_action_status, Some(201));
        for (body, needle) in [
            (&br#"{"key":"k"}"#[..], "bucket"),
            (br#"{"bucket":"b"}"#, "key"),
            (br#"{"bucket":"b","key":"k","expires":"soon"}"#, "duration"),
            (br#"{"bucket":"b","key":"k","acl":"public-read"}"#, "unknown field"),
            (br#"{"bucket":1,"key":"k"}"#, "must be a string"),
            (br#"{"bucket":"b","key":"k","max_size":5}"#, "browser form uploads"),
            (
                br#"{"method":"POST","bucket":"b","key":"k","max_size":-1}"#,
                "whole number",
            ),
        ] {
            let e = parse_presign(body).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn invalidation_bodies() {
        let ok = parse_invalidation(br#"{"distribution":"d0","paths":["/images/*","/a.jpg"]}"#).unwrap();
        assert_eq!(ok.distribution, "d0");
        assert_eq!(ok.parsed.len(), 2);
        for (body, needle) in [
            (&b"nope"[..], "not JSON"),
            (br#"{"paths":["/a"]}"#, "distribution"),
            (br#"{"distribution":"d0"}"#, "paths"),
            (br#"{"distribution":"d0","paths":[]}"#, "empty"),
            (br#"{"distribution":"d0","paths":[3]}"#, "string"),
            (br#"{"distribution":"d0","paths":["/a*b"]}"#, "only at the end"),
            (br#"{"distribution":"d0","paths":["a.jpg"]}"#, "start with '/'"),
        ] {
            let e = parse_invalidation(body).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }
}
