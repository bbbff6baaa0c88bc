//! CloudFront Functions at the edge: a behavior's viewer-request function runs in `decide`
//! (after the viewer rules, before the CORS preflight, the signed-URL check and the cache
//! key), on the request's canonical form; what it returns becomes the request every later
//! stage reads (a new canonical form, new header fields) or the answer (a generated
//! response). Its viewer-response function runs in `shape::viewer_headers`, on every path,
//! hits included, for answers below 400. A call that fails is counted, logged with the
//! function's name, and answered as CloudFront answers it: 503 for an execution error or a
//! throttled function, 502 for invalid output.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use pingora::http::{RequestHeader, ResponseHeader};

use super::canonical::{self, Canonical};
use super::errors::EdgeError;
use super::state::EdgeState;
use crate::config::model::{Origin, OriginKind};
use crate::functions::event::{self, EventType, Generated, Returned};
use crate::functions::{Failure, FailureKind, Function};

/// What a viewer-request function made of a request.
pub(crate) enum Viewed {
    /// The request as it was.
    Same,
    /// A changed request: its header (the target and fields as the function left them), its
    /// canonical form, and the origin the function chose.
    Changed {
        header: Box<RequestHeader>,
        canon: Canonical,
        origin: Option<Arc<Origin>>,
    },
    /// An answer the function generated.
    Answer(Generated),
    Failed(EdgeError),
}

/// The request part of the events, kept for the viewer-response function.
#[derive(Debug, Clone)]
pub(crate) struct ViewerEvent {
    pub request: event::Request,
    pub ip: String,
    pub domain: String,
    pub distribution: String,
}

/// The event's context and viewer. Its `requestId` is left empty: the call is given it
/// apart ([`Function::run`]), so that events that differ only there are the same event.
fn event_of(kind: EventType, viewer: &ViewerEvent, response: Option<event::Response>) -> event::Event {
    event::Event {
        version: "1.0".into(),
        context: event::Context {
            distribution_domain_name: viewer.domain.clone(),
            distribution_id: viewer.distribution.clone(),
            event_type: kind.name().into(),
            request_id: String::new(),
        },
        viewer: event::Viewer { ip: viewer.ip.clone() },
        request: viewer.request.clone(),
        response,
    }
}

/// The request part of the event for `req` (read through its canonical form).
pub(crate) fn viewer_event(
    req: &RequestHeader,
    canon: &Canonical,
    client: Option<std::net::IpAddr>,
    distribution: &str,
) -> ViewerEvent {
    ViewerEvent {
        request: event::request_of(req.method.as_str(), &canon.path, canon.query.as_deref(), &req.headers),
        ip: client.map(|c| c.to_string()).unwrap_or_default(),
        domain: canon.host.clone(),
        distribution: distribution.to_string(),
    }
}

/// The most results of pure calls a thread keeps (all functions together); when full, it
/// starts again empty.
const MEMO_ENTRIES: usize = 2048;

/// How many results are kept, and each by function id and event.
type Memo = (usize, HashMap<u64, HashMap<Box<str>, Rc<Returned>>>);

thread_local! {
    /// Results of pure calls (`Outcome::pure`: the result depends on the event alone), by
    /// function and event: the same event is answered without running the function again.
    /// A reload compiles new functions, under new ids.
    static MEMO: RefCell<Memo> = RefCell::new((0, HashMap::new()));
}

/// What `function` returns for the event `ev` (parsed as `kind` returns it) and the origin
/// it chose: from its run, or from an earlier pure run on the same event. Counted; the
/// function's log lines and a failure are logged with its name.
fn call(
    state: &EdgeState,
    function: &Function,
    kind: EventType,
    ev: &event::Event,
    request_id: &str,
) -> Result<(Rc<Returned>, Option<String>), Failure> {
    crate::telemetry::FUNCTION_INVOCATIONS
        .with_label_values(&[function.name(), kind.name()])
        .inc();
    let json = ev.to_json();
    let known = MEMO.with(|m| {
        m.borrow()
            .1
            .get(&function.id())
            .and_then(|f| f.get(json.as_str()))
            .cloned()
    });
    if let Some(returned) = known {
        return Ok((returned, None));
    }
    let out = function.run(&json, request_id, state.clock.now().saturating_mul(1000));
    crate::telemetry::FUNCTION_COMPUTE
        .with_label_values(&[function.name()])
        .observe(out.cpu.as_secs_f64());
    for line in &out.logs {
        tracing::info!(function = function.name(), request_id, "{line}");
    }
    let result = out.result?;
    let returned = Rc::new(match kind {
        EventType::ViewerRequest => event::returned_by_request(result).map_err(invalid)?,
        EventType::ViewerResponse => Returned::Response(event::returned_by_response(result).map_err(invalid)?),
    });
    if out.pure {
        MEMO.with(|m| {
            let (count, map) = &mut *m.borrow_mut();
            if *count >= MEMO_ENTRIES {
                map.clear();
                *count = 0;
            }
            map.entry(function.id())
                .or_default()
                .insert(json.into(), returned.clone());
            *count += 1;
        });
    }
    Ok((returned, out.origin))
}

/// The edge's answer to a failed call, counted and logged.
pub(crate) fn failed(function: &Function, kind: EventType, failure: &Failure, request_id: &str) -> EdgeError {
    crate::telemetry::FUNCTION_ERRORS
        .with_label_values(&[function.name(), kind.name(), failure.kind.code()])
        .inc();
    tracing::warn!(
        function = function.name(),
        event = kind.name(),
        request_id,
        "CloudFront function failed: {failure}"
    );
    let status = match failure.kind {
        FailureKind::Validation => 502,
        FailureKind::Execution | FailureKind::Throttled => 503,
    };
    EdgeError::new(
        status,
        failure.kind.code(),
        "The CloudFront function associated with the CloudFront distribution is invalid or could not run.",
    )
}

fn invalid(message: String) -> Failure {
    Failure::new(FailureKind::Validation, message)
}

/// Runs a viewer-request function on a request (`viewer`: its event part).
pub(crate) fn viewer_request(
    state: &EdgeState,
    function: &Function,
    req: &RequestHeader,
    viewer: &ViewerEvent,
    https: bool,
    request_id: &str,
) -> Viewed {
    let kind = EventType::ViewerRequest;
    let ev = event_of(kind, viewer, None);
    let fail = |f: Failure| Viewed::Failed(failed(function, kind, &f, request_id));
    let (returned, chosen) = match call(state, function, kind, &ev, request_id) {
        Ok(r) => r,
        Err(f) => return fail(f),
    };
    let after = match &*returned {
        Returned::Response(r) => {
            return match event::generated(r) {
                Ok(g) => Viewed::Answer(g),
                Err(m) => fail(invalid(m)),
            }
        }
        Returned::Request(r) => r,
    };
    let origin = match chosen.as_deref().map(|o| chosen_origin(state, o)) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(m)) => return fail(invalid(m)),
    };
    let edit = match event::request_edit(&viewer.request, after, &req.headers) {
        Ok(e) => e,
        Err(m) => return fail(invalid(m)),
    };
    if edit == event::RequestEdit::default() && origin.is_none() {
        return Viewed::Same;
    }
    let mut header = Box::new(req.clone());
    if let Some(target) = &edit.target {
        match http::Uri::try_from(target.as_str()) {
            Ok(uri) => header.set_uri(uri),
            Err(_) => return fail(invalid(format!("invalid uri or querystring: {target:?}"))),
        }
    }
    if let Some(fields) = edit.headers {
        let names: Vec<http::HeaderName> = header.headers.keys().cloned().collect();
        for name in names {
            header.remove_header(&name);
        }
        for (name, value) in fields.iter() {
            if header.append_header(name.clone(), value.clone()).is_err() {
                return fail(invalid(format!("invalid header {name}")));
            }
        }
    }
    // The changed request gets its canonical form by the same rules as the viewer's.
    let canon = match canonical::canonicalize(&canonical::Raw::of(&header, https)) {
        Ok(c) => c,
        Err(e) => return fail(invalid(format!("the returned request is refused: {}", e.message))),
    };
    Viewed::Changed { header, canon, origin }
}

/// The origin a function chose (`{"select": id}` or `{"update": {"domainName": ...}}`): one
/// of the configured origins, by name, or (for `updateRequestOrigin`) by an upstream's or
/// an S3 endpoint's host name. A function reaches no other host.
fn chosen_origin(state: &EdgeState, choice: &str) -> Result<Arc<Origin>, String> {
    let value: serde_json::Value = serde_json::from_str(choice).map_err(|e| e.to_string())?;
    let find = |name: &str, by_host: bool| {
        state.config.origins.iter().find(|o| {
            o.name == name
                || by_host
                    && match &o.kind {
                        OriginKind::Http { upstreams, .. } => upstreams.iter().any(|u| u.sni == name),
                        OriginKind::S3 { host, .. } => host == name,
                        _ => false,
                    }
        })
    };
    if let Some(id) = value.get("select").and_then(|v| v.as_str()) {
        return find(id, false)
            .cloned()
            .ok_or_else(|| format!("selectRequestOriginById: no origin named '{id}'"));
    }
    if let Some(update) = value.get("update") {
        let Some(domain) = update.get("domainName").and_then(|v| v.as_str()) else {
            return Err("updateRequestOrigin: homefront changes the origin by domainName only".into());
        };
        return find(domain, true)
            .cloned()
            .ok_or_else(|| format!("updateRequestOrigin: no configured origin is '{domain}'"));
    }
    Err("createRequestOriginGroup is not supported: configure an origin group instead".into())
}

/// Runs a viewer-response function on `resp` (below 400; others are not given to it, as on
/// CloudFront; `head`: the request is a HEAD). `Ok(Some(body))`: the function replaced the
/// body with this one. `Err`: the call failed; the answer is that error.
pub(crate) fn viewer_response(
    state: &EdgeState,
    function: &Function,
    resp: &mut ResponseHeader,
    viewer: &ViewerEvent,
    request_id: &str,
) -> Result<Option<bytes::Bytes>, EdgeError> {
    let status = resp.status.as_u16();
    if status >= 400 {
        return Ok(None);
    }
    let kind = EventType::ViewerResponse;
    let before = event::response_of(status, resp.get_reason_phrase().unwrap_or(""), &resp.headers);
    let ev = event_of(kind, viewer, Some(before.clone()));
    let fail = |f: Failure| failed(function, kind, &f, request_id);
    let (returned, _) = call(state, function, kind, &ev, request_id).map_err(fail)?;
    let Returned::Response(after) = &*returned else {
        return Err(fail(invalid(
            "a viewer-response function must return the response".into(),
        )));
    };
    let edit = event::response_edit(&before, after, &resp.headers).map_err(|m| fail(invalid(m)))?;
    if let Some((status, reason)) = edit.status {
        resp.set_status(status)
            .map_err(|_| fail(invalid("invalid status".into())))?;
        if let Some(r) = reason {
            let _ = resp.set_reason_phrase(Some(&r));
        }
    }
    if let Some(fields) = edit.headers {
        let names: Vec<http::HeaderName> = resp.headers.keys().cloned().collect();
        for name in names {
            resp.remove_header(&name);
        }
        for (name, value) in fields.iter() {
            resp.append_header(name.clone(), value.clone())
                .map_err(|_| fail(invalid(format!("invalid header {name}"))))?;
        }
    }
    // A new body (not for an answer that has none; a HEAD gets its length): framed by its
    // length, as it is.
    let bodiless = matches!(resp.status.as_u16(), 204 | 304);
    if let (Some(body), false) = (edit.body, bodiless) {
        resp.remove_header(&http::header::TRANSFER_ENCODING);
        resp.remove_header(&http::header::CONTENT_ENCODING);
        resp.insert_header(http::header::CONTENT_LENGTH, body.len())
            .map_err(|_| fail(invalid("invalid body".into())))?;
        return Ok(Some(body));
    }
    Ok(None)
}
