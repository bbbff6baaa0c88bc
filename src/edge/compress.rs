//! Compression at the edge, as CloudFront does it (pure decisions; the proxy applies them).
//!
//! A behavior with `compress: true` compresses a response when the viewer accepts gzip,
//! brotli or zstd (q-values honored, `q=0` refuses), the content type is one CloudFront
//! compresses, the size is known and 1,000..=10,000,000 bytes, and the origin did not
//! encode it already (nor forbid it with `Cache-Control: no-transform`). Compressed
//! responses get a weak ETag, lose Content-Length, and are cached as their own variant
//! under the coding chosen (responses that could be compressed carry `Vary:
//! Accept-Encoding`, so an identity copy is never served to a gzip viewer or back).

use http::HeaderMap;

/// A content coding the edge can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Gzip,
    Zstd,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
            Coding::Zstd => "zstd",
        }
    }

    /// The level used: fast enough to compress on a miss while streaming, and the result is
    /// cached, so it is paid once per object and coding.
    pub fn level(self) -> u32 {
        match self {
            Coding::Br => 5,
            Coding::Gzip => 6,
            Coding::Zstd => 3,
        }
    }
}

/// Smallest and largest bodies compressed (CloudFront's bounds).
pub const MIN_SIZE: u64 = 1_000;
pub const MAX_SIZE: u64 = 10_000_000;

/// The coding for a viewer's `Accept-Encoding` (all its values joined by `,`): the
/// supported coding with the highest q-value (`*` stands for codings not named; `q=0`
/// refuses); ties prefer br, then gzip, then zstd. `None`: send identity.
pub fn choose(accept_encoding: &str) -> Option<Coding> {
    let q_of = |c: Coding| -> Option<f32> {
        let mut named = None;
        let mut star = None;
        for part in accept_encoding.split(',') {
            let mut it = part.split(';');
            let token = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            for param in it {
                let param = param.trim();
                if let Some(v) = param.strip_prefix("q=").or_else(|| param.strip_prefix("Q=")) {
                    q = v.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
                }
            }
            let matches = match c {
                Coding::Gzip => token == "gzip" || token == "x-gzip",
                other => token == other.token(),
            };
            if matches {
                named = Some(named.map_or(q, |n: f32| n.max(q)));
            } else if token == "*" {
                star = Some(q);
            }
        }
        named.or(star)
    };
    let mut best: Option<(Coding, f32)> = None;
    for c in [Coding::Br, Coding::Gzip, Coding::Zstd] {
        if let Some(q) = q_of(c) {
            if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((c, q));
            }
        }
    }
    best.map(|(c, _)| c)
}

/// Content types CloudFront compresses (parameters such as `charset` ignored), but
/// `text/event-stream`: a compressor holds back what it has not filled a block with, and
/// each event must reach the viewer as the origin sends it.
pub fn compressible_type(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if t == "text/event-stream" {
        return false;
    }
    const TYPES: &[&str] = &[
        "application/dash+xml",
        "application/eot",
        "application/font",
        "application/font-sfnt",
        "application/javascript",
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/opentype",
        "application/otf",
        "application/pkcs7-mime",
        "application/protobuf",
        "application/rss+xml",
        "application/atom+xml",
        "application/truetype",
        "application/ttf",
        "application/vnd.apple.mpegurl",
        "application/vnd.mapbox-vector-tile",
        "application/vnd.ms-fontobject",
        "application/wasm",
        "application/xhtml+xml",
        "application/xml",
        "application/x-font-opentype",
        "application/x-font-truetype",
        "application/x-font-ttf",
        "application/x-httpd-cgi",
        "application/x-javascript",
        "application/x-mpegurl",
        "application/x-opentype",
        "application/x-otf",
        "application/x-perl",
        "application/x-ttf",
        "font/eot",
        "font/opentype",
        "font/otf",
        "font/ttf",
        "image/svg+xml",
        "image/x-icon",
        "image/vnd.microsoft.icon",
    ];
    t.starts_with("text/") || TYPES.contains(&t.as_str())
}

/// Whether a response could be compressed for some viewer: the part of the decision that
/// depends on the response only (status 200, type, known size in bounds, not encoded, no
/// `no-transform`). Such responses vary by Accept-Encoding.
pub fn compressible(status: u16, headers: &HeaderMap) -> bool {
    let get = |name: http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if status != 200 {
        return false;
    }
    if !get(http::header::CONTENT_TYPE).is_some_and(compressible_type) {
        return false;
    }
    let encoded = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|c| !c.trim().eq_ignore_ascii_case("identity") && !c.trim().is_empty());
    if encoded {
        return false;
    }
    let no_transform = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"));
    if no_transform {
        return false;
    }
    get(http::header::CONTENT_LENGTH)
        .and_then(|l| l.trim().parse::<u64>().ok())
        .is_some_and(|l| (MIN_SIZE..=MAX_SIZE).contains(&l))
}

/// The ETag of a compressed representation: the origin's, made weak (the bytes differ from
/// what a strong ETag promised).
pub fn weak_etag(etag: &str) -> String {
    let etag = etag.trim();
    if etag.starts_with("W/") {
        etag.to_string()
    } else {
        format!("W/{etag}")
    }
}

/// What the viewer asked decides the variant: Range requests get identity (a range of the
/// original bytes), everything else the coding chosen from Accept-Encoding.
pub fn for_request(headers: &HeaderMap) -> Option<Coding> {
    if headers.contains_key(http::header::RANGE) {
        return None;
    }
    let ae: Vec<&str> = headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    choose(&ae.join(","))
}

/// A streaming encoder for one response body. Each call returns what is ready; the call
/// with `end` finishes the stream (gzip trailer, brotli's last meta-block, zstd's epilogue),
/// so the cached and sent bytes are a complete encoding.
pub struct Encoder(Inner);

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Done,
}

impl Encoder {
    pub fn new(coding: Coding) -> std::io::Result<Encoder> {
        let level = coding.level();
        Ok(Encoder(match coding {
            Coding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            // 4 KiB internal buffer, 22-bit window (4 MiB, brotli's default).
            Coding::Br => Inner::Br(Box::new(brotli::CompressorWriter::new(Vec::new(), 4096, level, 22))),
            Coding::Zstd => Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level as i32)?),
        }))
    }

    pub fn encode(&mut self, input: &[u8], end: bool) -> std::io::Result<bytes::Bytes> {
        use std::io::Write;
        match &mut self.0 {
            Inner::Gzip(w) => w.write_all(input)?,
            Inner::Br(w) => w.write_all(input)?,
            Inner::Zstd(w) => w.write_all(input)?,
            Inner::Done if input.is_empty() => return Ok(bytes::Bytes::new()),
            Inner::Done => return Err(std::io::Error::other("body after the end of a compressed stream")),
        }
        let out = if end {
            match std::mem::replace(&mut self.0, Inner::Done) {
                Inner::Gzip(w) => w.finish()?,
                Inner::Br(w) => w.into_inner(),
                Inner::Zstd(w) => w.finish()?,
                Inner::Done => Vec::new(),
            }
        } else {
            match &mut self.0 {
                Inner::Gzip(w) => std::mem::take(w.get_mut()),
                Inner::Br(w) => std::mem::take(w.get_mut()),
                Inner::Zstd(w) => std::mem::take(w.get_mut()),
                Inner::Done => Vec::new(),
            }
        };
        Ok(bytes::Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_streams_are_never_compressed() {
        assert!(compressible_type("text/html; charset=utf-8"));
        assert!(!compressible_type("text/event-stream"));
        assert!(!compressible_type("Text/Event-Stream; charset=utf-8"));
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
        h.insert(http::header::CONTENT_LENGTH, "5000".parse().unwrap());
        assert!(!compressible(200, &h));
        h.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(compressible(200, &h));
    }

    #[test]
    fn choice_follows_q_values() {
        assert_eq!(choose("gzip, deflate, br, zstd"), Some(Coding::Br));
        assert_eq!(choose("gzip"), Some(Coding::Gzip));
        assert_eq!(choose("x-gzip"), Some(Coding::Gzip));
        assert_eq!(choose("zstd"), Some(Coding::Zstd));
        assert_eq!(choose("br;q=0.5, gzip"), Some(Coding::Gzip));
        assert_eq!(choose("br;q=0, gzip;q=0.1"), Some(Coding::Gzip));
        assert_eq!(choose("gzip;q=0, br;q=0"), None);
        assert_eq!(choose("identity"), None);
        assert_eq!(choose(""), None);
        assert_eq!(choose("deflate"), None);
        assert_eq!(choose("*"), Some(Coding::Br));
        assert_eq!(choose("*;q=0.5, br;q=0"), Some(Coding::Gzip));
        assert_eq!(choose("gzip;q=0.8, zstd;q=0.9"), Some(Coding::Zstd));
        assert_eq!(choose("GZIP; Q=1"), Some(Coding::Gzip));
        assert_eq!(choose("gzip;q=nonsense"), None);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn what_is_compressible() {
        let ok = headers(&[("content-type", "text/html; charset=utf-8"), ("content-length", "5000")]);
        assert!(compressible(200, &ok));
        assert!(!compressible(206, &ok));
        assert!(!compressible(404, &ok));
        for (ct, len) in [
            ("application/javascript", "1000"),
            ("application/json", "10000000"),
            ("image/svg+xml", "2000"),
        ] {
            assert!(
                compressible(200, &headers(&[("content-type", ct), ("content-length", len)])),
                "{ct}"
            );
        }
        for (ct, len) in [
            ("image/png", "5000"),
            ("application/octet-stream", "5000"),
            ("text/css", "999"),
            ("text/css", "10000001"),
        ] {
            assert!(
                !compressible(200, &headers(&[("content-type", ct), ("content-length", len)])),
                "{ct} {len}"
            );
        }
        assert!(
            !compressible(200, &headers(&[("content-type", "text/css")])),
            "unknown size"
        );
        let encoded = headers(&[
            ("content-type", "text/css"),
            ("content-length", "5000"),
            ("content-encoding", "gzip"),
        ]);
        assert!(!compressible(200, &encoded), "never twice");
        let identity = headers(&[
            ("content-type", "text/css"),
            ("content-length", "5000"),
            ("content-encoding", "identity"),
        ]);
        assert!(compressible(200, &identity));
        let nt = headers(&[
            ("content-type", "text/css"),
            ("content-length", "5000"),
            ("cache-control", "public, no-transform"),
        ]);
        assert!(!compressible(200, &nt));
    }

    #[test]
    fn encoders_produce_complete_streams_chunk_by_chunk() {
        use std::io::Read;
        let text: Vec<u8> = (0..200_000u32)
            .map(|i| b"abcdefgh "[(i % 9) as usize] ^ (i / 5000) as u8)
            .collect();
        for coding in [Coding::Gzip, Coding::Br, Coding::Zstd] {
            let mut e = Encoder::new(coding).unwrap();
            let mut out = Vec::new();
            for chunk in text.chunks(16 * 1024) {
                out.extend_from_slice(&e.encode(chunk, false).unwrap());
            }
            out.extend_from_slice(&e.encode(&[], true).unwrap());
            assert!(e.encode(&[], true).unwrap().is_empty());
            assert!(out.len() < text.len() / 4, "{coding:?}: {}", out.len());
            let mut back = Vec::new();
            match coding {
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
                }
                Coding::Br => {
                    brotli::Decompressor::new(&out[..], 4096)
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Coding::Zstd => back = zstd::decode_all(&out[..]).unwrap(),
            }
            assert_eq!(back, text, "{coding:?}");
        }
    }

    #[test]
    fn etags_become_weak_once() {
        assert_eq!(weak_etag("\"abc\""), "W/\"abc\"");
        assert_eq!(weak_etag("W/\"abc\""), "W/\"abc\"");
    }

    #[test]
    fn ranges_get_identity() {
        assert_eq!(
            for_request(&headers(&[("accept-encoding", "gzip")])),
            Some(Coding::Gzip)
        );
        assert_eq!(
            for_request(&headers(&[("accept-encoding", "gzip"), ("range", "bytes=0-9")])),
            None
        );
        assert_eq!(
            for_request(&headers(&[
                ("accept-encoding", "gzip;q=0.2"),
                ("accept-encoding", "br;q=0.3")
            ])),
            Some(Coding::Br)
        );
    }
}
