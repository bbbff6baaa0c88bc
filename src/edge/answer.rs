//! The edge's own answers, written in one place: errors (CloudFront-style XML), redirects,
//! CORS preflights, ACME validations and refusals. [`own_answer`] builds each with the
//! common decoration (`X-Cache`, `Via`, the request id) and the HEAD rule; the sinks
//! write it out: [`write_to_session`] for pingora's sessions (HTTP/1.1 and HTTP/2),
//! [`h1_answer`] for the connection loop's own HTTP/1.1 writes.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::{CacheResult, Ctx};
use super::errors::EdgeError;
use super::limits;
use super::shape::decorate;

/// The edge's own answer to a request, decided before any origin is asked.
pub(crate) enum OwnAnswer {
    /// An ACME HTTP-01 validation: the key authorization.
    Acme(String),
    Error(EdgeError),
    /// A viewer-protocol redirect to this location.
    Redirect(String),
    /// A CORS preflight: the headers, or `None` for 403.
    Preflight(Option<Vec<(&'static str, String)>>),
    /// A response a viewer-request function generated.
    Generated(crate::functions::event::Generated),
}

/// An answer the edge makes itself, ready for a sink.
pub(crate) struct Answer {
    pub header: ResponseHeader,
    /// Empty for a HEAD (the header keeps the length a GET would get).
    pub body: Bytes,
}

/// The edge's own answer `what` to a request (`ctx`: its context, which records the
/// result; `head`: it is a HEAD).
pub(crate) fn own_answer(what: &OwnAnswer, ctx: &mut Ctx, head: bool) -> Result<Answer> {
    let (mut header, body) = match what {
        OwnAnswer::Error(err) => {
            ctx.cache_result = CacheResult::Error;
            let body = err.body();
            let mut resp = ResponseHeader::build(err.status, Some(5))?;
            resp.insert_header(header::CONTENT_TYPE, "text/xml")?;
            resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
            if let Some(s) = err.retry_after {
                resp.insert_header(header::RETRY_AFTER, s.to_string())?;
            }
            (resp, body)
        }
        OwnAnswer::Redirect(location) => {
            ctx.cache_result = CacheResult::Redirect;
            let mut resp = ResponseHeader::build(301, Some(4))?;
            resp.insert_header(header::LOCATION, location.as_str())?;
            resp.insert_header(header::CONTENT_LENGTH, "0")?;
            (resp, Bytes::new())
        }
        OwnAnswer::Preflight(allowed) => {
            ctx.cache_result = CacheResult::Miss;
            let mut resp = ResponseHeader::build(if allowed.is_some() { 200 } else { 403 }, Some(8))?;
            for (name, value) in allowed.iter().flatten() {
                resp.insert_header(*name, value.as_str())?;
            }
            resp.insert_header(header::CONTENT_LENGTH, "0")?;
            (resp, Bytes::new())
        }
        OwnAnswer::Generated(g) => {
            ctx.cache_result = CacheResult::FunctionGenerated;
            let mut resp = ResponseHeader::build(g.status, Some(g.headers.len() + 4))?;
            if let Some(reason) = &g.reason {
                let _ = resp.set_reason_phrase(Some(reason));
            }
            for (name, value) in g.headers.iter() {
                resp.append_header(name.clone(), value.clone())?;
            }
            resp.insert_header(header::CONTENT_LENGTH, g.body.len())?;
            (resp, g.body.clone())
        }
        OwnAnswer::Acme(key_authorization) => {
            ctx.cache_result = CacheResult::Miss;
            let mut resp = ResponseHeader::build(200, Some(4))?;
            resp.insert_header(header::CONTENT_TYPE, "text/plain")?;
            resp.insert_header(header::CONTENT_LENGTH, key_authorization.len())?;
            (resp, Bytes::from(key_authorization.clone()))
        }
    };
    decorate(&mut header, ctx)?;
    let body = if head { Bytes::new() } else { body };
    Ok(Answer { header, body })
}

/// The most of a request body read and dropped before the edge answers the request itself,
/// and for how long.
const DRAIN_MAX: usize = 1 << 20;
const DRAIN_FOR: Duration = Duration::from_secs(2);

/// Writes an answer to a pingora session (either HTTP version) and ends it.
///
/// A request body still on its way is read first (up to [`DRAIN_MAX`], for at most
/// [`DRAIN_FOR`]) and dropped: answering and closing under a viewer who is still sending
/// resets the connection (HTTP/1.1) or the stream (HTTP/2, where clients report a framing
/// error) before the viewer reads the answer.
pub(crate) async fn write_to_session(session: &mut Session, answer: Answer) -> Result<()> {
    if !session.is_body_done() {
        let _ = tokio::time::timeout(DRAIN_FOR, drain(session)).await;
    }
    let Answer { header, body } = answer;
    let ends = body.is_empty();
    session.write_response_header(Box::new(header), ends).await?;
    if !ends {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Reads the request body until its end or [`DRAIN_MAX`] bytes.
async fn drain(session: &mut Session) {
    let mut read = 0;
    while read <= DRAIN_MAX {
        match session.read_request_body().await {
            Ok(Some(piece)) => read += piece.len(),
            Ok(None) | Err(_) => return,
        }
    }
}

/// An answer as HTTP/1.1 bytes, into `out` (`keepalive`: the connection goes on after it).
pub(crate) fn h1_answer(answer: Answer, keepalive: bool, out: &mut BytesMut) -> Result<()> {
    let Answer { mut header, body } = answer;
    h1_head(&mut header, keepalive, out)?;
    out.extend_from_slice(&body);
    Ok(())
}

/// An HTTP/1.1 answer's head as pingora's session writes it: its `Date`, `Connection` as the
/// connection goes on (`keepalive`) or not, the status line and the fields, into `out`.
pub(crate) fn h1_head(resp: &mut ResponseHeader, keepalive: bool, out: &mut BytesMut) -> Result<()> {
    resp.insert_header(http::header::DATE, pingora::protocols::http::date::get_cached_date())?;
    resp.insert_header(http::header::CONNECTION, if keepalive { "keep-alive" } else { "close" })?;
    out.extend_from_slice(match resp.version {
        http::Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    out.extend_from_slice(resp.status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(resp.get_reason_phrase().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    resp.header_to_h1_wire(out);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The answer to a request the edge could not complete (`status`, from [`failure_status`]).
pub(crate) fn failure_answer(status: u16, group_exhausted: bool, body_limit: u64) -> EdgeError {
    match status {
        502 => EdgeError::new(
            502,
            "BadGateway",
            "The edge could not connect to the origin or the origin sent an invalid response.",
        ),
        504 if group_exhausted => EdgeError::new(
            504,
            "GatewayTimeout",
            "Neither origin of the group could answer the request.",
        ),
        504 => EdgeError::new(504, "GatewayTimeout", "The origin did not answer in time."),
        400 => EdgeError::new(400, "BadRequest", "The request could not be parsed."),
        408 => EdgeError::new(408, "RequestTimeout", "The request body did not arrive in time."),
        413 => limits::body_too_large(body_limit),
        s => EdgeError::new(s, "InternalError", "The edge could not complete the request."),
    }
}

/// The status of a failed request (0: none, the viewer is gone).
pub(crate) fn failure_status(e: &Error, group_exhausted: bool) -> u16 {
    match e.etype() {
        _ if group_exhausted => 504,
        HTTPStatus(code) => *code,
        // The viewer stopped sending its body (`limits.body_timeout`).
        ReadTimedout if e.esource() == &ErrorSource::Downstream => 408,
        ConnectTimedout | ReadTimedout | WriteTimedout => 504,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}
