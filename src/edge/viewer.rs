//! Viewer rules: protocol policy, allowed methods, default root object and path safety.
//! Pure functions of the request line and the behavior.

use std::borrow::Cow;

use http::Method;

use super::errors::EdgeError;
use crate::config::model::{Behavior, ViewerProtocolPolicy};

/// What the viewer rules decide before anything is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerOutcome {
    Continue,
    /// 301 to this location.
    Redirect(String),
    Deny(EdgeError),
}

/// Applies the protocol policy and the allowed methods of `behavior`.
///
/// `host` is the canonical host (no port), `path_and_query` the canonical target, and `https_port`
/// the port of the HTTPS listener (omitted from redirects when it is 443).
pub fn check(
    behavior: &Behavior,
    method: &Method,
    is_https: bool,
    host: &str,
    path_and_query: &str,
    https_port: u16,
) -> ViewerOutcome {
    if !is_https {
        match behavior.viewer_protocol_policy {
            ViewerProtocolPolicy::AllowAll => {}
            ViewerProtocolPolicy::HttpsOnly => return ViewerOutcome::Deny(EdgeError::https_only()),
            ViewerProtocolPolicy::RedirectToHttps => {
                return ViewerOutcome::Redirect(https_location(host, path_and_query, https_port))
            }
        }
    }
    if !behavior.allowed_methods.iter().any(|m| m == method) {
        return ViewerOutcome::Deny(EdgeError::method_not_allowed());
    }
    ViewerOutcome::Continue
}

/// `https://<host without port>[:port]<path?query>`.
pub fn https_location(host: &str, path_and_query: &str, https_port: u16) -> String {
    let name = host;
    let target = if path_and_query.is_empty() { "/" } else { path_and_query };
    if https_port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{https_port}{target}")
    }
}

/// The object path to ask the origin for: `default_root_object` replaces `/` (and only `/`,
/// as in CloudFront). `path` is the canonical path (`edge::canonical`), which has already
/// refused anything that could climb out of the origin path.
pub fn object_path<'a>(path: &'a str, default_root_object: Option<&str>) -> Cow<'a, str> {
    match default_root_object {
        Some(root) if path == "/" => Cow::Owned(format!("/{root}")),
        _ => Cow::Borrowed(path),
    }
}

/// Request framing that HTTP/1.1 intermediaries disagree about (RFC 9112 §6.3), refused
/// with 400 before anything is forwarded: Content-Length together with Transfer-Encoding,
/// more than one Content-Length, a Content-Length that is not a number, or a
/// Transfer-Encoding whose last coding is not a single `chunked`. Reads the raw header
/// block as the client sent it (pingora drops Content-Length when both are present).
pub fn framing(raw_header: &[u8]) -> Option<EdgeError> {
    let bad = |m: &str| Some(EdgeError::new(400, "BadRequest", m.to_string()));
    let text = String::from_utf8_lossy(raw_header);
    let mut cl: Vec<String> = Vec::new();
    let mut te: Vec<String> = Vec::new();
    for line in text.split('\n').skip(1) {
        let line = line.trim_end_matches('\r');
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        match name.as_str() {
            "content-length" => cl.push(value),
            "transfer-encoding" => te.push(value),
            _ => {}
        }
    }
    if !cl.is_empty() && !te.is_empty() {
        return bad("The request has both Content-Length and Transfer-Encoding.");
    }
    if cl.len() > 1 {
        return bad("The request has more than one Content-Length.");
    }
    if let Some(v) = cl.first() {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return bad("The request's Content-Length is not a number.");
        }
    }
    if !te.is_empty() {
        let codings: Vec<String> = te
            .iter()
            .flat_map(|v| v.split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        let chunked = codings.iter().filter(|c| *c == "chunked").count();
        if codings.last().map(String::as_str) != Some("chunked") || chunked != 1 {
            return bad("The request's Transfer-Encoding must end with a single chunked.");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Origin, OriginKind};
    use crate::policy::path_pattern::PathPattern;
    use std::sync::Arc;

    fn behavior(policy: ViewerProtocolPolicy, methods: &[Method]) -> Behavior {
        Behavior {
            path_pattern_text: "*".into(),
            path_pattern: PathPattern::compile("*").unwrap(),
            origin: Arc::new(Origin {
                name: "o".into(),
                kind: OriginKind::Bucket { bucket: "b".into() },
                signing: crate::config::model::Signing::Always,
                timeouts: Default::default(),
                origin_path: String::new(),
                custom_headers: vec![],
            }),
            viewer_protocol_policy: policy,
            allowed_methods: methods.to_vec(),
            cache: Default::default(),
            headers: None,
            inject_origin: None,
            functions: Default::default(),
            compress: true,
            trusted_keys: None,
        }
    }

    #[test]
    fn ambiguous_framing() {
        let req = |headers: &str| {
            framing(format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n").as_bytes()).map(|e| e.status)
        };
        assert_eq!(req("Content-Length: 5\r\n"), None);
        assert_eq!(req("Transfer-Encoding: chunked\r\n"), None);
        assert_eq!(req("Transfer-Encoding: gzip, chunked\r\n"), None);
        assert_eq!(req("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), Some(400));
        assert_eq!(req("content-length: 5\r\nContent-Length: 5\r\n"), Some(400));
        assert_eq!(req("Content-Length: +5\r\n"), Some(400));
        assert_eq!(req("Transfer-Encoding: chunked, identity\r\n"), Some(400));
        assert_eq!(
            req("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            Some(400)
        );
    }

    #[test]
    fn redirect_to_https_keeps_path_and_query() {
        let b = behavior(ViewerProtocolPolicy::RedirectToHttps, &[Method::GET, Method::HEAD]);
        assert_eq!(
            check(&b, &Method::GET, false, "localhost", "/a/b?x=1", 8443),
            ViewerOutcome::Redirect("https://localhost:8443/a/b?x=1".into())
        );
        assert_eq!(
            check(&b, &Method::GET, false, "cdn.example.com", "/", 443),
            ViewerOutcome::Redirect("https://cdn.example.com/".into())
        );
        assert_eq!(
            check(&b, &Method::GET, true, "cdn.example.com", "/", 443),
            ViewerOutcome::Continue
        );
    }

    #[test]
    fn https_only_denies_http() {
        let b = behavior(ViewerProtocolPolicy::HttpsOnly, &[Method::GET, Method::HEAD]);
        match check(&b, &Method::GET, false, "h", "/", 443) {
            ViewerOutcome::Deny(e) => assert_eq!(e.status, 403),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn methods_outside_the_set_are_denied() {
        let b = behavior(ViewerProtocolPolicy::AllowAll, &[Method::GET, Method::HEAD]);
        assert_eq!(check(&b, &Method::HEAD, false, "h", "/", 443), ViewerOutcome::Continue);
        match check(&b, &Method::DELETE, false, "h", "/", 443) {
            ViewerOutcome::Deny(e) => assert_eq!((e.status, e.code), (403, "MethodNotAllowed")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn default_root_object_only_for_slash() {
        assert_eq!(object_path("/", Some("index.html")), "/index.html");
        assert_eq!(object_path("/docs/", Some("index.html")), "/docs/");
        assert_eq!(object_path("/", None), "/");
    }
}
