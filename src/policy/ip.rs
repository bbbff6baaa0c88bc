//! Client addresses: CIDR ranges, and who the client is behind trusted proxies.

use std::net::IpAddr;

/// An IPv4 or IPv6 network, `10.0.0.0/8` or a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { net: addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(a)) => a.to_ipv4_mapped().is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            _ => false,
        }
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the rightmost
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    let mut last = peer;
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => last = ip,
            Ok(ip) => return ip,
            // A garbled entry: nothing to its left can be trusted.
            Err(_) => return last,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(c.contains(ip("192.0.2.10")));
        assert!(!c.contains(ip("192.0.3.1")));
        assert!(c.contains(ip("::ffff:192.0.2.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("203.0.113.7").unwrap().contains(ip("203.0.113.7")));
        assert!(!Cidr::parse("203.0.113.7").unwrap().contains(ip("203.0.113.8")));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(ip("2001:db8::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope/8").is_none());
    }

    #[test]
    fn client_behind_trusted_proxies() {
        let trusted = [Cidr::parse("127.0.0.0/8").unwrap(), Cidr::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("203.0.113.7"), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("198.51.100.1, 203.0.113.7, 10.1.1.1"), &trusted),
            ip("203.0.113.7")
        );
        // An untrusted peer cannot choose its address.
        assert_eq!(
            client_ip(ip("198.51.100.9"), Some("203.0.113.7"), &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("garbage, 10.0.0.5"), &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), Some("203.0.113.7"), &[]), ip("127.0.0.1"));
    }
}
