//! CloudFront Functions: the cost of one viewer-request call as the edge makes it (the event
//! built from a request's fields, the call, the result read back and diffed), and of the
//! call alone. AWS's "add index.html" sample and its 1.0 counterpart.

use criterion::{criterion_group, criterion_main, Criterion};
use homefront::functions::event::{self, Returned};
use homefront::functions::{Function, Limits, Runtime};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudfront-functions");

fn headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (n, v) in [
        ("host", "www.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("cookie", "session=abc123; theme=dark"),
        ("referer", "https://www.example.com/"),
        ("sec-fetch-mode", "navigate"),
    ] {
        h.append(n, v.parse().unwrap());
    }
    h
}

fn bench(c: &mut Criterion) {
    let headers = headers();
    for (name, file, runtime) in [
        ("js-2.0", "url-rewrite-single-page-apps.js", Runtime::Js2),
        ("js-1.0", "docs2023-add-index.js", Runtime::Js1),
    ] {
        let source = std::fs::read_to_string(format!("{SAMPLES}/{file}")).unwrap();
        let f = Function::compile("index", file, runtime, source, None, Limits::default()).unwrap();
        c.bench_function(&format!("functions/viewer_request_{name}"), |b| {
            b.iter(|| {
                let request = event::request_of("GET", "/docs/", Some("a=1"), &headers);
                let ev = event::Event {
                    version: "1.0".into(),
                    context: event::Context {
                        distribution_domain_name: "www.example.com".into(),
                        distribution_id: "site".into(),
                        event_type: "viewer-request".into(),
                        request_id: "0123456789abcdef".into(),
                    },
                    viewer: event::Viewer { ip: "192.0.2.1".into() },
                    request,
                    response: None,
                };
                let out = f.run(&ev.to_json(), "0123456789abcdef", 1_800_000_000_000);
                let Ok(Returned::Request(after)) = event::returned_by_request(out.result.unwrap()) else {
                    panic!("a request comes back")
                };
                event::request_edit(&ev.request, &after, &headers).unwrap()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
