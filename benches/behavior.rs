//! Behavior matching and config compilation: the per-request routing cost and the cost of a
//! config generation (what a reload pays).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use homefront::edge::behavior;
use homefront::edge::canonical;
use homefront::edge::distribution::Router;
use homefront::policy::path_pattern::PathPattern;

/// A config with `n` behaviors before the default, CloudFront-style patterns.
fn config_text(n: usize) -> String {
    let mut s = String::from(
        "data_dir: ./data\nlisten: { http: \"127.0.0.1:8080\" }\norigins:\n  app: { http: \"127.0.0.1:3000\" }\n\
         distributions:\n  - name: main\n    domains: [cdn.example.com, \"*.example.com\"]\n    behaviors:\n",
    );
    for i in 0..n {
        let pattern = match i % 4 {
            0 => format!("/static/v{i}/*"),
            1 => format!("/images/{i}/*.jpg"),
            2 => format!("/api/v?/{i}/*"),
            _ => format!("*.{i}.css"),
        };
        s.push_str(&format!("      - {{ path_pattern: \"{pattern}\", origin: app }}\n"));
    }
    s.push_str("      - { path_pattern: \"*\", origin: app }\n");
    s
}

fn bench(c: &mut Criterion) {
    let base = std::env::temp_dir();
    for n in [4usize, 32] {
        let text = config_text(n);
        let loaded = homefront::config::load_str("bench.yaml", &text, &base).expect("bench config is valid");
        let dist = &loaded.config.distributions[0];
        let router = Router::new(&loaded.config.distributions);

        c.bench_function(&format!("select_behavior/{n}_behaviors/default_hit"), |b| {
            b.iter(|| behavior::select(black_box(dist), black_box("/some/deep/path/to/file.html")))
        });
        c.bench_function(&format!("select_behavior/{n}_behaviors/first_hit"), |b| {
            b.iter(|| behavior::select(black_box(dist), black_box("/static/v0/app.js")))
        });
        c.bench_function(&format!("route_host/{n}_behaviors"), |b| {
            b.iter(|| router.route(black_box("img.example.com:443")))
        });
        c.bench_function(&format!("config_compile/{n}_behaviors"), |b| {
            b.iter(|| homefront::config::load_str("bench.yaml", black_box(&text), &base).is_ok())
        });
    }
    // The canonical request every request pays for before routing (`edge::canonical`).
    let plain = pingora::http::RequestHeader::build("GET", b"/static/v0/app.js?v=3", None).unwrap();
    let mut plain = plain;
    plain.insert_header("host", "cdn.example.com").unwrap();
    c.bench_function("canonical_request/plain", |b| {
        b.iter(|| canonical::canonicalize(&canonical::Raw::of(black_box(&plain), true)).is_ok())
    });
    let mut encoded =
        pingora::http::RequestHeader::build("GET", b"/static/%76%30/a%20b%2bc.js?v=%33&x=%7e", None).unwrap();
    encoded.insert_header("host", "CDN.Example.com:443").unwrap();
    c.bench_function("canonical_request/encoded", |b| {
        b.iter(|| canonical::canonicalize(&canonical::Raw::of(black_box(&encoded), true)).is_ok())
    });
    let p = PathPattern::compile("/a*b*c*d*e*f").unwrap();
    c.bench_function("path_pattern/backtracking_worst_case", |b| {
        b.iter(|| p.matches(black_box("/aXbXcXdXeXgggggggggggggggggggggggggggggggggggggggggggggggg")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
