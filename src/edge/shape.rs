//! Response shaping: the origin's answer on its way to the cache and the viewer
//! (compression, the cache's TTL and variance), and the viewer's headers on every answer.

use std::time::SystemTime;

use bytes::Bytes;
use http::header;
use pingora::cache::key::HashBinary;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::ctx::Ctx;
use crate::config::model::{Origin, OriginKind, Signing};
use crate::policy::{cache_policy, forwarded, hop_by_hop};

/// `Via` value the edge adds to origin requests and viewer responses.
pub(crate) const VIA: &str = "1.1 homefront";
/// Per-request id header, on the origin request and on the response.
pub const REQUEST_ID_HEADER: &str = "x-amz-cf-id";

/// An origin's answer as the edge takes it, before the cache and the viewer: a bucket's
/// 403 to the edge's own signature is logged, and a compressible body gets `Vary:
/// Accept-Encoding` and, when this viewer takes a coding, an encoder (`ctx.encoder`).
pub(crate) fn origin_response(resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
    use super::compress;
    if resp.status.as_u16() == 403 {
        // A bucket refusing the edge's own signature is a configuration error: say so
        // where the operator looks (the viewer gets the bucket's 403 as it is).
        if let (Some(origin), Some(key_id)) = (&ctx.origin, &ctx.signed_as) {
            tracing::warn!(
                "origin {} answered 403 to a request the edge signed as {key_id}: check that credential's secret and the bucket's policy (request {})",
                origin.name,
                ctx.request_id
            );
        }
    }
    if let Some(origin) = &ctx.origin {
        unleak_location(resp, origin)?;
    }
    if resp.status.as_u16() != 101 {
        // Neither stored nor passed on (RFC 9110 §7.6.1).
        for name in hop_by_hop::fields_to_drop(&resp.headers) {
            resp.remove_header(&name);
        }
    }
    if !ctx.behavior().is_some_and(|b| b.compress) {
        return Ok(());
    }
    let status = resp.status.as_u16();
    if status == 304 {
        // A revalidation of a compressed variant: its stored ETag stays weak.
        if ctx.compress.is_some() {
            if let Some(etag) = resp.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
                let weak = compress::weak_etag(etag);
                resp.insert_header(header::ETAG, weak)?;
            }
        }
        return Ok(());
    }
    if !compress::compressible(status, &resp.headers) {
        return Ok(());
    }
    // Compressible for some viewer: every copy varies by Accept-Encoding.
    if !cache_policy::varies_by(&resp.headers, "accept-encoding") {
        resp.append_header(header::VARY, "Accept-Encoding")?;
    }
    let Some(coding) = ctx.compress else {
        return Ok(());
    };
    let encoder = super::compress::Encoder::new(coding)
        .map_err(|e| Error::explain(InternalError, format!("cannot start {}: {e}", coding.token())))?;
    ctx.encoder = Some(encoder);
    resp.insert_header(header::CONTENT_ENCODING, coding.token())?;
    resp.remove_header(&header::CONTENT_LENGTH);
    if let Some(etag) = resp.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        let weak = compress::weak_etag(etag);
        resp.insert_header(header::ETAG, weak)?;
    }
    Ok(())
}

/// Compresses a chunk of the origin's body with the response's encoder, if it has one
/// (`end_of_stream`: the last, which ends the encoding).
pub(crate) fn encode(body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut Ctx) -> Result<()> {
    if let Some(encoder) = ctx.encoder.as_mut() {
        let input = body.as_deref().unwrap_or(&[]);
        if !input.is_empty() || end_of_stream {
            let out = encoder
                .encode(input, end_of_stream)
                .map_err(|e| Error::explain(InternalError, format!("compressing the response: {e}")))?;
            *body = Some(out);
        }
        if end_of_stream {
            // Finished: the encoder's trailer is out; nothing may follow it.
            ctx.encoder = None;
        }
    }
    Ok(())
}

/// How long the behavior's cache keeps an origin's answer to a request with `req_headers`,
pub(crate) fn cache_ttl(
    ctx: &Ctx,
    req_headers: &http::HeaderMap,
    resp: &ResponseHeader,
    now: SystemTime,
) -> Option<cache_policy::Ttl> {
    let (state, behavior) = (ctx.state.as_ref()?, ctx.behavior()?);
    let origin = ctx.origin.as_ref()?;
    let authorization = req_headers.contains_key(header::AUTHORIZATION);
    // A bucket answers the viewer's own credentials only under `signing: no-override`
    // (`origin_request`): what they unlocked is never stored for other viewers, whatever
    // the object's Cache-Control says (object metadata speaks of the object, not of who
    // may read it).
    if authorization && origin.signing == Signing::NoOverride && !matches!(origin.kind, OriginKind::Http { .. }) {
        return None;
    }
    // Otherwise the bucket store never sees the viewer's Authorization (the edge signs), so
    // only HTTP origins answer authorized requests (RFC 9111 §3.5).
    let authorization = authorization && matches!(origin.kind, OriginKind::Http { .. });
    let dist = &state.config.distributions[ctx.dist];
    let status = resp.status.as_u16();
    // Under RFC 9111's rules only a custom error response caches an error on its own.
    let error_ttl = match (behavior.cache.rfc9111, dist.error_response(status)) {
        (true, None) => std::time::Duration::ZERO,
        _ => dist.error_ttl(status),
    };
    cache_policy::ttl(
        &behavior.cache,
        resp.status,
        &resp.headers,
        authorization,
        error_ttl,
        now,
    )
}

/// The variance of a stored response (`stored`: its headers) for a request: pingora keeps
/// one entry per variance under the same primary key.
pub(crate) fn variance(stored: &http::HeaderMap, req: &http::HeaderMap) -> Option<HashBinary> {
    Some(super::variance::variance_key(stored, req))
}

/// The edge's own response headers: `X-Cache`, `Via` and the request id.
pub(crate) fn decorate(resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
    use http::{HeaderName, HeaderValue};
    // Static names and values where they are known (this runs on every response).
    const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
    const ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    let x_cache = ctx.cache_result.x_cache();
    resp.insert_header(X_CACHE, x_cache)?;
    resp.append_header(header::VIA, HeaderValue::from_static(VIA))?;
    resp.insert_header(
        ID,
        HeaderValue::try_from(ctx.request_id.as_str()).map_err(|e| Error::because(InternalError, "request id", e))?,
    )?;
    Ok(())
}

/// An app's `Location` or `Content-Location` naming the app's own address becomes a path
/// on the host the viewer used (`policy::forwarded::internal_redirect`).
fn unleak_location(resp: &mut ResponseHeader, origin: &Origin) -> Result<()> {
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(location) = resp.headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(path) = forwarded::internal_redirect(location, &internal_authorities(origin)) {
            resp.insert_header(name, path)?;
        }
    }
    Ok(())
}

/// The addresses an `http` origin (or a group's members) may name itself by.
fn internal_authorities(origin: &Origin) -> Vec<String> {
    match &origin.kind {
        OriginKind::Http { upstreams, .. } => upstreams
            .iter()
            .flat_map(|u| forwarded::internal_authorities(u.address, &u.sni))
            .collect(),
        OriginKind::Group { primary, secondary, .. } => {
            let mut all = internal_authorities(primary);
            all.extend(internal_authorities(secondary));
            all
        }
        OriginKind::Bucket { .. } | OriginKind::S3 { .. } => Vec::new(),
    }
}

/// Whether a cached behavior's answer can depend on the viewer's `Origin`, so browsers must
/// be told `Vary: Origin`: the behavior answers CORS itself (a response-headers policy) or
/// sends the origin an `Origin`, or the origin is a bucket (its CORS rules can change through
/// the S3 API at any time). An `http` origin whose answer depends on it says so in its own
/// `Vary`, which is left as it is.
fn answer_may_depend_on_origin(ctx: &Ctx) -> bool {
    fn bucket(origin: &Origin) -> bool {
        match &origin.kind {
            OriginKind::Bucket { .. } | OriginKind::S3 { .. } => true,
            OriginKind::Group { primary, secondary, .. } => bucket(primary) || bucket(secondary),
            OriginKind::Http { .. } => false,
        }
    }
    let behavior = ctx.behavior();
    behavior.is_some_and(|b| b.headers.as_ref().is_some_and(|h| h.cors.is_some()) || b.inject_origin.is_some())
        || ctx.origin.as_deref().is_some_and(bucket)
}

/// The last changes to a response for the viewer, from the cache or the origin: the
/// behavior's response headers policy (`origin`: the request's Origin, for CORS), `Vary:
/// Origin` on a cached behavior whose answer can depend on it, and the edge's own headers.
pub(crate) fn viewer_headers(resp: &mut ResponseHeader, ctx: &Ctx, origin: Option<&str>) -> Result<()> {
    if let Some(policy) = ctx.behavior().and_then(|b| b.headers.as_ref()) {
        for change in crate::policy::headers_policy::changes(policy, origin, &resp.headers) {
            match change {
                crate::policy::headers_policy::Change::Set(n, v) => resp.insert_header(n, v)?,
                crate::policy::headers_policy::Change::Remove(n) => {
                    resp.remove_header(&n);
                }
            }
        }
    }
    // Targeted at the edge's cache (RFC 9213), kept with the stored copy, never sent on.
    for name in cache_policy::TARGETED {
        resp.remove_header(name);
    }
    // The viewer-response function sees the answer as the viewer would, before the edge's
    // own fields (which it may not change). A body it gives, or a failed call's answer,
    // replaces the one that would go out.
    if let (Some(f), Some(event), Some(state)) = (
        ctx.behavior().and_then(|b| b.functions.viewer_response.as_ref()),
        &ctx.viewer_event,
        &ctx.state,
    ) {
        let shaped = super::functions::viewer_response(state, f, resp, event, &ctx.request_id);
        if let Ok(Some(body)) = shaped {
            let _ = ctx.replaced_body.set(body);
        } else if let Err(e) = shaped {
            let body = e.body();
            let mut error = ResponseHeader::build(e.status, Some(4))?;
            error.insert_header(header::CONTENT_TYPE, "text/xml")?;
            error.insert_header(header::CONTENT_LENGTH, body.len())?;
            error.set_version(resp.version);
            *resp = error;
            let _ = ctx.replaced_body.set(body);
            return decorate(resp, ctx);
        }
    }
    if ctx.key.is_some() && answer_may_depend_on_origin(ctx) {
        // Tell browser caches too: without it, a copy cached for an <img> is reused for a
        // later fetch() with CORS, and the browser blocks it. (The edge's own cache keys
        // every variant by Origin whatever the answer says, `edge::variance`.)
        if !cache_policy::varies_by(&resp.headers, "origin") {
            resp.append_header(header::VARY, "Origin")?;
        }
    }
    decorate(resp, ctx)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::edge::ctx::CacheResult;
    use crate::edge::state::EdgeState;
    use crate::util::Clock;

    #[test]
    fn every_response_says_its_result_via_and_request_id() {
        for result in [
            CacheResult::Hit,
            CacheResult::Miss,
            CacheResult::RefreshHit,
            CacheResult::Error,
            CacheResult::Redirect,
        ] {
            let mut ctx = Ctx::new();
            ctx.cache_result = result;
            ctx.request_id = "0123456789abcdef0123456789abcdef".into();
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.append_header("via", "1.1 upstream").unwrap();
            decorate(&mut resp, &ctx).unwrap();
            assert_eq!(
                resp.headers["x-cache"],
                format!("{} from {}", result.as_str(), crate::telemetry::EDGE_NAME)
            );
            let via: Vec<_> = resp.headers.get_all("via").iter().collect();
            assert_eq!(via, ["1.1 upstream", "1.1 homefront"]);
            assert_eq!(resp.headers["x-amz-cf-id"], "0123456789abcdef0123456789abcdef");
        }
    }

    #[test]
    fn what_a_viewers_own_credentials_unlock_at_a_bucket_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("origin.key"), "secret").unwrap();
        let text = r#"
origins:
  site: { bucket: site, signing: no-override }
  app: { http: "127.0.0.1:9999" }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "/app/*", origin: app }
      - { path_pattern: "*", origin: site }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:9000"
  credentials: [ { access_key_id: k, secret_access_key_file: origin.key } ]
"#;
        let loaded = crate::config::load_str("t.yaml", text, dir.path()).unwrap();
        let state = Arc::new(EdgeState::new(Arc::new(loaded.config), Clock::System));
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("cache-control", "public, max-age=60").unwrap();
        let mut authorized = http::HeaderMap::new();
        authorized.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=viewer/...".parse().unwrap(),
        );
        let ttl = |behavior: usize, headers: &http::HeaderMap| {
            let mut ctx = Ctx::new();
            ctx.state = Some(state.clone());
            (ctx.dist, ctx.behavior) = (0, behavior);
            ctx.origin = Some(state.config.distributions[0].behaviors[behavior].origin.clone());
            cache_ttl(&ctx, headers, &resp, SystemTime::now()).map(|t| t.fresh)
        };
        // The bucket: stored for the edge's own signature, never for a viewer's.
        assert_eq!(ttl(1, &http::HeaderMap::new()), Some(Duration::from_secs(60)));
        assert_eq!(ttl(1, &authorized), None);
        // An app saying `public` for an authorized request may be stored (RFC 9111 §3.5).
        assert_eq!(ttl(0, &authorized), Some(Duration::from_secs(60)));
    }
}
