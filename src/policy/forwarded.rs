//! What the edge tells an origin about the viewer's request: `X-Forwarded-For` and
//! `Forwarded` (RFC 7239) describe the same chain of clients, and `X-Forwarded-Proto`,
//! `-Host` and `-Port` the request as the viewer made it.
//!
//! - The chain is the incoming `X-Forwarded-For` (all its fields, in order) followed by the
//!   peer that connected to the edge (the client a PROXY protocol header names, on a
//!   listener that expects one). `Forwarded` has one `for=` element per entry of that chain;
//!   the last element, the edge's own, adds `proto` and `host`. A viewer's own `Forwarded`
//!   is not passed on: only the chain both fields agree on is. Entries that are not IP
//!   addresses become `for=unknown`, so nothing a viewer writes there reaches `Forwarded` as
//!   syntax.
//! - `X-Forwarded-Proto`: `https` or `http`, as the viewer connected to the edge.
//! - `X-Forwarded-Host`: the viewer's Host (as the edge routed it; also sent as `Host`).
//! - `X-Forwarded-Port`: the port the viewer's Host names, else the scheme's (443 or 80):
//!   the port the viewer used, also behind a router that maps 443 to the edge's 8443.
//!
//! As for any proxy chain, an app should believe only the entries its own proxies added:
//! the last one (the edge's peer) here, or more with trusted proxies in front.
//!
//! The other way, an app's `Location` that names the app's own address (as it listens,
//! e.g. `http://127.0.0.1:8081/login`) is not passed on as it is: it becomes a path on
//! whatever host the viewer used ([`internal_redirect`], nginx's `proxy_redirect default`).

use std::net::{IpAddr, SocketAddr};

/// The viewer's request as the edge received it.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The peer that connected to the edge (or the client its PROXY header named).
    pub peer: Option<IpAddr>,
    pub https: bool,
    /// The canonical authority the request was routed by (`host` or `host:port`).
    pub authority: &'a str,
}

/// The fields the origin gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub x_forwarded_for: Option<String>,
    pub forwarded: String,
    pub proto: &'static str,
    pub host: Option<String>,
    pub port: u16,
}

/// The fields for a request whose `X-Forwarded-For` fields were `incoming` (in order).
pub fn fields<'a>(incoming: impl IntoIterator<Item = &'a str>, hop: Hop<'_>) -> Fields {
    let incoming: Vec<&str> = incoming
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let proto = if hop.https { "https" } else { "http" };
    let host = (!hop.authority.is_empty()).then(|| hop.authority.to_string());
    // The edge's own element: its peer, and the request as the viewer made it.
    let mut own = format!(
        "for={}",
        hop.peer.map_or("unknown".to_string(), |p| node(&p.to_string()))
    );
    if let Some(h) = &host {
        own.push_str(&format!(";host={}", quoted(h)));
    }
    own.push_str(&format!(";proto={proto}"));
    let mut elements: Vec<String> = incoming.iter().map(|e| format!("for={}", node(e))).collect();
    elements.push(own);
    let mut chain: Vec<String> = incoming.iter().map(|e| e.to_string()).collect();
    chain.extend(hop.peer.map(|p| p.to_string()));
    Fields {
        x_forwarded_for: (!chain.is_empty()).then(|| chain.join(", ")),
        forwarded: elements.join(", "),
        proto,
        host,
        port: port_of(hop.authority).unwrap_or(if hop.https { 443 } else { 80 }),
    }
}

/// An RFC 7239 node for an `X-Forwarded-For` entry: an IPv4 address as it is, an IPv6
/// address quoted in brackets, anything else `unknown`.
fn node(entry: &str) -> String {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        });
    match ip {
        Some(IpAddr::V4(a)) => a.to_string(),
        Some(IpAddr::V6(a)) => format!("\"[{a}]\""),
        None => "unknown".to_string(),
    }
}

/// A parameter value: a token as it is, else a quoted string (a canonical authority has no
/// `"` or `\` to escape).
fn quoted(v: &str) -> String {
    let token = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The port an authority names (`host:port`, `[v6]:port`), if any.
fn port_of(authority: &str) -> Option<u16> {
    let (host, port) = authority.rsplit_once(':')?;
    if host.starts_with('[') && !host.ends_with(']') {
        // A bare IPv6 literal's last group, not a port.
        return None;
    }
    port.parse().ok()
}

/// The `host:port` forms under which an app listening at `address` may name itself
/// (`server_name`: the host name it was configured by, if any): what [`internal_redirect`]
/// looks for.
pub fn internal_authorities(address: SocketAddr, server_name: &str) -> Vec<String> {
    let port = address.port();
    let mut names = vec![address.to_string()];
    if !server_name.is_empty() && server_name.parse::<IpAddr>().is_err() {
        names.push(format!("{}:{port}", server_name.to_ascii_lowercase()));
    }
    if address.ip().is_loopback() {
        names.push(format!("localhost:{port}"));
    }
    names
}

/// A `Location` (or `Content-Location`) an app sent that names one of `internal` (its own
/// `host:port` forms) as an absolute-path reference, which the viewer resolves against the
/// host it used: `http://127.0.0.1:8081/login?next=%2F` becomes `/login?next=%2F`. `None`:
/// anything else (another site, a relative reference, userinfo) stays as it is.
pub fn internal_redirect(location: &str, internal: &[String]) -> Option<String> {
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    let (rest, default_port) = if lower.starts_with("https://") {
        (&location[8..], 443)
    } else if lower.starts_with("http://") {
        (&location[7..], 80)
    } else {
        return None;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[..i].starts_with('[') || authority[..i].ends_with(']'),
        None => false,
    };
    let with_port = if has_port {
        authority
    } else {
        format!("{authority}:{default_port}")
    };
    if !internal.contains(&with_port) {
        return None;
    }
    Some(if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(peer: &str, https: bool, authority: &str) -> Hop<'static> {
        Hop {
            peer: Some(peer.parse().unwrap()),
            https,
            authority: Box::leak(authority.to_string().into_boxed_str()),
        }
    }

    #[test]
    fn a_direct_viewer() {
        let f = fields([], hop("203.0.113.7", true, "app.example.com"));
        assert_eq!(f.x_forwarded_for.as_deref(), Some("203.0.113.7"));
        assert_eq!(f.forwarded, "for=203.0.113.7;host=app.example.com;proto=https");
        assert_eq!(
            (f.proto, f.host.as_deref(), f.port),
            ("https", Some("app.example.com"), 443)
        );
        let f = fields([], hop("203.0.113.7", false, "app.example.com:8080"));
        assert_eq!(f.forwarded, "for=203.0.113.7;host=\"app.example.com:8080\";proto=http");
        assert_eq!((f.proto, f.port), ("http", 8080));
    }

    #[test]
    fn both_fields_carry_the_same_chain() {
        let f = fields(
            ["198.51.100.1, 2001:db8::1", "10.0.0.2"],
            hop("10.0.0.3", true, "[2001:db8::5]:8443"),
        );
        assert_eq!(
            f.x_forwarded_for.as_deref(),
            Some("198.51.100.1, 2001:db8::1, 10.0.0.2, 10.0.0.3")
        );
        assert_eq!(
            f.forwarded,
            "for=198.51.100.1, for=\"[2001:db8::1]\", for=10.0.0.2, for=10.0.0.3;host=\"[2001:db8::5]:8443\";proto=https"
        );
        assert_eq!(f.port, 8443);
        assert_eq!(port_of("[2001:db8::5]"), None);
    }

    #[test]
    fn what_a_viewer_writes_never_becomes_syntax() {
        let f = fields(
            ["evil;by=x, \"quoted\", for=1.2.3.4, 1.2.3.4:5678"],
            hop("192.0.2.9", false, "a.test"),
        );
        assert_eq!(
            f.forwarded,
            "for=unknown, for=unknown, for=unknown, for=1.2.3.4, for=192.0.2.9;host=a.test;proto=http"
        );
        // X-Forwarded-For keeps the entries as they came, as every proxy does.
        assert!(f.x_forwarded_for.unwrap().ends_with(", 192.0.2.9"));
    }

    #[test]
    fn an_apps_own_address_in_a_redirect_becomes_a_path() {
        let internal = internal_authorities("127.0.0.1:8081".parse().unwrap(), "App.Internal");
        assert_eq!(internal, ["127.0.0.1:8081", "app.internal:8081", "localhost:8081"]);
        let r = |l: &str| internal_redirect(l, &internal);
        assert_eq!(
            r("http://127.0.0.1:8081/login?next=%2F").as_deref(),
            Some("/login?next=%2F")
        );
        assert_eq!(r("HTTP://LOCALHOST:8081").as_deref(), Some("/"));
        assert_eq!(r("https://app.internal:8081?x=1").as_deref(), Some("/?x=1"));
        for kept in [
            "https://example.com/login",
            "http://127.0.0.1:8082/",
            "http://127.0.0.1/",
            "/relative",
            "//127.0.0.1:8081/",
            "http://user@127.0.0.1:8081/",
            "ftp://127.0.0.1:8081/",
        ] {
            assert_eq!(r(kept), None, "{kept}");
        }
        let v6 = internal_authorities("[::1]:80".parse().unwrap(), "");
        assert_eq!(internal_redirect("http://[::1]/x", &v6).as_deref(), Some("/x"));
        assert_eq!(internal_redirect("http://[::1]:80/x", &v6).as_deref(), Some("/x"));
        assert_eq!(internal_redirect("https://[::1]/x", &v6), None);
    }

    #[test]
    fn without_a_peer_the_own_element_says_unknown() {
        let f = fields(
            [],
            Hop {
                peer: None,
                https: false,
                authority: "",
            },
        );
        assert_eq!(f.x_forwarded_for, None);
        assert_eq!(f.forwarded, "for=unknown;proto=http");
        assert_eq!((f.host, f.port), (None, 80));
    }
}
