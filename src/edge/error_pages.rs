//! CloudFront's custom error responses: the page fetched from its origin (reused for a
//! while) replaces an origin's error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

use super::behavior;
use super::ctx::Ctx;
use super::shape::VIA;
use super::state::EdgeState;
use super::upstream::{origin_peer, origin_target, sign_for_origin};
use crate::config::model::{OriginKind, Signing};

/// When a page was fetched, and what came back.
pub(crate) type FetchedPage = (Instant, Option<ErrorPage>);

/// A custom error page's content.
#[derive(Clone)]
pub(crate) struct ErrorPage {
    content_type: String,
    body: Bytes,
}

/// How long a fetched error page is reused before it is fetched again.
pub(crate) const ERROR_PAGE_TTL: Duration = Duration::from_secs(10);
/// Largest error page served.
pub(crate) const ERROR_PAGE_MAX: usize = 1 << 20;

/// Custom error pages recently fetched, by (distribution, path), and the connector that
/// fetches them.
pub(crate) struct ErrorPages {
    connector: Connector,
    pages: Mutex<HashMap<(String, String), FetchedPage>>,
}

impl ErrorPages {
    pub(crate) fn new() -> Self {
        ErrorPages {
            connector: Connector::new(None),
            pages: Mutex::new(HashMap::new()),
        }
    }

    /// CloudFront's custom error responses: the origin's error (fresh or from the cache) is
    /// answered with the configured page and status. Without the page (missing, not 200,
    /// too large, origin down), or when the origin's error has an empty body, the origin's
    /// error goes out unchanged.
    pub(crate) async fn apply(&self, head: bool, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        let Some(state) = ctx.state.clone() else { return Ok(()) };
        let Some(dist) = state.config.distributions.get(ctx.dist) else {
            return Ok(());
        };
        let Some(er) = dist.error_response(resp.status.as_u16()) else {
            return Ok(());
        };
        let Some(page_path) = er.page_path.as_deref() else {
            return Ok(());
        };
        // pingora ends a header-only response with its header, leaving no body to replace:
        // an origin error with an empty body goes out as it is.
        let empty = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(());
        }
        let host = ctx.canon.as_ref().map_or("", |c| c.authority.as_str()).to_string();
        let Some(page) = self.error_page(&state, ctx.dist, &host, page_path).await else {
            return Ok(());
        };
        resp.set_status(er.response_code.unwrap_or(resp.status.as_u16()))?;
        for h in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CONTENT_RANGE,
            header::CONTENT_ENCODING,
            header::ACCEPT_RANGES,
        ] {
            resp.remove_header(&h);
        }
        resp.insert_header(header::CONTENT_TYPE, page.content_type.as_str())?;
        resp.insert_header(header::CONTENT_LENGTH, page.body.len().to_string())?;
        ctx.error_page_active = true;
        ctx.error_page = (!head).then_some(page.body);
        Ok(())
    }

    /// The error page at `path`, fetched through the behavior that matches it (reused for
    /// [`ERROR_PAGE_TTL`]).
    async fn error_page(&self, state: &EdgeState, dist_idx: usize, host: &str, path: &str) -> Option<ErrorPage> {
        let dist = state.config.distributions.get(dist_idx)?;
        let memo_key = (dist.name.clone(), path.to_string());
        if let Some((at, page)) = self.pages.lock().ok()?.get(&memo_key) {
            if at.elapsed() < ERROR_PAGE_TTL {
                return page.clone();
            }
        }
        let fetched = tokio::time::timeout(Duration::from_secs(5), self.fetch_page(state, dist_idx, host, path))
            .await
            .ok()
            .flatten();
        if fetched.is_none() {
            tracing::warn!(distribution = %dist.name, path, "custom error page unavailable; sending the origin's error");
        }
        self.pages
            .lock()
            .ok()?
            .insert(memo_key, (Instant::now(), fetched.clone()));
        fetched
    }

    async fn fetch_page(&self, state: &EdgeState, dist_idx: usize, host: &str, path: &str) -> Option<ErrorPage> {
        let dist = state.config.distributions.get(dist_idx)?;
        let (_, behavior) = behavior::select(dist, path)?;
        let origin = match &behavior.origin.kind {
            OriginKind::Group { primary, .. } => primary,
            _ => &behavior.origin,
        };
        let target = origin_target(origin, path)?;
        let (peer, _) = origin_peer(state, origin, path.as_bytes(), &[]).ok()?;
        let mut req = RequestHeader::build(Method::GET, target.as_bytes(), None).ok()?;
        req.insert_header(header::VIA, VIA).ok()?;
        for (name, value) in &origin.custom_headers {
            req.insert_header(name.clone(), value.clone()).ok()?;
        }
        match &origin.kind {
            OriginKind::Bucket { .. } | OriginKind::S3 { .. } => {
                let sign = origin.signing != Signing::Never;
                sign_for_origin(&mut req, origin, state, sign).ok()?;
            }
            OriginKind::Http { .. } | OriginKind::Group { .. } => req.insert_header(header::HOST, host).ok()?,
        }
        let (mut http, _) = self.connector.get_http_session(&*peer).await.ok()?;
        http.write_request_header(Box::new(req)).await.ok()?;
        http.finish_request_body().await.ok()?;
        http.read_response_header().await.ok()?;
        let resp = http.response_header()?;
        if resp.status != 200 {
            return None;
        }
        let content_type = resp
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/html")
            .to_string();
        let mut body = Vec::new();
        while let Some(chunk) = http.read_response_body().await.ok()? {
            body.extend_from_slice(&chunk);
            if body.len() > ERROR_PAGE_MAX {
                return None;
            }
        }
        Some(ErrorPage {
            content_type,
            body: Bytes::from(body),
        })
    }
}
