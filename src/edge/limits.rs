//! What the edge accepts from viewers (`limits` in the config): the size checks on a
//! request's head and body, and the per-client connection and request-rate limits. Pure:
//! the caller passes the request's parts and the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::model::{Limits, PerClientLimits};
use crate::edge::errors::EdgeError;

/// Checks a request's head against the size limits, as CloudFront counts them: `414` for a
/// URL (path and query) over `max_url_length` bytes, `413` for headers (names and values)
/// over `max_header_size` bytes, and `431` for more than `max_headers` fields.
pub fn check_head<'a>(
    limits: &Limits,
    target: &str,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), EdgeError> {
    if target.len() > limits.max_url_length {
        return Err(EdgeError::new(
            414,
            "RequestURITooLong",
            format!("The request URL is longer than {} bytes.", limits.max_url_length),
        ));
    }
    let mut size = 0;
    let mut count = 0;
    for (name, value) in headers {
        count += 1;
        size += name.len() + value.len();
    }
    if count > limits.max_headers {
        return Err(EdgeError::new(
            431,
            "TooManyHeaders",
            format!(
                "The request has {count} header fields; at most {} are accepted.",
                limits.max_headers
            ),
        ));
    }
    if size > limits.max_header_size {
        return Err(EdgeError::new(
            413,
            "RequestHeaderSectionTooLarge",
            format!("The request headers are larger than {} bytes.", limits.max_header_size),
        ));
    }
    Ok(())
}

/// Checks a declared or counted body length against `max_body_size`.
pub fn check_body(limits: &Limits, length: u64) -> Result<(), EdgeError> {
    if length > limits.max_body_size {
        return Err(body_too_large(limits.max_body_size));
    }
    Ok(())
}

/// The 413 for a body over `max` bytes.
pub fn body_too_large(max: u64) -> EdgeError {
    EdgeError::new(
        413,
        "RequestEntityTooLarge",
        format!("The request body is larger than {max} bytes."),
    )
}

/// The 429 a client gets over its request rate or connection count.
pub fn too_many(what: &str) -> EdgeError {
    EdgeError::new(
        429,
        "TooManyRequests",
        format!("Too many {what} from this client; slow down."),
    )
}

fn exempt(limits: &PerClientLimits, ip: IpAddr) -> bool {
    limits.exempt.iter().any(|c| c.contains(ip))
}

/// Open connections per client. [`Connections::enter`] hands out a slot that frees itself
/// when dropped (when the connection ends).
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One open connection of a client; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<Connections>,
    ip: Option<IpAddr>,
}

impl Connections {
    /// A slot for one more connection from `ip`, unless the client already has
    /// `max_connections` open (and is not exempt).
    pub fn enter(self: &Arc<Self>, limits: &PerClientLimits, ip: IpAddr) -> Option<Slot> {
        if limits.max_connections == 0 || exempt(limits, ip) {
            return Some(Slot {
                owner: self.clone(),
                ip: None,
            });
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= limits.max_connections {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            ip: Some(ip),
        })
    }

    /// Connections counted for `ip` now.
    pub fn open(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// Request rate per client: a token bucket per address holding up to `burst` requests,
/// refilled at `requests_per_second`. Times are milliseconds from any fixed start.
#[derive(Debug, Default)]
pub struct RequestRate {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths of a request.
    milli_tokens: u64,
    at_ms: u64,
}

/// Buckets untouched this long are full again and are forgotten.
const FORGET_AFTER_MS: u64 = 60_000;

impl RequestRate {
    /// Takes one request from `ip`'s bucket at time `now_ms`: `Ok` when there was one,
    /// `Err(retry_after_seconds)` when the client is over its rate.
    pub fn take(&self, limits: &PerClientLimits, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        if limits.requests_per_second == 0 || exempt(limits, ip) {
            return Ok(());
        }
        let capacity = u64::from(limits.burst.max(1)) * 1000;
        let per_ms = u64::from(limits.requests_per_second);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| now_ms.saturating_sub(b.at_ms) < FORGET_AFTER_MS);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            milli_tokens: capacity,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(b.at_ms);
        b.milli_tokens = (b.milli_tokens + elapsed.saturating_mul(per_ms)).min(capacity);
        b.at_ms = b.at_ms.max(now_ms);
        if b.milli_tokens >= 1000 {
            b.milli_tokens -= 1000;
            Ok(())
        } else {
            let missing_ms = (1000 - b.milli_tokens).div_ceil(per_ms);
            Err(missing_ms.div_ceil(1000).max(1))
        }
    }
}

/// Milliseconds on a monotonic clock, for rate limits.
pub(crate) fn monotonic_ms() -> u64 {
    static START: std::sync::LazyLock<std::time::Instant> = std::sync::LazyLock::new(std::time::Instant::now);
    START.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ip::Cidr;

    fn head(limits: &Limits, target: &str, headers: &[(&str, &str)]) -> Result<(), u16> {
        check_head(limits, target, headers.iter().map(|(n, v)| (*n, v.as_bytes()))).map_err(|e| e.status)
    }

    #[test]
    fn url_length_is_checked_to_the_byte() {
        let l = Limits::default();
        let at_limit = format!("/{}", "a".repeat(8191));
        assert_eq!(head(&l, &at_limit, &[]), Ok(()));
        assert_eq!(head(&l, &format!("{at_limit}b"), &[]), Err(414));
    }

    #[test]
    fn header_size_counts_every_name_and_value() {
        let l = Limits::default();
        let fits = "v".repeat(20_480 - 1);
        assert_eq!(head(&l, "/", &[("x", &fits)]), Ok(()));
        let over = format!("{fits}v");
        assert_eq!(head(&l, "/", &[("x", &over)]), Err(413));
        // Split over many fields, the total still counts.
        let many: Vec<(&str, &str)> = (0..40).map(|_| ("h", &fits[..600])).collect();
        assert_eq!(head(&l, "/", &many), Err(413));
    }

    #[test]
    fn too_many_fields_is_431() {
        let l = Limits::default();
        let fields: Vec<(&str, &str)> = (0..100).map(|_| ("a", "b")).collect();
        assert_eq!(head(&l, "/", &fields), Ok(()));
        let fields: Vec<(&str, &str)> = (0..101).map(|_| ("a", "b")).collect();
        assert_eq!(head(&l, "/", &fields), Err(431));
    }

    #[test]
    fn body_limit() {
        let l = Limits {
            max_body_size: 10,
            ..Limits::default()
        };
        assert!(check_body(&l, 10).is_ok());
        assert_eq!(check_body(&l, 11).unwrap_err().status, 413);
    }

    fn per_client(max_connections: u32, rps: u32, burst: u32) -> PerClientLimits {
        PerClientLimits {
            max_connections,
            requests_per_second: rps,
            burst,
            exempt: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        }
    }

    #[test]
    fn connection_slots_are_per_client_and_freed_on_drop() {
        let c = Arc::new(Connections::default());
        let l = per_client(2, 0, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = c.enter(&l, a).unwrap();
        let _s2 = c.enter(&l, a).unwrap();
        assert!(c.enter(&l, a).is_none(), "a third connection from one client");
        assert!(c.enter(&l, b).is_some(), "another client is not affected");
        drop(s1);
        assert_eq!(c.open(a), 1);
        assert!(c.enter(&l, a).is_some());
        // Exempt clients and a zero limit are never counted.
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| c.enter(&l, lo).unwrap()).collect();
        assert_eq!(c.open(lo), 0);
        drop(held);
        let unlimited = per_client(0, 0, 0);
        assert!((0..10).all(|_| c.enter(&unlimited, a).is_some()));
    }

    #[test]
    fn request_rate_allows_the_burst_then_the_rate() {
        let r = RequestRate::default();
        let l = per_client(0, 10, 5);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(r.take(&l, a, 1_000), Ok(()));
        }
        assert_eq!(r.take(&l, a, 1_000), Err(1), "the burst is spent");
        // 10 per second: one more every 100 ms.
        assert_eq!(r.take(&l, a, 1_099), Err(1));
        assert_eq!(r.take(&l, a, 1_100), Ok(()));
        assert_eq!(r.take(&l, a, 1_100), Err(1));
        // After a long pause the bucket is full again, never fuller.
        for _ in 0..5 {
            assert_eq!(r.take(&l, a, 60_000), Ok(()));
        }
        assert!(r.take(&l, a, 60_000).is_err());
        // A clock going backwards does not mint tokens.
        assert!(r.take(&l, a, 10).is_err());
        // Other clients and exempt ones are not affected.
        assert_eq!(r.take(&l, "192.0.2.9".parse().unwrap(), 60_000), Ok(()));
        assert!((0..100).all(|_| r.take(&l, "127.0.0.1".parse().unwrap(), 60_000).is_ok()));
    }

    #[test]
    fn retry_after_is_whole_seconds_for_slow_rates() {
        let r = RequestRate::default();
        let l = per_client(0, 1, 1);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(r.take(&l, a, 0), Ok(()));
        assert_eq!(r.take(&l, a, 0), Err(1));
        // Half a token after 500 ms: still a whole second to wait, rounded up.
        assert_eq!(r.take(&l, a, 500), Err(1));
    }
}
