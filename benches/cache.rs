//! The per-request cache decisions: building the key and computing a response's TTL.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use homefront::policy::cache_policy::{cache_key, ttl, CachePolicy, KeyInput, KeyList};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

fn bench(c: &mut Criterion) {
    let mut req = HeaderMap::new();
    req.insert("origin", HeaderValue::from_static("https://app.example.com"));
    req.insert("accept-encoding", HeaderValue::from_static("gzip, deflate, br, zstd"));
    let default = CachePolicy::default();
    let rich = CachePolicy {
        query_strings: KeyList::Whitelist(vec!["v".into(), "w".into()]),
        cookies: KeyList::Whitelist(vec!["lang".into()]),
        headers: vec![HeaderName::from_static("origin")],
        ..CachePolicy::default()
    };
    for (name, policy) in [("default", &default), ("query_cookie_header", &rich)] {
        c.bench_function(&format!("cache_key/{name}"), |b| {
            b.iter(|| {
                cache_key(
                    black_box(policy),
                    &KeyInput {
                        distribution: "main",
                        scheme: "https",
                        host: "cdn.example.com",
                        path: black_box("/images/2026/11/photo.jpg"),
                        query: Some("v=3&utm_source=x&w=800"),
                        cookies: Some("session=abc; lang=fr; theme=dark"),
                        headers: &req,
                        signed: false,
                    },
                )
            })
        });
    }
    let mut resp = HeaderMap::new();
    resp.insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=600, stale-while-revalidate=30"),
    );
    resp.insert("vary", HeaderValue::from_static("Origin, Accept-Encoding"));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    c.bench_function("ttl/max_age_with_vary", |b| {
        b.iter(|| {
            ttl(
                &default,
                StatusCode::OK,
                black_box(&resp),
                false,
                Duration::from_secs(10),
                now,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
