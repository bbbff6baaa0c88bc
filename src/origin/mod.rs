//! The built-in bucket store: an S3-compatible origin on disk. s3s speaks the protocol
//! (routing, XML, SigV4); [`store::DiskStore`] keeps the bytes; [`serve`] runs it on a
//! listener with hyper.

pub mod multipart;
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
    let mut builder = S3ServiceBuilder::new(s3::S3Api { store });
    builder.set_auth(auth);
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
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service);
            if let Err(e) = conn.await {
                tracing::debug!("bucket store connection ended: {e}");
            }
        });
    }
}
