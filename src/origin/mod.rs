//! The built-in bucket store: an S3-compatible origin on disk. s3s speaks the protocol
//! (routing, XML, SigV4); [`store::DiskStore`] keeps the bytes; [`serve`] runs it on a
//! listener with hyper.

pub mod multipart;
pub mod presign;
pub mod s3;
pub mod store;

use std::sync::Arc;

use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub use store::DiskStore;

/// Serves the S3 API on `listener` until the future is dropped. Only requests signed with
/// one of `credentials` (access key id, secret) are accepted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<DiskStore>,
    credentials: Vec<(String, String)>,
) -> std::io::Result<()> {
    let mut auth = SimpleAuth::new();
    for (id, secret) in credentials {
        auth.register(id, secret.into());
    }
    let mut builder = S3ServiceBuilder::new(s3::S3Api { store: store.clone() });
    builder.set_auth(auth);
    builder.set_access(PublicReadAccess { store });
    let service = builder.build();
    loop {
        let (stream, _) = match listener.accept().await {
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
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let service = service.clone();
                async move {
                    if let Some(resp) = presign_expiry_error(req.uri().query()) {
                        return Ok(resp);
                    }
                    hyper::service::Service::call(&service, req).await
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
            if self.store.anonymous_read_allowed(bucket, key) {
                return Ok(());
            }
        }
        Err(s3s::s3_error!(AccessDenied, "Access Denied"))
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
