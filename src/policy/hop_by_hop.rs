//! Hop-by-hop fields (RFC 9110 §7.6.1): what belongs to one connection and is neither
//! stored in the cache nor passed on. The fields a message's `Connection` names, and the
//! connection-specific fields any message may carry.

use http::{HeaderMap, HeaderName};

/// Connection-specific fields, whether `Connection` names them or not (framing and upgrade
/// fields are the HTTP layer's own and are left to it).
const CONNECTION_SPECIFIC: [&str; 3] = ["keep-alive", "proxy-connection", "te"];

/// The fields of `headers` to drop before storing or passing on the message: those its
/// `Connection` names (but the framing fields, which the HTTP layer reframes), and the
/// connection-specific ones. `Connection` itself is the HTTP layer's to write.
pub fn fields_to_drop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut drop: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| {
            !matches!(
                t.as_str(),
                "" | "close" | "keep-alive" | "content-length" | "transfer-encoding"
            )
        })
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|n| headers.contains_key(n))
        .collect();
    for name in CONNECTION_SPECIFIC {
        if headers.contains_key(name) {
            drop.push(HeaderName::from_static(name));
        }
    }
    drop.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    drop.dedup();
    drop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(h: &[(&str, &str)]) -> Vec<String> {
        let mut map = HeaderMap::new();
        for (n, v) in h {
            map.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), v.parse().unwrap());
        }
        fields_to_drop(&map).iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn named_and_connection_specific_fields_go() {
        assert!(names(&[("cache-control", "max-age=60")]).is_empty());
        assert_eq!(
            names(&[
                ("connection", "X-Session, close"),
                ("connection", "x-trace"),
                ("x-session", "abc"),
                ("x-trace", "1"),
                ("x-kept", "yes"),
                ("keep-alive", "timeout=5"),
            ]),
            ["keep-alive", "x-session", "x-trace"]
        );
        // Framing stays with the HTTP layer; a named field that is absent is no matter.
        assert_eq!(
            names(&[
                ("connection", "content-length, transfer-encoding, x-absent, bad name"),
                ("content-length", "5")
            ]),
            Vec::<String>::new()
        );
    }
}
