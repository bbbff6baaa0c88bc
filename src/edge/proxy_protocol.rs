//! The PROXY protocol (HAProxy's; version 1, text, and version 2, binary): a router, load
//! balancer or tunnel in front of the edge opens each connection with a header naming the
//! client it accepted. On a listener that `listen.proxy_protocol` names, every connection
//! must start with one, and only from a peer in `trusted_proxies`; the client it names
//! then stands for the peer everywhere (limits, signed-URL IP conditions, logs, the
//! forwarded fields an app gets). [`parse`] is the pure decoder; [`read`] takes the header
//! off a connection, byte-exact (what follows is TLS or HTTP, untouched).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection from this client.
    Proxied(SocketAddr),
    /// The proxy's own connection (a health check: v2 `LOCAL`, v1 `UNKNOWN`) or one of a
    /// family without an IP address: the peer stands for itself.
    Local,
}

/// The decoder's verdict on the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A header of `len` bytes.
    Done(usize, Header),
    /// Not complete: at least this many bytes in all are needed.
    Need(usize),
    Invalid(&'static str),
}

const V1_PREFIX: &[u8] = b"PROXY ";
/// A version 1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Decodes the header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return parse_v1(buf);
    }
    Parsed::Invalid("the connection did not start with a PROXY protocol header")
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("PROXY v1 header longer than 107 bytes")
        } else {
            Parsed::Need(buf.len() + 1)
        };
    };
    if end + 2 > V1_MAX {
        return Parsed::Invalid("PROXY v1 header longer than 107 bytes");
    }
    let Ok(line) = std::str::from_utf8(&buf[V1_PREFIX.len()..end]) else {
        return Parsed::Invalid("PROXY v1 header is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["UNKNOWN", ..] => Header::Local,
        [family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let (Ok(src), Ok(_dst)) = (src.parse::<IpAddr>(), dst.parse::<IpAddr>()) else {
                return Parsed::Invalid("PROXY v1 header with a bad address");
            };
            if src.is_ipv4() != (*family == "TCP4") {
                return Parsed::Invalid("PROXY v1 address of another family");
            }
            let port = |p: &str| p.parse::<u16>().ok().filter(|_| p.len() == 1 || !p.starts_with('0'));
            match (port(sport), port(dport)) {
                (Some(sport), Some(_)) => Header::Proxied(SocketAddr::new(src, sport)),
                _ => return Parsed::Invalid("PROXY v1 header with a bad port"),
            }
        }
        _ => return Parsed::Invalid("PROXY v1 header with a bad protocol or field count"),
    };
    Parsed::Done(end + 2, header)
}

fn parse_v2(buf: &[u8]) -> Parsed {
    if buf.len() < 16 {
        return Parsed::Need(16);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Parsed::Invalid("PROXY v2 header of another version");
    }
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if buf.len() < len {
        return Parsed::Need(len);
    }
    let body = &buf[16..len];
    let header = match command {
        0x0 => Header::Local,
        0x1 => match buf[13] {
            // TCP over IPv4: source, destination, source port, destination port.
            0x11 if body.len() >= 12 => {
                let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                Header::Proxied(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([body[8], body[9]])))
            }
            0x21 if body.len() >= 36 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[..16]);
                let ip = Ipv6Addr::from(octets);
                Header::Proxied(SocketAddr::new(
                    IpAddr::V6(ip),
                    u16::from_be_bytes([body[32], body[33]]),
                ))
            }
            0x11 | 0x21 => return Parsed::Invalid("PROXY v2 address block too short"),
            // UNSPEC, UDP or UNIX sockets: nothing to stand for the peer.
            _ => Header::Local,
        },
        _ => return Parsed::Invalid("PROXY v2 header with an unknown command"),
    };
    Parsed::Done(len, header)
}

/// Reads a header off `stream` within `deadline`, no byte past its end.
pub async fn read<S: AsyncRead + Unpin + ?Sized>(stream: &mut S, deadline: Duration) -> Result<Header, String> {
    let reading = async {
        let mut buf = Vec::with_capacity(V1_MAX);
        loop {
            match parse(&buf) {
                Parsed::Done(_, header) => return Ok(header),
                Parsed::Invalid(why) => return Err(why.to_string()),
                Parsed::Need(n) => {
                    let start = buf.len();
                    buf.resize(n, 0);
                    let got = stream.read(&mut buf[start..]).await.map_err(|e| e.to_string())?;
                    if got == 0 {
                        return Err("the connection closed inside the PROXY protocol header".to_string());
                    }
                    buf.truncate(start + got);
                }
            }
        }
    };
    tokio::time::timeout(deadline, reading)
        .await
        .unwrap_or_else(|_| Err("no PROXY protocol header in time".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | command);
        b.push(family);
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn version_1() {
        let h = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(h),
            Parsed::Done(44, Header::Proxied("203.0.113.7:56324".parse().unwrap()))
        );
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n";
        assert_eq!(
            parse(h),
            Parsed::Done(h.len(), Header::Proxied("[2001:db8::7]:4000".parse().unwrap()))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Parsed::Done(15, Header::Local));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Parsed::Need(19));
        assert_eq!(parse(b"PRO"), Parsed::Need(4));
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [&b"PROXY "[..], &[b'x'; 120]].concat();
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    #[test]
    fn version_2() {
        let mut body = vec![203, 0, 113, 7, 192, 0, 2, 1];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        // A TLV after the addresses is skipped.
        body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
        let h = v2(1, 0x11, &body);
        assert_eq!(
            parse(&h),
            Parsed::Done(h.len(), Header::Proxied("203.0.113.7:56324".parse().unwrap()))
        );
        assert_eq!(parse(&h[..10]), Parsed::Need(16));
        assert_eq!(parse(&h[..20]), Parsed::Need(h.len()));
        let mut body6 = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        body6.extend_from_slice(&[0; 16]);
        body6.extend_from_slice(&[0x0f, 0xa0, 0x01, 0xbb]);
        assert_eq!(
            parse(&v2(1, 0x21, &body6)),
            Parsed::Done(52, Header::Proxied("[2001:db8::7]:4000".parse().unwrap()))
        );
        assert_eq!(parse(&v2(0, 0x00, &[])), Parsed::Done(16, Header::Local));
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])), Parsed::Done(232, Header::Local));
        assert!(matches!(parse(&v2(1, 0x11, &[1, 2, 3])), Parsed::Invalid(_)));
        assert!(matches!(parse(&v2(2, 0x11, &body)), Parsed::Invalid(_)));
        let mut v3 = v2(1, 0x11, &body);
        v3[12] = 0x31;
        assert!(matches!(parse(&v3), Parsed::Invalid(_)));
    }

    #[tokio::test]
    async fn read_takes_the_header_and_nothing_more() {
        let mut input: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n\x16\x03\x01";
        let h = read(&mut input, Duration::from_secs(1)).await.unwrap();
        assert_eq!(h, Header::Proxied("203.0.113.7:56324".parse().unwrap()));
        assert_eq!(input, b"\x16\x03\x01");
        let mut body = vec![10, 0, 0, 9, 10, 0, 0, 1, 0, 80, 0, 80];
        body.push(0);
        let h2 = [v2(1, 0x11, &body[..12]), b"GET".to_vec()].concat();
        let mut input: &[u8] = &h2;
        assert_eq!(
            read(&mut input, Duration::from_secs(1)).await.unwrap(),
            Header::Proxied("10.0.0.9:80".parse().unwrap())
        );
        assert_eq!(input, b"GET");
        let mut input: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert!(read(&mut input, Duration::from_secs(1)).await.is_err());
        let mut input: &[u8] = b"PROXY TCP4";
        assert!(read(&mut input, Duration::from_secs(1)).await.is_err());
    }
}
