//! The event object a CloudFront function gets and the request or response it returns, as
//! CloudFront's documentation defines them, and their mapping to and from HTTP. Pure: the
//! edge builds the event from the canonical request, and applies what comes back through
//! [`request_edit`] and [`response_edit`].
//!
//! - Header names are lower-case; a field sent more than once has `multiValue` (every value,
//!   the first also in `value`). `Cookie` is given as `cookies`, not as a header; in a
//!   response, `Set-Cookie` is given as `cookies` with each cookie's `attributes`.
//! - `uri` is the canonical path and `querystring` the canonical query's parameters, both
//!   as sent (percent-encoded): a function that joins `key=value` pairs again gets a valid
//!   query. A returned `querystring` may be an object or a string (the query as it is).
//! - A returned request changes only what it changed: an untouched `uri` and
//!   `querystring` keep the request's target byte for byte, untouched headers keep their
//!   order and spelling.
//! - The fields a function may not change (CloudFront's read-only and disallowed headers)
//!   are kept as they were; a returned request that changes one is invalid.

use std::collections::BTreeMap;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize};

/// One field: its (first) value, and every value when it has more than one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    #[serde(deserialize_with = "text")]
    pub value: String,
    #[serde(
        rename = "multiValue",
        alias = "multivalue",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub multi_value: Option<Vec<Single>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Single {
    #[serde(deserialize_with = "text")]
    pub value: String,
}

/// A cookie: its value and, in a response, its attributes (`Path=/; Secure`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cookie {
    #[serde(deserialize_with = "text")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
    #[serde(
        rename = "multiValue",
        alias = "multivalue",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub multi_value: Option<Vec<CookieValue>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CookieValue {
    #[serde(deserialize_with = "text")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
}

/// A value a function wrote: a string, or a number or boolean (as JavaScript would print it).
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "a value must be a string, not {other}"
        ))),
    }
}

pub type Fields = BTreeMap<String, Field>;
pub type Cookies = BTreeMap<String, Cookie>;

/// A request's query string: parameters, or (as a function may return it) the query as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Query {
    Fields(Fields),
    Text(String),
}

impl Default for Query {
    fn default() -> Self {
        Query::Fields(Fields::new())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    pub uri: String,
    #[serde(default)]
    pub querystring: Query,
    #[serde(default)]
    pub headers: Fields,
    #[serde(default)]
    pub cookies: Cookies,
    /// The query as sent, for `request.rawQueryString()` (`None`: the target had no `?`).
    #[serde(rename = "__homefrontRawQuery", default, skip_serializing_if = "Option::is_none")]
    pub raw_query: Option<String>,
}

/// A generated response's body: text, or `{data, encoding: "text" | "base64"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Body {
    Text(String),
    Data {
        data: String,
        #[serde(default)]
        encoding: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    #[serde(rename = "statusDescription", default, skip_serializing_if = "Option::is_none")]
    pub status_description: Option<String>,
    #[serde(default)]
    pub headers: Fields,
    #[serde(default)]
    pub cookies: Cookies,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ViewerRequest,
    ViewerResponse,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::ViewerRequest => "viewer-request",
            EventType::ViewerResponse => "viewer-response",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(rename = "distributionDomainName", default)]
    pub distribution_domain_name: String,
    #[serde(rename = "distributionId", default)]
    pub distribution_id: String,
    #[serde(rename = "eventType")]
    pub event_type: String,
    #[serde(rename = "requestId", default)]
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Viewer {
    pub ip: String,
}

/// The event object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub version: String,
    pub context: Context,
    pub viewer: Viewer,
    pub request: Request,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
}

impl Event {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The event type its context names.
    pub fn event_type(&self) -> Option<EventType> {
        match self.context.event_type.as_str() {
            "viewer-request" => Some(EventType::ViewerRequest),
            "viewer-response" => Some(EventType::ViewerResponse),
            _ => None,
        }
    }
}

/// Header fields a function can neither add, change nor remove, in either event (hop-by-hop
/// fields and the edge's own), and those it may read but not change (per event).
const DISALLOWED: [&str; 9] = [
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "trailer",
    "upgrade",
    "x-real-ip",
];
const DISALLOWED_PREFIXES: [&str; 3] = ["x-amz-cf-", "x-edge-", "x-accel-"];
const READ_ONLY_REQUEST: [&str; 5] = [
    "content-length",
    "host",
    "transfer-encoding",
    "via",
    "x-forwarded-proto",
];
const READ_ONLY_RESPONSE: [&str; 4] = ["content-length", "content-encoding", "transfer-encoding", "via"];

/// A function may not change this field in `event`.
pub fn is_protected(event: EventType, name: &str) -> bool {
    DISALLOWED.contains(&name)
        || name == "x-cache"
        || DISALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
        || match event {
            EventType::ViewerRequest => READ_ONLY_REQUEST.contains(&name),
            EventType::ViewerResponse => READ_ONLY_RESPONSE.contains(&name),
        }
}

/// The field an event gives as `cookies`: a request's `Cookie`, a response's `Set-Cookie`.
fn cookie_field(event: EventType) -> HeaderName {
    match event {
        EventType::ViewerRequest => http::header::COOKIE,
        EventType::ViewerResponse => http::header::SET_COOKIE,
    }
}

/// The fields of `headers` as the `event`'s event gives them (its cookies apart).
pub fn fields_of(event: EventType, headers: &HeaderMap) -> Fields {
    let cookies = cookie_field(event);
    let mut out = Fields::new();
    for name in headers.keys() {
        if *name == cookies {
            continue;
        }
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(name.as_str().to_string(), field(values));
    }
    out
}

fn field(mut values: Vec<String>) -> Field {
    if values.len() == 1 {
        return Field {
            value: values.pop().unwrap_or_default(),
            multi_value: None,
        };
    }
    Field {
        value: values.first().cloned().unwrap_or_default(),
        multi_value: Some(values.into_iter().map(|value| Single { value }).collect()),
    }
}

/// The query's parameters, as sent: `a=1&b&a=2` → `a` (1, and 2 in `multiValue`), `b` ("").
pub fn query_fields(query: Option<&str>) -> Fields {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        grouped.entry(k.to_string()).or_default().push(v.to_string());
    }
    grouped.into_iter().map(|(k, v)| (k, field(v))).collect()
}

/// The cookies of the request's `Cookie` fields.
pub fn request_cookies(headers: &HeaderMap) -> Cookies {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in headers.get_all(http::header::COOKIE) {
        let line = String::from_utf8_lossy(line.as_bytes());
        for pair in line.split(';') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            grouped
                .entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    grouped
        .into_iter()
        .map(|(k, values)| (k, cookie(values.into_iter().map(|v| (v, None)).collect())))
        .collect()
}

/// The cookies of a response's `Set-Cookie` fields, each with its attributes.
pub fn response_cookies(headers: &HeaderMap) -> Cookies {
    let mut grouped: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for line in headers.get_all(http::header::SET_COOKIE) {
        let line = String::from_utf8_lossy(line.as_bytes());
        let (pair, attributes) = match line.split_once(';') {
            Some((p, a)) => (p, Some(a.trim().to_string())),
            None => (line.as_ref(), None),
        };
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        grouped
            .entry(k.trim().to_string())
            .or_default()
            .push((v.trim().to_string(), attributes.filter(|a| !a.is_empty())));
    }
    grouped.into_iter().map(|(k, v)| (k, cookie(v))).collect()
}

fn cookie(mut values: Vec<(String, Option<String>)>) -> Cookie {
    if values.len() == 1 {
        let (value, attributes) = values.pop().unwrap_or_default();
        return Cookie {
            value,
            attributes,
            multi_value: None,
        };
    }
    let (value, attributes) = values.first().cloned().unwrap_or_default();
    Cookie {
        value,
        attributes,
        multi_value: Some(
            values
                .into_iter()
                .map(|(value, attributes)| CookieValue { value, attributes })
                .collect(),
        ),
    }
}

/// The request part of an event.
pub fn request_of(method: &str, path: &str, query: Option<&str>, headers: &HeaderMap) -> Request {
    Request {
        method: method.to_string(),
        uri: path.to_string(),
        querystring: Query::Fields(query_fields(query)),
        headers: fields_of(EventType::ViewerRequest, headers),
        cookies: request_cookies(headers),
        raw_query: query.map(str::to_string),
    }
}

/// The response part of an event.
pub fn response_of(status: u16, description: &str, headers: &HeaderMap) -> Response {
    Response {
        status_code: status,
        status_description: Some(description.to_string()),
        headers: fields_of(EventType::ViewerResponse, headers),
        cookies: response_cookies(headers),
        body: None,
    }
}

/// What a viewer-request function returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Returned {
    Request(Request),
    Response(Response),
}

/// A viewer-request function's result: a response when it has `statusCode`,
/// else a request.
pub fn returned_by_request(value: serde_json::Value) -> Result<Returned, String> {
    let Some(object) = value.as_object() else {
        return Err("the function must return the request or a response object".into());
    };
    if object.contains_key("statusCode") {
        serde_json::from_value(value)
            .map(Returned::Response)
            .map_err(|e| format!("invalid response: {e}"))
    } else {
        serde_json::from_value(value)
            .map(Returned::Request)
            .map_err(|e| format!("invalid request: {e}"))
    }
}

/// A viewer-response function's result.
pub fn returned_by_response(value: serde_json::Value) -> Result<Response, String> {
    serde_json::from_value(value).map_err(|e| format!("invalid response: {e}"))
}

/// What a returned request changes: the target (path and query), when `uri` or
/// `querystring` changed; the header fields, when headers or cookies changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestEdit {
    pub target: Option<String>,
    pub headers: Option<HeaderMap>,
}

/// The edit `after` makes to the request `before` was made from (its fields: `original`).
pub fn request_edit(before: &Request, after: &Request, original: &HeaderMap) -> Result<RequestEdit, String> {
    let mut edit = RequestEdit::default();
    if after.method != before.method {
        return Err("a function may not change the request's method".into());
    }
    if after.uri != before.uri || after.querystring != before.querystring {
        if !after.uri.starts_with('/') {
            return Err(format!("the uri must start with '/': {:?}", after.uri));
        }
        let query = match &after.querystring {
            Query::Text(q) => q.strip_prefix('?').unwrap_or(q).to_string(),
            Query::Fields(fields) => join_query(&before.querystring, fields),
        };
        edit.target = Some(if query.is_empty() {
            after.uri.clone()
        } else {
            format!("{}?{query}", after.uri)
        });
    }
    if after.headers != before.headers || after.cookies != before.cookies {
        let mut headers = HeaderMap::with_capacity(after.headers.len() + 1);
        let event = EventType::ViewerRequest;
        merge_fields(event, &before.headers, &after.headers, original, &mut headers)?;
        let cookies = if after.cookies == before.cookies {
            original.get_all(http::header::COOKIE).iter().cloned().collect()
        } else {
            cookie_line(&after.cookies)?.into_iter().collect::<Vec<_>>()
        };
        for c in cookies {
            headers.append(http::header::COOKIE, c);
        }
        edit.headers = Some(headers);
    }
    Ok(edit)
}

/// The fields of `after` into `out`; the protected ones as `original` has them (an error
/// when `after` changed one).
fn merge_fields(
    event: EventType,
    before: &Fields,
    after: &Fields,
    original: &HeaderMap,
    out: &mut HeaderMap,
) -> Result<(), String> {
    for (name, f) in after {
        let lower = name.to_ascii_lowercase();
        if is_protected(event, &lower) {
            if before.get(&lower) != Some(f) {
                return Err(format!("a function may not change the {lower} header"));
            }
            continue;
        }
        let header = HeaderName::from_bytes(lower.as_bytes()).map_err(|_| format!("invalid header name: {name:?}"))?;
        // A field the function left as it was keeps its bytes as sent (the event shows
        // them as UTF-8, lossily).
        if before.get(&lower) == Some(f) {
            for v in original.get_all(&header) {
                out.append(header.clone(), v.clone());
            }
            continue;
        }
        if header == cookie_field(event) {
            return Err(format!("{lower} is given as cookies, not as a header"));
        }
        for v in values_of(before.get(&lower), f) {
            let value = HeaderValue::from_str(v).map_err(|_| format!("invalid value of the {lower} header: {v:?}"))?;
            out.append(header.clone(), value);
        }
    }
    for name in before.keys() {
        if is_protected(event, name) {
            if !after.contains_key(name) {
                return Err(format!("a function may not remove the {name} header"));
            }
            if let Ok(header) = HeaderName::from_bytes(name.as_bytes()) {
                for v in original.get_all(&header) {
                    out.append(header.clone(), v.clone());
                }
            }
        }
    }
    Ok(())
}

/// `k=v&k2=v2`, each parameter's values in order ([`values_of`]; `before`: the event's).
fn join_query(before: &Query, fields: &Fields) -> String {
    let before = match before {
        Query::Fields(f) => Some(f),
        Query::Text(_) => None,
    };
    let mut out = String::new();
    for (k, f) in fields {
        for v in values_of(before.and_then(|b| b.get(k)), f) {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(k);
            if !v.is_empty() {
                out.push('=');
                out.push_str(v);
            }
        }
    }
    out
}

/// The `Cookie` field of a returned request's cookies (`None`: no cookies).
fn cookie_line(cookies: &Cookies) -> Result<Option<HeaderValue>, String> {
    let mut line = String::new();
    for (name, c) in cookies {
        let values: Vec<&str> = match &c.multi_value {
            Some(m) if !m.is_empty() => m.iter().map(|s| s.value.as_str()).collect(),
            _ => vec![c.value.as_str()],
        };
        for v in values {
            if !line.is_empty() {
                line.push_str("; ");
            }
            line.push_str(name);
            line.push('=');
            line.push_str(v);
        }
    }
    if line.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&line)
        .map(Some)
        .map_err(|_| format!("invalid cookies: {line:?}"))
}

/// The `Set-Cookie` fields of a response's cookies.
fn set_cookie_lines(cookies: &Cookies) -> Result<Vec<HeaderValue>, String> {
    let mut out = Vec::new();
    for (name, c) in cookies {
        let values: Vec<(&str, Option<&str>)> = match &c.multi_value {
            Some(m) if !m.is_empty() => m.iter().map(|s| (s.value.as_str(), s.attributes.as_deref())).collect(),
            _ => vec![(c.value.as_str(), c.attributes.as_deref())],
        };
        for (v, attributes) in values {
            let line = match attributes.filter(|a| !a.is_empty()) {
                Some(a) => format!("{name}={v}; {a}"),
                None => format!("{name}={v}"),
            };
            out.push(HeaderValue::from_str(&line).map_err(|_| format!("invalid cookie: {line:?}"))?);
        }
    }
    Ok(out)
}

/// What a returned response changes in the response `before` was made from: the status
/// (and its reason), and the header fields, when headers or cookies changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseEdit {
    pub status: Option<(u16, Option<String>)>,
    pub headers: Option<HeaderMap>,
    /// A new body (an empty one removes it).
    pub body: Option<bytes::Bytes>,
}

/// The edit `after` makes to the response `before` was made from (its fields: `original`).
pub fn response_edit(before: &Response, after: &Response, original: &HeaderMap) -> Result<ResponseEdit, String> {
    let mut edit = ResponseEdit::default();
    if let Some(body) = &after.body {
        edit.body = Some(body_bytes(body)?.into());
    }
    if after.status_code != before.status_code || after.status_description != before.status_description {
        check_status(after.status_code)?;
        edit.status = Some((after.status_code, after.status_description.clone()));
    }
    if after.headers != before.headers || after.cookies != before.cookies {
        let mut headers = HeaderMap::with_capacity(after.headers.len() + 1);
        merge_fields(
            EventType::ViewerResponse,
            &before.headers,
            &after.headers,
            original,
            &mut headers,
        )?;
        if after.cookies == before.cookies {
            for c in original.get_all(http::header::SET_COOKIE) {
                headers.append(http::header::SET_COOKIE, c.clone());
            }
        } else {
            for c in set_cookie_lines(&after.cookies)? {
                headers.append(http::header::SET_COOKIE, c);
            }
        }
        edit.headers = Some(headers);
    }
    Ok(edit)
}

fn check_status(status: u16) -> Result<(), String> {
    if (200..=599).contains(&status) {
        Ok(())
    } else {
        Err(format!("invalid status code {status}: 200 to 599"))
    }
}

/// A response a viewer-request function generated, as HTTP: status, reason, fields, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// The most bytes of a generated response's body (CloudFront's limit, 40 KB).
pub const MAX_GENERATED_BODY: usize = 40 * 1024;

pub fn generated(response: &Response) -> Result<Generated, String> {
    check_status(response.status_code)?;
    let mut headers = HeaderMap::new();
    merge_fields(
        EventType::ViewerResponse,
        &Fields::new(),
        &response.headers,
        &HeaderMap::new(),
        &mut headers,
    )?;
    for c in set_cookie_lines(&response.cookies)? {
        headers.append(http::header::SET_COOKIE, c);
    }
    let body = match &response.body {
        None => Vec::new(),
        Some(b) => body_bytes(b)?,
    };
    Ok(Generated {
        status: response.status_code,
        reason: response.status_description.clone(),
        headers,
        body: body.into(),
    })
}

/// A body a function gave: text, or `data` in its `encoding` (text or base64; base64 that
/// does not decode is refused), at most [`MAX_GENERATED_BODY`] bytes.
fn body_bytes(body: &Body) -> Result<Vec<u8>, String> {
    let bytes = match body {
        Body::Text(t) => t.clone().into_bytes(),
        Body::Data { data, encoding } => match encoding.as_deref() {
            None | Some("text") => data.clone().into_bytes(),
            Some("base64") => openssl::base64::decode_block(data.trim())
                .map_err(|_| "the body's data is not valid base64".to_string())?,
            Some(other) => return Err(format!("invalid body encoding {other:?}: text or base64")),
        },
    };
    if bytes.len() > MAX_GENERATED_BODY {
        return Err(format!(
            "the body is {} bytes; a function's body is at most {MAX_GENERATED_BODY}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The values of a field a function returned, by CloudFront's rule: a changed `multiValue`
/// is taken whole; else a changed `value` replaces the first value and the others stay.
fn values_of<'a>(before: Option<&'a Field>, after: &'a Field) -> Vec<&'a str> {
    let all = |f: &'a Field| -> Vec<&'a str> {
        match &f.multi_value {
            Some(m) if !m.is_empty() => m.iter().map(|s| s.value.as_str()).collect(),
            _ => vec![f.value.as_str()],
        }
    };
    match before {
        Some(b) if after.multi_value.is_some() && after.multi_value == b.multi_value && after.value != b.value => {
            let mut values = all(b);
            values[0] = after.value.as_str();
            values
        }
        _ => all(after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn field(v: &str) -> Field {
        Field {
            value: v.into(),
            multi_value: None,
        }
    }

    #[test]
    fn a_request_becomes_an_event_as_cloudfront_gives_it() {
        let h = headers(&[
            ("host", "a.example"),
            ("accept", "text/html"),
            ("accept", "application/xml"),
            ("cookie", "a=1; b=2"),
            ("cookie", "a=3"),
        ]);
        let r = request_of("GET", "/x%20y", Some("k=1&k=2&e&v=%41"), &h);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["uri"], "/x%20y");
        assert_eq!(json["headers"]["host"], serde_json::json!({"value": "a.example"}));
        assert_eq!(
            json["headers"]["accept"],
            serde_json::json!({"value": "text/html", "multiValue": [{"value": "text/html"}, {"value": "application/xml"}]})
        );
        // Cookies are not headers; repeated ones have multiValue.
        assert!(json["headers"].get("cookie").is_none());
        assert_eq!(json["cookies"]["a"]["multiValue"][1]["value"], "3");
        assert_eq!(json["cookies"]["b"]["value"], "2");
        // Query values as sent.
        assert_eq!(json["querystring"]["k"]["multiValue"][1]["value"], "2");
        assert_eq!(json["querystring"]["e"]["value"], "");
        assert_eq!(json["querystring"]["v"]["value"], "%41");
    }

    #[test]
    fn a_returned_request_changes_only_what_the_function_changed() {
        let h = headers(&[("host", "a.example"), ("x-b", "1"), ("x-a", "2"), ("cookie", "s=1")]);
        let before = request_of("GET", "/p", Some("z=1&a=2"), &h);
        // Untouched: nothing to do, the target and fields stay as sent.
        assert_eq!(request_edit(&before, &before.clone(), &h), Ok(RequestEdit::default()));
        // A new uri: the query goes with it as it was.
        let mut after = before.clone();
        after.uri = "/p/index.html".into();
        let e = request_edit(&before, &after, &h).unwrap();
        assert_eq!(e.target.as_deref(), Some("/p/index.html?a=2&z=1"));
        assert_eq!(e.headers, None);
        // A query string given as a string is taken as it is.
        let mut after = before.clone();
        after.querystring = Query::Text("b=1&a=2".into());
        assert_eq!(
            request_edit(&before, &after, &h).unwrap().target.as_deref(),
            Some("/p?b=1&a=2")
        );
        // A field left as it was keeps its bytes, even when they are not UTF-8.
        let mut raw = h.clone();
        raw.insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let before_raw = request_of("GET", "/p", None, &raw);
        assert_eq!(before_raw.headers["x-raw"].value, "caf\u{fffd}");
        let mut after = before_raw.clone();
        after.headers.insert("x-new".into(), field("1"));
        let fields = request_edit(&before_raw, &after, &raw).unwrap().headers.unwrap();
        assert_eq!(fields["x-raw"].as_bytes(), b"caf\xe9");
        // A header added, a cookie changed.
        let mut after = before.clone();
        after.headers.insert("true-client-ip".into(), field("192.0.2.1"));
        after.cookies.get_mut("s").unwrap().value = "2".into();
        let fields = request_edit(&before, &after, &h).unwrap().headers.unwrap();
        assert_eq!(fields["true-client-ip"], "192.0.2.1");
        assert_eq!(fields["host"], "a.example");
        assert_eq!(fields["cookie"], "s=2");
        // Read-only and disallowed fields: no change, no removal, no addition.
        for (name, change) in [
            ("host", Some("b.example")),
            ("host", None),
            ("via", Some("x")),
            ("x-amz-cf-id", Some("x")),
        ] {
            let mut after = before.clone();
            match change {
                Some(v) => after.headers.insert(name.into(), field(v)),
                None => after.headers.remove(name),
            };
            assert!(request_edit(&before, &after, &h).is_err(), "{name} {change:?}");
        }
        // The method is read-only; a uri must start with '/'.
        let mut after = before.clone();
        after.method = "POST".into();
        assert!(request_edit(&before, &after, &h).is_err());
        let mut after = before.clone();
        after.uri = "x".into();
        assert!(request_edit(&before, &after, &h).is_err());
    }

    #[test]
    fn multi_value_follows_cloudfronts_rule() {
        let h = headers(&[("host", "a"), ("x-m", "1"), ("x-m", "2"), ("x-m", "3")]);
        let before = request_of("GET", "/", None, &h);
        // A changed value replaces the first; the others stay.
        let mut after = before.clone();
        after.headers.get_mut("x-m").unwrap().value = "one".into();
        let f = request_edit(&before, &after, &h).unwrap().headers.unwrap();
        let got: Vec<&str> = f.get_all("x-m").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(got, ["one", "2", "3"]);
        // A changed multiValue is taken whole.
        let mut after = before.clone();
        after.headers.get_mut("x-m").unwrap().multi_value = Some(vec![Single { value: "a".into() }]);
        let f = request_edit(&before, &after, &h).unwrap().headers.unwrap();
        let got: Vec<&str> = f.get_all("x-m").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(got, ["a"]);
    }

    #[test]
    fn a_returned_response_changes_status_fields_cookies_and_body() {
        let h = headers(&[
            ("content-type", "text/html"),
            ("set-cookie", "id=1; Path=/"),
            ("via", "1.1 x"),
        ]);
        let before = response_of(200, "OK", &h);
        assert_eq!(before.cookies["id"].attributes.as_deref(), Some("Path=/"));
        assert_eq!(response_edit(&before, &before.clone(), &h), Ok(ResponseEdit::default()));
        let mut after = before.clone();
        after.status_code = 302;
        after.status_description = Some("Found".into());
        after.headers.insert("location".into(), field("/elsewhere"));
        after.cookies.insert(
            "new".into(),
            Cookie {
                value: "v".into(),
                attributes: Some("Secure".into()),
                multi_value: None,
            },
        );
        after.body = Some(Body::Data {
            data: "aGk=".into(),
            encoding: Some("base64".into()),
        });
        let e = response_edit(&before, &after, &h).unwrap();
        assert_eq!(e.status, Some((302, Some("Found".into()))));
        let f = e.headers.unwrap();
        assert_eq!(f["location"], "/elsewhere");
        assert_eq!(f["via"], "1.1 x");
        let cookies: Vec<&str> = f.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(cookies, ["id=1; Path=/", "new=v; Secure"]);
        assert_eq!(e.body.as_deref(), Some(&b"hi"[..]));
        // Invalid: a status out of range, bad base64, a read-only field changed.
        let mut bad = before.clone();
        bad.status_code = 99;
        assert!(response_edit(&before, &bad, &h).is_err());
        let mut bad = before.clone();
        bad.body = Some(Body::Data {
            data: "%%%".into(),
            encoding: Some("base64".into()),
        });
        assert!(response_edit(&before, &bad, &h).is_err());
        let mut bad = before.clone();
        bad.headers.insert("via".into(), field("me"));
        assert!(response_edit(&before, &bad, &h).is_err());
    }

    #[test]
    fn what_a_viewer_request_function_returns_is_told_apart() {
        let r = returned_by_request(serde_json::json!({"statusCode": 302, "headers": {"location": {"value": "/x"}}}));
        let Ok(Returned::Response(resp)) = r else {
            panic!("{r:?}")
        };
        let g = generated(&resp).unwrap();
        assert_eq!(
            (g.status, &g.headers["location"]),
            (302, &HeaderValue::from_static("/x"))
        );
        assert!(matches!(
            returned_by_request(serde_json::json!({"method": "GET", "uri": "/"})),
            Ok(Returned::Request(_))
        ));
        assert!(returned_by_request(serde_json::json!("nope")).is_err());
        assert!(returned_by_request(serde_json::json!({"statusCode": "200"})).is_err());
        let big = serde_json::json!({"statusCode": 200, "body": "x".repeat(MAX_GENERATED_BODY + 1)});
        let Ok(Returned::Response(resp)) = returned_by_request(big) else {
            panic!()
        };
        assert!(generated(&resp).is_err());
    }
}
