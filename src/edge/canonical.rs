//! The canonical request: one form of the request's host, path and query, computed once
//! before any decision and read by every stage after it (behavior selection, the
//! signed-URL check, the cache key, invalidation, the access log and the origin request).
//! No stage after this one reads the raw request target or Host again.
//!
//! - **Host** (RFC 9110 §7.2, RFC 3986 §3.2.2): from the Host field (HTTP/1.x) or
//!   `:authority` (HTTP/2; a `host` field, if also sent, must name the same authority).
//!   Only a valid authority is accepted: a host name of letters, digits, `-`, `.`, `_` and
//!   `~`, an IPv4 address or a bracketed IPv6 literal, and an optional port. Lower-cased,
//!   without a trailing dot, without the scheme's default port. HTTP/1.1 needs exactly one
//!   Host field; an absolute-form target must name the same authority.
//! - **Path** (RFC 3986 §6.2.2): percent-encoded unreserved characters are decoded, every
//!   other escape is kept with upper-case hex digits, reserved characters are kept as sent,
//!   and bytes that may not appear in a path (controls excepted, which are refused) are
//!   percent-encoded. Refused with 400: a malformed escape, an encoded `/` (`%2F`, which
//!   S3 and many apps decode into a separator the edge did not see), a NUL, a backslash
//!   (raw or `%5C`) and `.` or `..` segments, also encoded.
//! - **Behaviors match the decoded path** (every escape decoded once, as S3 and most
//!   application servers read a path): no encoding of a character, reserved or not, can
//!   move a request to another behavior than the object it names at such an origin.
//! - **Query**: the same rules as the path's, except that `%2F` and NUL are kept encoded
//!   (nothing in a query string climbs directories) and a `%` that starts no escape is
//!   encoded as `%25`.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use http::Version;
use pingora::http::RequestHeader;

use super::errors::EdgeError;
use crate::policy::percent::{canonical_path, canonical_query, decode_all};

/// One request's canonical host, path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// The host, lower-case, without a trailing dot or port (an IPv6 literal keeps its
    /// brackets); empty when the request named none (HTTP/1.0).
    pub host: String,
    /// `host`, plus `:port` when the request named a port other than the scheme's default:
    /// what the signed-URL resource, the cache key and an `http` origin's Host read.
    pub authority: String,
    /// The canonical path, percent-encoded one way, starting with `/`.
    pub path: String,
    /// The canonical query string, without the `?`; `None` when the target had none.
    pub query: Option<String>,
}

impl Canonical {
    /// The path with every escape decoded once: what path patterns are matched against.
    pub fn decoded_path(&self) -> Cow<'_, [u8]> {
        decode_all(self.path.as_bytes())
    }

    /// `path?query`, as the request target the origin gets (before any origin path).
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// What a request says about its target, as the canonical form needs it.
pub struct Raw<'a> {
    pub version: Version,
    /// The request target as sent (`:path` for HTTP/2).
    pub target: &'a [u8],
    /// Every Host field's value.
    pub hosts: Vec<&'a [u8]>,
    /// HTTP/2's `:authority`.
    pub authority: Option<&'a str>,
    pub https: bool,
}

impl<'a> Raw<'a> {
    pub fn of(req: &'a RequestHeader, https: bool) -> Raw<'a> {
        Raw {
            version: req.version,
            target: req.raw_path(),
            hosts: req
                .headers
                .get_all(http::header::HOST)
                .iter()
                .map(|v| v.as_bytes())
                .collect(),
            authority: req.uri.authority().map(|a| a.as_str()),
            https,
        }
    }
}

/// The canonical form of a request, or the 400 that refuses it.
pub fn canonicalize(raw: &Raw<'_>) -> Result<Canonical, EdgeError> {
    let default_port = if raw.https { 443 } else { 80 };
    let (target_authority, path_and_query) = split_target(raw.target)?;
    if raw.hosts.len() > 1 {
        return Err(bad_host("The request has more than one Host header."));
    }
    let header_host = match raw.hosts.first() {
        Some(v) => Some(authority(v, default_port)?),
        None => None,
    };
    let pseudo = match raw.authority {
        Some(a) => Some(authority(a.as_bytes(), default_port)?),
        None => None,
    };
    let target = match target_authority {
        Some(a) => Some(authority(a, default_port)?),
        None => None,
    };
    // Every authority the request names must be the same one.
    let mut named = [pseudo, target, header_host].into_iter().flatten();
    let chosen = named.next();
    if let Some(first) = &chosen {
        if named.any(|other| other != *first) {
            return Err(bad_host("The request names two different hosts."));
        }
    }
    let (host, authority) = match chosen {
        Some(a) => a,
        // RFC 9112 §3.2: an HTTP/1.1 request without a Host field is refused.
        None if raw.version == Version::HTTP_11 => return Err(bad_host("The request has no Host header.")),
        None => (String::new(), String::new()),
    };
    let (path, query) = match path_and_query.iter().position(|&b| b == b'?') {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
        None => (path_and_query, None),
    };
    let path = canonical_path(path)?;
    let query = query.map(canonical_query);
    Ok(Canonical {
        host,
        authority,
        path,
        query,
    })
}

/// The target's authority (absolute-form) and its path and query (with no fragment).
fn split_target(target: &[u8]) -> Result<(Option<&[u8]>, &[u8]), EdgeError> {
    let target = match target.iter().position(|&b| b == b'#') {
        Some(i) => &target[..i],
        None => target,
    };
    if target.is_empty() {
        return Ok((None, b"/"));
    }
    if target[0] == b'/' {
        return Ok((None, target));
    }
    let lower = |n: usize| target.get(..n).map(|s| s.to_ascii_lowercase());
    let rest = if lower(7).as_deref() == Some(b"http://") {
        &target[7..]
    } else if lower(8).as_deref() == Some(b"https://") {
        &target[8..]
    } else {
        return Err(bad_path());
    };
    let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    if path[0] == b'?' {
        // `http://host?q`: the path is `/`. Borrowing cannot prepend it, so refuse the odd
        // form rather than guess; no client sends it.
        return Err(bad_path());
    }
    Ok((Some(authority), path))
}

/// `(host, authority)` of an authority as sent: lower-case, no trailing dot, no default port.
fn authority(raw: &[u8], default_port: u16) -> Result<(String, String), EdgeError> {
    let raw = raw.trim_ascii();
    let invalid = || bad_host("The Host header is not a valid host name with an optional port.");
    if raw.is_empty() {
        return Ok((String::new(), String::new()));
    }
    let (host, port) = if raw[0] == b'[' {
        let end = raw.iter().position(|&b| b == b']').ok_or_else(invalid)?;
        let literal = std::str::from_utf8(&raw[1..end]).map_err(|_| invalid())?;
        let ip: Ipv6Addr = literal.parse().map_err(|_| invalid())?;
        let port = match &raw[end + 1..] {
            [] => None,
            [b':', p @ ..] => Some(p),
            _ => return Err(invalid()),
        };
        (format!("[{ip}]"), port)
    } else {
        let (name, port) = match raw.iter().rposition(|&b| b == b':') {
            Some(i) => (&raw[..i], Some(&raw[i + 1..])),
            None => (raw, None),
        };
        let name = name.strip_suffix(b".").unwrap_or(name);
        let label_ok = |l: &[u8]| !l.is_empty() && l.len() <= 63;
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
            && name.split(|&b| b == b'.').all(label_ok);
        if !valid {
            return Err(invalid());
        }
        (String::from_utf8_lossy(name).to_ascii_lowercase(), port)
    };
    let port = match port {
        None | Some([]) => None,
        Some(p) if p.len() <= 5 && p.iter().all(u8::is_ascii_digit) => {
            let n: u32 = std::str::from_utf8(p)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(invalid)?;
            match u16::try_from(n) {
                Ok(n) if n == default_port => None,
                Ok(n) => Some(n),
                Err(_) => return Err(invalid()),
            }
        }
        Some(_) => return Err(invalid()),
    };
    let authority = match port {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    Ok((host, authority))
}

fn bad_path() -> EdgeError {
    EdgeError::bad_path()
}

fn bad_host(message: &str) -> EdgeError {
    EdgeError::new(400, "InvalidHost", message.to_string())
}

/// All Cookie headers joined with `; ` (HTTP/2 clients send one header per cookie).
pub(crate) fn cookie_header(req: &pingora::http::RequestHeader) -> Option<String> {
    let mut values = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    let mut joined = first.to_string();
    for v in values {
        joined.push_str("; ");
        joined.push_str(v);
    }
    Some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(target: &'a str, hosts: &[&'a str], authority: Option<&'a str>) -> Raw<'a> {
        Raw {
            version: Version::HTTP_11,
            target: target.as_bytes(),
            hosts: hosts.iter().map(|h| h.as_bytes()).collect(),
            authority,
            https: true,
        }
    }

    fn canon(target: &str, host: &str) -> Result<Canonical, u16> {
        canonicalize(&raw(target, &[host], None)).map_err(|e| e.status)
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_hex_is_upper_case() {
        let c = canon("/%70rivate/%7euser/a%2bb/%e2%82%ac", "cdn.test").unwrap();
        assert_eq!(c.path, "/private/~user/a%2Bb/%E2%82%AC");
        assert_eq!(&*c.decoded_path(), "/private/~user/a+b/€".as_bytes());
        // Reserved characters stay as sent, encoded or not.
        assert_eq!(canon("/a+b/c;d=e", "h").unwrap().path, "/a+b/c;d=e");
        // Bytes a path may not hold are encoded.
        assert_eq!(canon("/a\"b{c}", "h").unwrap().path, "/a%22b%7Bc%7D");
        assert_eq!(
            canonicalize(&raw("/caf\u{e9}", &["h"], None)).unwrap().path,
            "/caf%C3%A9"
        );
    }

    #[test]
    fn the_canonical_path_is_a_fixed_point() {
        for p in ["/%70rivate/x", "/a%2bb", "/a\"b", "/%E2%82%AC", "/a%25b", "/"] {
            let once = canon(p, "h").unwrap();
            let twice = canon(&once.path, "h").unwrap();
            assert_eq!(once.path, twice.path, "{p}");
        }
    }

    #[test]
    fn paths_that_could_climb_or_hide_a_separator_are_refused() {
        for p in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/a/%2E%2E/b",
            "/a/.%2e/b",
            "/./a",
            "/a/.",
            "/a%00b",
            "/a\\..\\b",
            "/a%5cb",
            "/private%2fbob/secret.txt",
            "/%2F",
            "/%zz",
            "/a%2",
            "/a\tb",
            "relative",
            "*",
            "ftp://h/a",
        ] {
            assert_eq!(canon(p, "h").map(|c| c.path), Err(400), "{p}");
        }
        assert_eq!(canon("/a..b/c...d", "h").unwrap().path, "/a..b/c...d");
        // A double-encoded escape is one literal percent sign: it decodes once, to `%2e`.
        assert_eq!(canon("/%252e%252e/x", "h").unwrap().path, "/%252e%252e/x");
    }

    #[test]
    fn the_query_is_canonical_but_keeps_its_structure() {
        let c = canon("/a?x=%7e%2f&y=%41+b&z=100%", "h").unwrap();
        assert_eq!(c.query.as_deref(), Some("x=~%2F&y=A+b&z=100%25"));
        // A stray `%` is encoded, so that a decoded escape after it cannot complete it.
        let c = canon("/a?q=4%4%43", "h").unwrap();
        assert_eq!(c.query.as_deref(), Some("q=4%254C"));
        assert_eq!(canon(&c.path_and_query(), "h").unwrap().query, c.query);
        assert_eq!(canon("/a?", "h").unwrap().query.as_deref(), Some(""));
        assert_eq!(canon("/a", "h").unwrap().query, None);
        assert_eq!(canon("/a#frag", "h").unwrap().path, "/a");
    }

    #[test]
    fn host_is_validated_and_lower_cased() {
        let c = canon("/", "CDN.Example.COM.:443").unwrap();
        assert_eq!(
            (c.host.as_str(), c.authority.as_str()),
            ("cdn.example.com", "cdn.example.com")
        );
        let c = canon("/", "localhost:8443").unwrap();
        assert_eq!((c.host.as_str(), c.authority.as_str()), ("localhost", "localhost:8443"));
        let c = canon("/", "[::1]:8443").unwrap();
        assert_eq!((c.host.as_str(), c.authority.as_str()), ("[::1]", "[::1]:8443"));
        assert_eq!(canon("/", "[0:0::1]").unwrap().host, "[::1]");
        assert_eq!(canon("/", "h:").unwrap().authority, "h");
        for bad in [
            "h/private/alice",
            "h?x",
            "h#x",
            "user@h",
            "h:80:80",
            "h:99999",
            "h:8a",
            "[::1",
            "[zz]",
            "[::1]x",
            "h h",
            "a..b",
            ".h",
            "h%2fx",
            "h\\x",
        ] {
            assert_eq!(canon("/", bad).map(|c| c.host), Err(400), "{bad}");
        }
    }

    #[test]
    fn every_named_authority_must_agree() {
        let two = canonicalize(&raw("/", &["a.test", "b.test"], None));
        assert_eq!(two.map_err(|e| e.status), Err(400));
        let same = canonicalize(&raw("/", &["a.test", "a.test"], None));
        assert_eq!(
            same.map_err(|e| e.status),
            Err(400),
            "two Host fields are refused even when equal"
        );
        assert_eq!(
            canonicalize(&raw("/", &["B.test"], Some("b.test:443")))
                .unwrap()
                .authority,
            "b.test"
        );
        assert_eq!(
            canonicalize(&raw("/", &["a.test"], Some("b.test"))).map_err(|e| e.status),
            Err(400)
        );
        // HTTP/2 without :authority: the host field decides.
        let mut h2 = raw("/x", &["a.test/private/alice"], None);
        h2.version = Version::HTTP_2;
        assert_eq!(canonicalize(&h2).map_err(|e| e.status), Err(400));
        // Absolute-form: the target's authority, which must match Host.
        let abs = canonicalize(&raw("http://A.test/p?q", &["a.test"], None)).unwrap();
        assert_eq!((abs.authority.as_str(), abs.path.as_str()), ("a.test", "/p"));
        assert_eq!(
            canonicalize(&raw("http://a.test/p", &["b.test"], None)).map_err(|e| e.status),
            Err(400)
        );
        // HTTP/1.1 needs a Host; HTTP/1.0 may go without.
        assert_eq!(canonicalize(&raw("/", &[], None)).map_err(|e| e.status), Err(400));
        let mut h10 = raw("/", &[], None);
        h10.version = Version::HTTP_10;
        assert_eq!(canonicalize(&h10).unwrap().authority, "");
    }
}
