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
