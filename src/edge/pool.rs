//! The upstreams of an `http` origin at run time: which are healthy, how many requests each
//! has in flight, and which one a request goes to (round-robin, least connections, or
//! consistent hashing by path with pingora's ketama ring).
//!
//! Health comes from two sides when the origin has a health check: active checks (a TCP
//! connect, or `GET path` answering 2xx/3xx, every `interval`), and the requests themselves
//! (an upstream that refuses a connection is marked down at once). A down upstream is tried
//! again when a check passes; without a health check nothing is ever marked down (nothing
//! could mark it up again), and a refused connection only sends that request to the next
//! upstream. If every upstream is down, requests still try them (better a chance than a
//! certain failure).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::Backend;

use crate::config::model::{Balance, HealthCheckSpec, Upstream};

pub struct Pool {
    pub origin: String,
    pub upstreams: Vec<Upstream>,
    /// Each upstream's address as text, its metric label (formatted once, not per request).
    pub labels: Vec<String>,
    balance: Balance,
    pub health_check: Option<HealthCheckSpec>,
    healthy: Vec<AtomicBool>,
    active: Vec<AtomicUsize>,
    next: AtomicUsize,
    ring: Option<std::sync::Arc<pingora::lb::selection::consistent::KetamaHashing>>,
}

impl Pool {
    pub fn new(
        origin: &str,
        upstreams: Vec<Upstream>,
        balance: Balance,
        health_check: Option<HealthCheckSpec>,
    ) -> Pool {
        let ring = (balance == Balance::ConsistentHash).then(|| {
            let backends: BTreeSet<Backend> = upstreams
                .iter()
                .filter_map(|u| Backend::new(&u.address.to_string()).ok())
                .collect();
            std::sync::Arc::new(pingora::lb::selection::consistent::KetamaHashing::build(&backends))
        });
        Pool {
            origin: origin.to_string(),
            labels: upstreams.iter().map(|u| u.address.to_string()).collect(),
            healthy: upstreams.iter().map(|_| AtomicBool::new(true)).collect(),
            active: upstreams.iter().map(|_| AtomicUsize::new(0)).collect(),
            upstreams,
            balance,
            health_check,
            next: AtomicUsize::new(0),
            ring,
        }
    }

    pub fn is_healthy(&self, i: usize) -> bool {
        self.healthy.get(i).is_some_and(|h| h.load(Ordering::Relaxed))
    }

    /// Records a health result; returns whether it changed.
    pub fn set_healthy(&self, i: usize, up: bool) -> bool {
        self.healthy.get(i).is_some_and(|h| h.swap(up, Ordering::Relaxed) != up)
    }

    pub fn acquire(&self, i: usize) {
        if let Some(a) = self.active.get(i) {
            a.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn release(&self, i: usize) {
        if let Some(a) = self.active.get(i) {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// The upstream for a request (`key`: its path, for consistent hashing), skipping those
    /// already tried; healthy ones first. `None` when every upstream was tried.
    pub fn pick(&self, key: &[u8], tried: &[usize]) -> Option<usize> {
        let untried: Vec<usize> = (0..self.upstreams.len()).filter(|i| !tried.contains(i)).collect();
        if untried.is_empty() {
            return None;
        }
        let healthy: Vec<usize> = untried.iter().copied().filter(|&i| self.is_healthy(i)).collect();
        let candidates = if healthy.is_empty() { &untried } else { &healthy };
        match self.balance {
            Balance::RoundRobin => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                Some(candidates[n % candidates.len()])
            }
            Balance::LeastConnections => candidates
                .iter()
                .copied()
                .min_by_key(|&i| (self.active[i].load(Ordering::Relaxed), i)),
            Balance::ConsistentHash => {
                let ring = self.ring.as_ref()?;
                let mut it = ring.iter(key);
                // The ring's order for this key, first acceptable candidate.
                for _ in 0..self.upstreams.len() * 4 {
                    let Some(b) = it.next() else { break };
                    let addr = b.addr.to_string();
                    if let Some(i) = candidates
                        .iter()
                        .copied()
                        .find(|&i| self.upstreams[i].address.to_string() == addr)
                    {
                        return Some(i);
                    }
                }
                candidates.first().copied()
            }
        }
    }
}

/// Checks one upstream: TCP connect within `timeout`, then, with a path, `GET path` over
/// HTTP/1.1 answering 2xx or 3xx. (HTTPS upstreams are checked by connect only.)
pub async fn check(upstream: &Upstream, spec: &HealthCheckSpec, timeout: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(upstream.address)).await;
    let Ok(Ok(mut stream)) = connect else {
        return false;
    };
    let Some(path) = spec.path.as_deref().filter(|_| !upstream.tls) else {
        return true;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: homefront-health-check\r\nConnection: close\r\n\r\n",
        upstream.sni
    );
    let exchange = async {
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = [0u8; 32];
        let mut got = 0;
        while got < 12 {
            let n = stream.read(&mut buf[got..]).await.ok()?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let status = std::str::from_utf8(&buf[..got])
            .ok()?
            .split(' ')
            .nth(1)?
            .parse::<u16>()
            .ok()?;
        Some((200..400).contains(&status))
    };
    matches!(tokio::time::timeout(timeout, exchange).await, Ok(Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(balance: Balance, n: u16) -> Pool {
        let ups = (0..n)
            .map(|i| Upstream {
                address: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                tls: false,
                sni: "app".into(),
            })
            .collect();
        Pool::new("app", ups, balance, None)
    }

    #[test]
    fn round_robin_skips_down_and_tried_upstreams() {
        let p = pool(Balance::RoundRobin, 3);
        let picks: Vec<usize> = (0..6).map(|_| p.pick(b"/", &[]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        p.set_healthy(1, false);
        let picks: Vec<usize> = (0..4).map(|_| p.pick(b"/", &[]).unwrap()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_eq!(
            p.pick(b"/", &[0, 2]),
            Some(1),
            "a down upstream is still better than none"
        );
        assert_eq!(p.pick(b"/", &[0, 1, 2]), None);
    }

    #[test]
    fn least_connections_prefers_the_idlest() {
        let p = pool(Balance::LeastConnections, 3);
        p.acquire(0);
        p.acquire(0);
        p.acquire(1);
        assert_eq!(p.pick(b"/", &[]), Some(2));
        p.acquire(2);
        p.acquire(2);
        assert_eq!(p.pick(b"/", &[]), Some(1));
        p.release(0);
        p.release(0);
        assert_eq!(p.pick(b"/", &[]), Some(0));
        p.release(0);
        assert_eq!(p.pick(b"/", &[]), Some(0), "never below zero");
    }

    #[test]
    fn consistent_hashing_keeps_a_path_on_one_upstream_and_moves_only_its_keys() {
        let p = pool(Balance::ConsistentHash, 4);
        let keys: Vec<String> = (0..200).map(|i| format!("/img/{i}.jpg")).collect();
        let before: Vec<usize> = keys.iter().map(|k| p.pick(k.as_bytes(), &[]).unwrap()).collect();
        let again: Vec<usize> = keys.iter().map(|k| p.pick(k.as_bytes(), &[]).unwrap()).collect();
        assert_eq!(before, again);
        for i in 0..4 {
            assert!(before.contains(&i), "upstream {i} gets some keys");
        }
        p.set_healthy(2, false);
        let after: Vec<usize> = keys.iter().map(|k| p.pick(k.as_bytes(), &[]).unwrap()).collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 {
                assert_eq!(a, b, "keys of healthy upstreams stay put");
            } else {
                assert_ne!(*a, 2);
            }
        }
    }
}
