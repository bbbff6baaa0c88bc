//! Accounting: the metrics and the access log line of each finished exchange, whichever
//! path served it, and request ids.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use super::canonical::cookie_header;
use super::ctx::Ctx;
use crate::telemetry;
use crate::telemetry::access_log::{AccessLogger, Record};

/// The metrics and the access log line of one finished exchange. `stale`: a stale entry
/// was served.
pub(crate) fn account(access_log: Option<&AccessLogger>, ex: &Exchange, ctx: &Ctx, stale: bool) {
    let status = ex.resp.map(|r| r.status.as_u16()).unwrap_or(0);
    let origin = ctx.origin.as_ref().map(|o| o.name.as_str());
    let (dist, behavior, origin) = match (ctx.state.as_ref(), ctx.behavior()) {
        (Some(s), Some(b)) => (
            s.config.distributions[ctx.dist].name.as_str(),
            b.path_pattern_text.as_str(),
            origin,
        ),
        (Some(s), None) if ctx.dist < s.config.distributions.len() => {
            (s.config.distributions[ctx.dist].name.as_str(), "-", None)
        }
        _ => ("-", "-", None),
    };
    telemetry::REQUESTS
        .with_label_values(&[
            dist,
            behavior,
            telemetry::status_class(status),
            ctx.cache_result.as_str(),
        ])
        .inc();
    telemetry::RESPONSE_BYTES
        .with_label_values(&[dist])
        .inc_by(ex.body_sent as u64);
    if ctx.key.is_some() {
        let source = if ctx.cache_result.from_cache() {
            "cache"
        } else {
            "origin"
        };
        telemetry::CACHE_BYTES
            .with_label_values(&[dist, behavior, source])
            .inc_by(ex.body_sent as u64);
        if stale {
            let reason = if ctx.stale_on_error {
                "origin_error"
            } else {
                "revalidating"
            };
            telemetry::CACHE_STALE
                .with_label_values(&[dist, behavior, reason])
                .inc();
        }
    }
    if let (Some(logger), Some(state)) = (access_log, &ctx.state) {
        if let Some(format) = state.config.distributions.get(ctx.dist).and_then(|d| d.access_log) {
            logger.log(format, access_record(ex, ctx, dist, status));
        }
    }
    if let (Some(started), Some(origin)) = (ctx.origin_started, origin) {
        telemetry::ORIGIN_DURATION
            .with_label_values(&[origin])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// One finished exchange as the metrics and the access log see it, whichever path served it.
pub(crate) struct Exchange<'a> {
    pub req: &'a RequestHeader,
    pub resp: Option<&'a ResponseHeader>,
    pub peer: Option<SocketAddr>,
    pub ssl: Option<Arc<pingora::protocols::tls::SslDigest>>,
    pub body_sent: usize,
    pub body_read: usize,
}

impl<'a> Exchange<'a> {
    pub(crate) fn of(session: &'a Session) -> Exchange<'a> {
        Exchange {
            req: session.req_header(),
            resp: session.response_written(),
            peer: session.client_addr().and_then(|a| a.as_inet()).copied(),
            ssl: session.digest().and_then(|d| d.ssl_digest.clone()),
            body_sent: session.body_bytes_sent(),
            body_read: session.body_bytes_read(),
        }
    }
}

pub(crate) fn access_record(ex: &Exchange, ctx: &Ctx, dist: &str, status: u16) -> Record {
    let req = ex.req;
    let h = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let rh = |name: &str| {
        ex.resp
            .and_then(|r| r.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let peer = ex.peer;
    let ssl = ex.ssl.as_ref();
    let canon = ctx.canon.as_ref();
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req.uri.to_string().len()
        + 16;
    let range = rh("content-range").and_then(|r| {
        let (span, _) = r.strip_prefix("bytes ")?.split_once('/')?;
        let (a, b) = span.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    });
    Record {
        distribution: dist.to_string(),
        time: ctx.started_at,
        sc_bytes: ex.body_sent as u64,
        c_ip: peer.map(|a| a.ip().to_string()).unwrap_or_default(),
        c_port: peer.map(|a| a.port()).unwrap_or(0),
        method: req.method.as_str().to_string(),
        host: dist.to_string(),
        uri_stem: canon.map_or_else(
            || String::from_utf8_lossy(req.raw_path()).into_owned(),
            |c| c.path.clone(),
        ),
        status,
        referer: h("referer"),
        user_agent: h("user-agent"),
        query: match canon {
            Some(c) => c.query.clone(),
            None => req.uri.query().map(str::to_string),
        },
        cookie: cookie_header(req),
        result: ctx.cache_result.as_str().to_string(),
        request_id: ctx.request_id.clone(),
        host_header: match canon {
            Some(c) => Some(c.authority.clone()),
            None => req
                .headers
                .get(header::HOST)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        },
        protocol: if ssl.is_some() { "https" } else { "http" },
        cs_bytes: (header_bytes + ex.body_read) as u64,
        time_taken: ctx.started.elapsed().as_secs_f64(),
        forwarded_for: h("x-forwarded-for"),
        ssl_protocol: ssl.map(|s| s.version.to_string()),
        ssl_cipher: ssl.map(|s| s.cipher.to_string()),
        protocol_version: match req.version {
            http::Version::HTTP_2 => "HTTP/2.0".into(),
            http::Version::HTTP_10 => "HTTP/1.0".into(),
            _ => "HTTP/1.1".into(),
        },
        time_to_first_byte: ctx.first_byte.map(|t| t.duration_since(ctx.started).as_secs_f64()),
        content_type: rh("content-type"),
        content_len: rh("content-length").and_then(|v| v.parse().ok()),
        range,
    }
}
