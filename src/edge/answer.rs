//! The edge's own answers: errors (CloudFront-style XML), and the status of a request the
//! edge could not complete.

use bytes::Bytes;
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::ctx::Ctx;
use super::errors::EdgeError;
use super::limits;
use super::shape::decorate;

pub(crate) fn error_response(err: &EdgeError, ctx: &mut Ctx) -> Result<(ResponseHeader, Bytes)> {
    ctx.cache_result = "Error";
    let body = err.body();
    let mut resp = ResponseHeader::build(err.status, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, "text/xml")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    if let Some(s) = err.retry_after {
        resp.insert_header(header::RETRY_AFTER, s.to_string())?;
    }
    decorate(&mut resp, ctx)?;
    Ok((resp, body))
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
