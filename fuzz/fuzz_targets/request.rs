//! One canonical request, differentially: for an arbitrary request target and Host value,
//! what the origin receives is what the edge decided on.
//!
//! Input: `<flags byte><host>\n<target>`; bit 0 of the flags: HTTPS. Checked for every
//! request the edge forwards (`decide`):
//! - the path the origin receives (the target less the bucket or origin path prefix, and
//!   less the query) is canonical: canonicalizing it again changes nothing;
//! - that path, read as an origin reads it (every escape decoded once, as S3 does), selects
//!   the same behavior as the request did, and is the same object the request named;
//! - the signed-URL resource the edge checks, `scheme://authority/path`, names the same
//!   host and path: the authority holds no `/`, `?`, `#`, `@` or space, and the path is
//!   the one the origin receives;
//! - a request made of the canonical form (its authority as Host, its path and query as the
//!   target) is decided the same way (a fixed point).
//!
//! Refused requests must only be refused, never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use homefront::config::model::OriginKind;
use homefront::edge::route::decide_for_fuzz;
use homefront::edge::state::EdgeState;
use homefront::policy::percent::canonical_path;
use homefront::util::Clock;
use libfuzzer_sys::fuzz_target;
use pingora::http::RequestHeader;

/// Behaviors whose patterns hold characters that some encoding could hide: a signed
/// prefix, reserved characters, a one-character wildcard and a suffix.
const CONFIG: &str = r#"
listen: { http: "127.0.0.1:8080", https: "127.0.0.1:8443" }
origins:
  site: { bucket: site }
  app: { http: "127.0.0.1:9999", origin_path: /base }
distributions:
  - name: main
    domains: ["*"]
    default_root_object: index.html
    behaviors:
      - { path_pattern: "/private/*", origin: site }
      - { path_pattern: "/a+b;c=d/*", origin: app, cache: { max_ttl: 0 } }
      - { path_pattern: "/x?y/*", origin: site }
      - { path_pattern: "*.jpg", origin: app, cache: { query_strings: all } }
      - { path_pattern: "/%41/*", origin: site }
      - { path_pattern: "*", origin: site }
  - name: other
    domains: [other.test, "*.other.test"]
    behaviors:
      - { path_pattern: "/private/*", origin: app }
      - { path_pattern: "*", origin: site }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:9000"
  credentials: [ { access_key_id: fuzz, secret_access_key_file: origin.key } ]
"#;

static STATE: LazyLock<EdgeState> = LazyLock::new(|| {
    let dir: PathBuf = tempfile::Builder::new()
        .prefix("homefront-fuzz-request")
        .tempdir()
        .expect("scratch directory")
        .keep();
    std::fs::write(dir.join("origin.key"), "fuzz-secret").expect("secret");
    let loaded = homefront::config::load_str("fuzz.yaml", CONFIG, &dir).expect("the fuzz config loads");
    EdgeState::new(Arc::new(loaded.config), Clock::Fixed(1_767_225_600))
});

fn request(target: &[u8], host: &[u8]) -> Option<RequestHeader> {
    let mut req = RequestHeader::build("GET", target, None).ok()?;
    let value = http::HeaderValue::from_bytes(host).ok()?;
    req.insert_header(http::header::HOST, value).ok()?;
    Some(req)
}

/// Every `%XX` decoded once (the origin's reading of a canonical path).
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let https = flags & 1 == 1;
    let (host, target) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"/"[..]),
    };
    let Some(req) = request(target, host) else {
        return;
    };
    let state = &*STATE;
    let Ok(f) = decide_for_fuzz(state, &req, https) else {
        return;
    };
    let canon = &f.canon;

    // The path the origin receives.
    let (prefix, query_allowed) = match &f.origin.kind {
        OriginKind::Bucket { bucket } => (format!("/{bucket}"), false),
        OriginKind::Http { .. } => (f.origin.origin_path.clone(), true),
        other => panic!("unexpected origin kind {other:?}"),
    };
    let sent = f
        .target
        .strip_prefix(prefix.as_str())
        .unwrap_or_else(|| panic!("target {:?} lacks the origin's prefix {prefix:?}", f.target));
    let (sent_path, sent_query) = match sent.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (sent, None),
    };
    assert!(
        query_allowed || sent_query.is_none(),
        "a bucket got a query: {}",
        f.target
    );
    if canon.path == "/" {
        // The default root object stands in for `/`.
        assert_eq!(sent_path, "/index.html");
        return;
    }
    assert_eq!(sent_path, canon.path, "the origin gets the canonical path");
    assert_eq!(
        canonical_path(sent_path.as_bytes()).as_deref(),
        Ok(sent_path),
        "the path the origin gets is canonical"
    );

    // The origin's reading of that path selects the behavior the request did.
    let dist = &state.config.distributions[f.dist];
    let decoded = decode(sent_path);
    let chosen = homefront::edge::behavior::select(dist, &decoded).map(|(i, _)| i);
    assert_eq!(
        chosen,
        Some(f.behavior),
        "the origin's path {sent_path:?} selects another behavior"
    );
    assert!(!decoded.contains(&0) && !decoded.contains(&b'\\'));
    assert!(
        !decoded.split(|&b| b == b'/').any(|s| s == b"." || s == b".."),
        "a dot segment reaches the origin: {sent_path:?}"
    );

    // The signed-URL resource names this host and this path.
    assert!(
        !canon
            .authority
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b' ' | b'\\' | b'%')),
        "authority {:?}",
        canon.authority
    );
    assert_eq!(canon.authority, canon.authority.to_ascii_lowercase());
    let scheme = if https { "https" } else { "http" };
    let resource = format!("{scheme}://{}{}", canon.authority, canon.path);
    let after_scheme = &resource[scheme.len() + 3..];
    let slash = after_scheme.find('/').expect("a path");
    assert_eq!(&after_scheme[..slash], canon.authority);
    assert_eq!(&after_scheme[slash..], sent_path);

    // The canonical request is a fixed point.
    let again_target = canon.path_and_query();
    let Some(again) = request(again_target.as_bytes(), canon.authority.as_bytes()) else {
        panic!(
            "the canonical form is not a request: {again_target:?} {:?}",
            canon.authority
        );
    };
    match decide_for_fuzz(state, &again, https) {
        Ok(g) => {
            assert_eq!((g.dist, g.behavior), (f.dist, f.behavior));
            assert_eq!(g.canon, f.canon);
            assert_eq!(g.target, f.target);
        }
        Err(status) => panic!("the canonical form of a forwarded request was refused with {status}"),
    }
});
