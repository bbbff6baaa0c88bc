//! The origin request: the peer it goes to (pools, attempts, failover), its target, the
//! origin request policy and the edge's own headers, and SigV4 signing for bucket origins.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{header, Method, Uri};
use pingora::cache::CacheMeta;
use pingora::http::RequestHeader;
use pingora::prelude::*;

use super::ctx::Ctx;
use super::shape::{REQUEST_ID_HEADER, VIA};
use super::state::EdgeState;
use crate::config::model::{Origin, OriginKind, Signing};
use crate::policy::cache_policy;
use crate::policy::forwarded;
use crate::policy::sigv4;
use crate::telemetry;

impl Ctx {
    /// Switches a group's requests to its secondary, once: GET, HEAD and OPTIONS only.
    pub(crate) fn fail_over(&mut self, method: &Method) -> bool {
        if self.failed_over || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return false;
        }
        let Some(OriginKind::Group { secondary, .. }) = self.behavior().map(|b| b.origin.kind.clone()) else {
            return false;
        };
        let Some(target) = target_for(&secondary, &self.object_path, self.http_query.as_deref()) else {
            return false;
        };
        self.release_upstream();
        self.failed_over = true;
        self.signed_as = None;
        self.origin = Some(secondary);
        self.tried.clear();
        self.attempts = 0;
        self.upstream_target = target;
        true
    }

    /// The peer for the next origin request: the upstream its origin's pool picks (held
    /// in flight until released), counted as an origin request.
    pub(crate) fn next_peer(&mut self) -> Result<Box<HttpPeer>> {
        let state = self.state.clone().ok_or_else(|| Error::new(InternalError))?;
        let origin = self.origin.clone().ok_or_else(|| Error::new(InternalError))?;
        self.release_upstream();
        let (peer, upstream) = origin_peer(&state, &origin, self.object_path.as_bytes(), &self.tried)?;
        if let Some((pool, i)) = upstream {
            pool.acquire(i);
            self.upstream = Some((pool, i));
        }
        self.attempts += 1;
        telemetry::ORIGIN_REQUESTS
            .with_label_values(&[origin.name.as_str(), self.upstream_label()])
            .inc();
        self.origin_started.get_or_insert_with(Instant::now);
        Ok(peer)
    }

    /// A connection to the upstream in use failed: counted, and the upstream marked down
    /// when its origin has a health check (which alone can bring it back; without one,
    /// only this request moves on to another upstream). Returns the origin.
    pub(crate) fn connect_failed(&mut self, e: &Error) -> Option<Arc<Origin>> {
        let upstream = self.upstream_label().to_string();
        if let Some((pool, i)) = self.upstream.take() {
            pool.release(i);
            if pool.health_check.is_some() && pool.set_healthy(i, false) {
                tracing::warn!(origin = %pool.origin, upstream = %upstream, error = %e, "upstream marked down: it refused a connection");
                telemetry::ORIGIN_HEALTHY
                    .with_label_values(&[pool.origin.as_str(), upstream.as_str()])
                    .set(0);
            }
            self.tried.push(i);
        }
        let origin = self.origin.clone()?;
        let reason = if matches!(e.etype(), ConnectTimedout) {
            "timeout"
        } else {
            "connect"
        };
        telemetry::ORIGIN_FAILURES
            .with_label_values(&[origin.name.as_str(), upstream.as_str(), reason])
            .inc();
        Some(origin)
    }

    /// An exchange that failed on a new connection before any answer came back (not a
    /// timeout: the upstream reset it, e.g. as it died) may go to another upstream, within
    /// the origin's connection attempts, as nginx's `proxy_next_upstream error` sends it:
    /// `true` when it may, with the upstream in use left out of the next pick.
    pub(crate) fn retry_elsewhere(&mut self, e: &Error) -> bool {
        let attempts_left = self
            .origin
            .as_ref()
            .is_some_and(|o| self.attempts < o.timeouts.attempts);
        if !attempts_left || matches!(e.etype(), ReadTimedout | WriteTimedout) {
            return false;
        }
        if let Some((_, i)) = &self.upstream {
            self.tried.push(*i);
        }
        true
    }

    /// An exchange with the upstream in use failed after connecting (`timeout` or `error`
    /// in `homefront_origin_failures_total`).
    pub(crate) fn exchange_failed(&self, e: &Error) {
        let reason = if matches!(e.etype(), ReadTimedout | WriteTimedout) {
            "timeout"
        } else {
            "error"
        };
        let origin = self.origin.as_ref().map_or("", |o| o.name.as_str());
        telemetry::ORIGIN_FAILURES
            .with_label_values(&[origin, self.upstream_label(), reason])
            .inc();
    }
}

/// The origin request policy and the edge's own headers, applied to the request header that
/// goes to the origin (a copy of the viewer's). `cache`: the cache is in use (with the stored
/// entry being revalidated, if any); `client_ip`: the viewer's peer address.
pub(crate) fn origin_request(
    upstream: &mut RequestHeader,
    ctx: &mut Ctx,
    cache: Option<Option<&CacheMeta>>,
    client_ip: Option<std::net::IpAddr>,
    is_https: bool,
) -> Result<()> {
    let state = ctx.state.clone().ok_or_else(|| Error::new(InternalError))?;
    // Borrowed from this generation's config, not from `ctx` (which changes below).
    let behavior = state
        .config
        .distributions
        .get(ctx.dist)
        .and_then(|d| d.behaviors.get(ctx.behavior))
        .ok_or_else(|| Error::new(InternalError))?;
    let origin = ctx.origin.clone().ok_or_else(|| Error::new(InternalError))?;
    let uri: Uri = ctx
        .upstream_target
        .parse()
        .map_err(|_| Error::explain(InternalError, "origin request target is not a valid URI"))?;
    upstream.set_uri(uri);
    if ctx.key.is_some() && matches!(upstream.method, Method::GET | Method::HEAD) {
        // The origin request policy: viewer headers outside the key and the policy stay
        // at the edge.
        for name in cache_policy::headers_not_forwarded(&behavior.cache, &upstream.headers) {
            upstream.remove_header(&name);
        }
    }
    if let Some(meta) = cache {
        // Full GETs only, with the stored entry's validators when revalidating.
        pingora::cache::filters::upstream::request_filter(upstream, meta);
        if let Some(ae) = upstream.headers.get(header::ACCEPT_ENCODING) {
            let normalized = super::variance::normalize_accept_encoding(ae.to_str().unwrap_or(""));
            upstream.insert_header(header::ACCEPT_ENCODING, normalized)?;
        }
    }
    if let Some(origin) = &behavior.inject_origin {
        if upstream.headers.get(header::ORIGIN).is_none() {
            upstream.insert_header(header::ORIGIN, origin.clone())?;
        }
    }
    if let Some(k) = &ctx.key {
        // Only keyed cookies (and those the origin request policy adds) reach the
        // origin of a caching behavior.
        upstream.remove_header(&header::COOKIE);
        if let Some(c) = &k.forward_cookies {
            upstream.insert_header(header::COOKIE, c.as_str())?;
        }
    }

    // Always sent, as CloudFront does: X-Forwarded-For, Via and the request id; to an app,
    // the rest of what `policy::forwarded` describes.
    let authority = ctx.canon.as_ref().map_or("", |c| c.authority.as_str());
    let incoming: Vec<&str> = upstream
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let hop = forwarded::Hop {
        peer: client_ip,
        https: is_https,
        authority,
    };
    let fwd = forwarded::fields(incoming, hop);
    match &fwd.x_forwarded_for {
        Some(xff) => upstream.insert_header("x-forwarded-for", xff.as_str())?,
        None => {
            upstream.remove_header("x-forwarded-for");
        }
    }
    let via = match upstream.headers.get(header::VIA).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev}, {VIA}"),
        _ => VIA.to_string(),
    };
    upstream.insert_header(header::VIA, via)?;
    upstream.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
    for (name, value) in &origin.custom_headers {
        upstream.insert_header(name.clone(), value.clone())?;
    }

    match &origin.kind {
        OriginKind::Bucket { .. } | OriginKind::S3 { .. } => {
            // Viewer credentials and S3 control headers never reach the bucket, unless
            // the origin's signing is no-override and the viewer signed the request.
            let keep_viewer =
                origin.signing == Signing::NoOverride && upstream.headers.contains_key(header::AUTHORIZATION);
            upstream.remove_header(&header::COOKIE);
            if !keep_viewer {
                upstream.remove_header(&header::AUTHORIZATION);
                let amz: Vec<_> = upstream
                    .headers
                    .keys()
                    .filter(|n| n.as_str().starts_with("x-amz-"))
                    .cloned()
                    .collect();
                for name in amz {
                    upstream.remove_header(&name);
                }
            }
            if keep_viewer {
                // The viewer's signature cannot cover the edge's request id, and a strict
                // S3 server refuses an unsigned x-amz-* header.
                upstream.remove_header(REQUEST_ID_HEADER);
            } else {
                upstream.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
            }
            let sign = !keep_viewer && origin.signing != Signing::Never;
            ctx.signed_as = sign_for_origin(upstream, &origin, &state, sign)?;
        }
        OriginKind::Http { .. } => {
            // TLS offload: the app sees the viewer's host (canonical, as the edge routed
            // it), and learns the scheme and the port the viewer used here. What a viewer
            // sent in these fields is replaced.
            upstream.insert_header(header::FORWARDED, fwd.forwarded.as_str())?;
            upstream.insert_header("x-forwarded-proto", fwd.proto)?;
            upstream.insert_header("x-forwarded-port", fwd.port)?;
            match &fwd.host {
                Some(host) => {
                    upstream.insert_header(header::HOST, host.as_str())?;
                    upstream.insert_header("x-forwarded-host", host.as_str())?;
                }
                None => {
                    upstream.remove_header(&header::HOST);
                    upstream.remove_header("x-forwarded-host");
                }
            }
        }
        OriginKind::Group { .. } => return Err(Error::explain(InternalError, "a group is not reached directly")),
    }
    Ok(())
}

/// The origin request path for an object path through `origin` (no query string); `None`
/// when it would name no object (an empty bucket key would list the bucket).
pub(crate) fn origin_target(origin: &Origin, object_path: &str) -> Option<String> {
    let key = format!("{}{}", origin.origin_path, object_path);
    match &origin.kind {
        OriginKind::Bucket { bucket } => (key.len() > 1).then(|| format!("/{bucket}{key}")),
        OriginKind::S3 {
            bucket, virtual_host, ..
        } => (key.len() > 1).then(|| if *virtual_host { key } else { format!("/{bucket}{key}") }),
        OriginKind::Http { .. } => Some(key),
        OriginKind::Group { .. } => None,
    }
}

/// The request target for `origin`: the object path under its origin path, plus the query
/// string for HTTP origins (bucket origins get none: it would select other S3 operations).
pub(crate) fn target_for(origin: &Origin, object_path: &str, http_query: Option<&str>) -> Option<String> {
    let mut t = origin_target(origin, object_path)?;
    if let (OriginKind::Http { .. }, Some(q)) = (&origin.kind, http_query) {
        t.push('?');
        t.push_str(q);
    }
    Some(t)
}

/// Where a request to `origin` goes: the bucket store, the s3 endpoint, or the upstream of
/// an http origin its pool picks for `key` among those not `tried` (any upstream again when
/// all were), with the origin's timeouts.
#[allow(clippy::type_complexity)]
pub(crate) fn origin_peer(
    state: &EdgeState,
    origin: &Origin,
    key: &[u8],
    tried: &[usize],
) -> Result<(Box<HttpPeer>, Option<(Arc<super::pool::Pool>, usize)>)> {
    let mut upstream = None;
    let mut peer = match &origin.kind {
        OriginKind::Bucket { .. } => {
            let (addr, _) = state
                .bucket_store
                .as_ref()
                .ok_or_else(|| Error::explain(InternalError, "bucket origin without a bucket store"))?;
            HttpPeer::new(*addr, false, String::new())
        }
        OriginKind::S3 { address, tls, sni, .. } => HttpPeer::new(*address, *tls, sni.clone()),
        OriginKind::Http { .. } => {
            let pool = state
                .pools
                .get(&origin.name)
                .ok_or_else(|| Error::explain(InternalError, "http origin without its pool"))?;
            let i = pool
                .pick(key, tried)
                .or_else(|| pool.pick(key, &[]))
                .ok_or_else(|| Error::explain(InternalError, "http origin without upstreams"))?;
            let u = &pool.upstreams[i];
            upstream = Some((pool.clone(), i));
            HttpPeer::new(u.address, u.tls, u.sni.clone())
        }
        OriginKind::Group { .. } => {
            return Err(Error::explain(InternalError, "a group is not reached directly"));
        }
    };
    peer.options.connection_timeout = Some(origin.timeouts.connect);
    peer.options.total_connection_timeout = Some(origin.timeouts.connect);
    // Each wait for the origin: its answer's first byte and each later read, and each
    // write of the request body (as the pass path).
    peer.options.read_timeout = Some(origin.timeouts.response);
    peer.options.write_timeout = Some(origin.timeouts.response);
    Ok((Box::new(peer), upstream))
}

/// Signs a request to the built-in bucket store with SigV4 (the edge's own credential).
/// Sets the Host an S3-style origin expects and, when `sign`, signs the request with SigV4
/// (the built-in store with the first `origin_server` credential, an `s3` origin with its own).
/// Returns the access key id it signed with.
pub(crate) fn sign_for_origin(
    req: &mut RequestHeader,
    origin: &Origin,
    state: &EdgeState,
    sign: bool,
) -> Result<Option<String>> {
    let (host, region, cred) = match &origin.kind {
        OriginKind::Bucket { .. } => {
            let (addr, cred) = state.bucket_store.as_ref().ok_or_else(|| Error::new(InternalError))?;
            (addr.to_string(), "us-east-1", Some(cred))
        }
        OriginKind::S3 {
            host,
            region,
            credential,
            ..
        } => (host.clone(), region.as_str(), credential.as_ref()),
        OriginKind::Http { .. } | OriginKind::Group { .. } => return Ok(None),
    };
    req.insert_header(header::HOST, host.as_str())?;
    let Some(cred) = cred.filter(|_| sign) else {
        return Ok(None);
    };
    // Every x-amz-* header the request carries is signed (strict S3 servers refuse an
    // unsigned one), the request id included; the signer adds its own two.
    let amz: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(n, _)| {
            n.as_str().starts_with("x-amz-") && !matches!(n.as_str(), "x-amz-date" | "x-amz-content-sha256")
        })
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let sig = sigv4::sign(
        &sigv4::SignInput {
            method: req.method.as_str(),
            path: req.uri.path(),
            query: req.uri.query(),
            host: &host,
            extra_headers: &amz,
            payload_hash: sigv4::UNSIGNED_PAYLOAD,
            region,
            service: "s3",
        },
        &cred.access_key_id,
        &cred.secret_access_key,
        SystemTime::now(),
    );
    req.insert_header("x-amz-date", sig.amz_date)?;
    req.insert_header("x-amz-content-sha256", sigv4::UNSIGNED_PAYLOAD)?;
    req.insert_header(header::AUTHORIZATION, sig.authorization)?;
    Ok(Some(cred.access_key_id.clone()))
}
