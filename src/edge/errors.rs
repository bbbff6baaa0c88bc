//! CloudFront-style error responses: `text/xml` bodies of the form
//! `<?xml version="1.0" encoding="UTF-8"?><Error><Code>C</Code><Message>M</Message></Error>`.

use bytes::Bytes;

use crate::policy::percent::BadPath;

/// An error the edge answers itself, before or instead of asking an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429s).
    pub retry_after: Option<u64>,
}

impl EdgeError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        EdgeError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 403 for a method the behavior does not allow (CloudFront answers the same way).
    pub fn method_not_allowed() -> Self {
        EdgeError::new(
            403,
            "MethodNotAllowed",
            "This distribution is not configured to allow the HTTP request method that was used for this request.",
        )
    }

    pub fn https_only() -> Self {
        EdgeError::new(403, "HttpsRequired", "This distribution only accepts HTTPS requests.")
    }

    pub fn unknown_host() -> Self {
        EdgeError::new(
            403,
            "UnknownDistribution",
            "The request could not be satisfied: no distribution is configured for this host name.",
        )
    }

    /// 421: the request's host belongs to another distribution than the one the TLS
    /// connection was made for (RFC 9110 §15.5.20; a client retries on a new connection).
    pub fn misdirected() -> Self {
        EdgeError::new(
            421,
            "MisdirectedRequest",
            "The request's Host does not belong to the distribution this TLS connection was made for.",
        )
    }

    /// 403 for a GET or HEAD with a body, as CloudFront answers it.
    pub fn body_not_allowed() -> Self {
        EdgeError::new(403, "AccessDenied", "A GET or HEAD request may not have a body.")
    }

    pub fn bad_path() -> Self {
        EdgeError::new(400, "InvalidURI", BadPath.to_string())
    }

    /// The XML body.
    pub fn body(&self) -> Bytes {
        Bytes::from(error_xml(self.code, &self.message))
    }
}

/// A refused path is answered as [`EdgeError::bad_path`].
impl From<BadPath> for EdgeError {
    fn from(_: BadPath) -> Self {
        EdgeError::bad_path()
    }
}

/// Renders the XML error document, escaping the message.
pub fn error_xml(code: &str, message: &str) -> String {
    let mut out = String::with_capacity(96 + code.len() + message.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>");
    escape_into(&mut out, code);
    out.push_str("</Code><Message>");
    escape_into(&mut out, message);
    out.push_str("</Message></Error>");
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cloudfront_shape() {
        assert_eq!(
            error_xml("AccessDenied", "Access denied"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access denied</Message></Error>"
        );
    }

    #[test]
    fn escapes_markup() {
        assert!(error_xml("X", "a<b>&\"'").contains("<Message>a&lt;b&gt;&amp;&quot;&apos;</Message>"));
    }
}
