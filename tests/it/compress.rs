//! Compression at the edge: gzip, brotli and zstd for viewers that accept them (q-values
//! honored), only compressible types of 1,000..10,000,000 bytes, never twice, weak ETags,
//! one cached variant per coding, identity for Range requests. Bodies are decoded with
//! independent decoders (flate2, brotli, zstd).

use std::io::Read as _;

use crate::common::*;

fn script(n: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!("function f{i}(a, b) {{ return a * {i} + b; }}\n"));
        i += 1;
    }
    s.truncate(n);
    s.into_bytes()
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
        }
        "br" => {
            brotli::Decompressor::new(body, 4096).read_to_end(&mut out).unwrap();
        }
        "zstd" => out = zstd::decode_all(body).unwrap(),
        other => panic!("{other}"),
    }
    out
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn get(hf: &Homefront, path: &str, headers: &[(&str, &str)]) -> Got {
    // reqwest here neither asks for nor decodes compression: what we send is what we get.
    let client = hf.client(&["cdn.test"]);
    let mut rb = client.get(format!("{}{path}", hf.https_base("cdn.test")));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    Got {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

async fn put(hf: &Homefront, key: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> String {
    let out = hf
        .s3()
        .put_object()
        .bucket("site")
        .key(key)
        .content_type(content_type)
        .set_content_encoding(encoding.map(str::to_string))
        .body(body.into())
        .send()
        .await
        .unwrap();
    out.e_tag().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_coding_is_its_own_cached_variant_with_a_weak_etag() {
    let hf = Homefront::start(STORE_CONFIG);
    let js = script(100 * 1024);
    let etag = put(&hf, "app.js", "application/javascript", None, js.clone()).await;

    for (ae, coding) in [
        ("gzip, deflate", "gzip"),
        ("gzip, deflate, br, zstd", "br"),
        ("zstd", "zstd"),
        ("br;q=0.5, gzip;q=0.9", "gzip"),
    ] {
        let miss_or_hit = get(&hf, "/app.js", &[("accept-encoding", ae)]).await;
        assert_eq!(miss_or_hit.status, 200);
        assert_eq!(miss_or_hit.h("content-encoding"), Some(coding), "{ae}");
        assert_eq!(miss_or_hit.h("content-length"), None);
        assert_eq!(miss_or_hit.h("etag"), Some(format!("W/{etag}").as_str()));
        let vary = miss_or_hit.h("vary").unwrap().to_ascii_lowercase();
        assert!(vary.contains("accept-encoding"), "{vary}");
        assert!(
            miss_or_hit.body.len() < js.len() / 3,
            "{coding}: {} bytes",
            miss_or_hit.body.len()
        );
        assert_eq!(decode(coding, &miss_or_hit.body), js, "{ae}");
        let again = get(&hf, "/app.js", &[("accept-encoding", ae)]).await;
        assert_eq!(again.h("x-cache"), Some("Hit from homefront"), "{ae}");
        assert_eq!(again.h("content-encoding"), Some(coding));
        assert_eq!(decode(coding, &again.body), js);
    }
    // Identity: no Accept-Encoding, or every coding refused; the original bytes and ETag.
    for headers in [
        vec![],
        vec![("accept-encoding", "gzip;q=0, br;q=0")],
        vec![("accept-encoding", "identity")],
    ] {
        let plain = get(&hf, "/app.js", &headers).await;
        assert_eq!(plain.h("content-encoding"), None, "{headers:?}");
        assert_eq!(plain.h("etag"), Some(etag.as_str()));
        assert_eq!(plain.body, js);
        assert!(plain
            .h("vary")
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding"));
    }
    // Conditional GET of the compressed variant with its weak ETag.
    let inm = format!("W/{etag}");
    let nm = get(&hf, "/app.js", &[("accept-encoding", "gzip"), ("if-none-match", &inm)]).await;
    assert_eq!(nm.status, 304);
    // HEAD: the variant's headers, no body.
    let client = hf.client(&["cdn.test"]);
    let head = client
        .head(format!("{}/app.js", hf.https_base("cdn.test")))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-encoding"], "br");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_compressible_responses_of_the_right_size_and_never_twice() {
    let hf = Homefront::start(STORE_CONFIG);
    put(&hf, "small.css", "text/css", None, script(999)).await;
    put(&hf, "edge.css", "text/css", None, script(1000)).await;
    put(&hf, "photo.png", "image/png", None, script(5000)).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &script(5000)).unwrap();
    let pre = gz.finish().unwrap();
    let pre_etag = put(&hf, "pre.js", "application/javascript", Some("gzip"), pre.clone()).await;
    let ae = [("accept-encoding", "gzip, br")];

    let small = get(&hf, "/small.css", &ae).await;
    assert_eq!(small.h("content-encoding"), None, "999 bytes stay as they are");
    assert_eq!(small.body, script(999));
    let edge = get(&hf, "/edge.css", &ae).await;
    assert_eq!(edge.h("content-encoding"), Some("br"), "1,000 bytes are compressed");
    assert_eq!(decode("br", &edge.body), script(1000));
    let png = get(&hf, "/photo.png", &ae).await;
    assert_eq!(png.h("content-encoding"), None);
    assert!(!png
        .h("vary")
        .unwrap_or("")
        .to_ascii_lowercase()
        .contains("accept-encoding"));
    // Already gzip from the origin: passed through untouched, even to a br viewer.
    let already = get(&hf, "/pre.js", &ae).await;
    assert_eq!(already.h("content-encoding"), Some("gzip"));
    assert_eq!(already.h("etag"), Some(pre_etag.as_str()));
    assert_eq!(already.body, pre);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_request_gets_the_original_bytes() {
    let hf = Homefront::start(STORE_CONFIG);
    let js = script(50_000);
    put(&hf, "lib.js", "text/javascript", None, js.clone()).await;
    // The gzip variant exists first; a Range request still gets identity bytes.
    let full = get(&hf, "/lib.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(full.h("content-encoding"), Some("gzip"));
    for _ in 0..2 {
        let part = get(
            &hf,
            "/lib.js",
            &[("accept-encoding", "gzip"), ("range", "bytes=100-199")],
        )
        .await;
        assert_eq!(part.status, 206);
        assert_eq!(part.h("content-encoding"), None);
        assert_eq!(part.h("content-range"), Some("bytes 100-199/50000"));
        assert_eq!(part.body, &js[100..200]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compress_false_turns_it_off() {
    let config = STORE_CONFIG.replace(
        r#"{ path_pattern: "*", origin: site }"#,
        r#"{ path_pattern: "*", origin: site, compress: false }"#,
    );
    let hf = Homefront::start(&config);
    put(&hf, "app.js", "application/javascript", None, script(20_000)).await;
    let r = get(&hf, "/app.js", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(r.h("content-encoding"), None);
    assert_eq!(r.body, script(20_000));
}
