//! Cache variants: what a request's variant of a cached response is keyed by (the fields
//! the stored response's `Vary` names, `Origin` always, and the coding the edge gives this
//! viewer), hashed as pingora's `VarianceBuilder` hashes them.

use std::borrow::Cow;

use http::HeaderMap;

use crate::policy::cache_policy::vary::vary_fields;

/// What a request's variant is keyed by: the request's values of the fields the stored
/// response's `Vary` names, plus `Origin` always, so a response made for a plain request
/// (no CORS headers) is never replayed to a CORS request, nor one made for one site's
/// Origin to another's. Fields the request does not carry are left out, so variants whose
/// responses name different fields (S3 adds `Vary: Origin, Access-Control-Request-*` only
/// when an Origin was sent) still agree on the key of a request; a fixed marker makes the
/// key never empty, so every entry is a variant and a plain request never takes another
/// variant's place. Accept-Encoding is normalized.
///
/// Hashed as pingora's `VarianceBuilder` hashes a list of names and values (each name and
/// value, in name order, followed by a zero byte, into a 128-bit BLAKE2b), without building
/// the list: every cache hit computes it, and the list's strings were a sixth of a hit's
/// instructions (7.7k of 48k under callgrind). The tests keep the list as the reference.
pub fn variance_key(stored: &HeaderMap, req: &HeaderMap) -> [u8; 16] {
    let mut input = Vec::with_capacity(VARIANCE_INPUT);
    variance_input(stored, req, &mut input);
    variance_hash(&input)
}

/// Room for a usual [`variance_input`]: the marker, `origin`, `accept-encoding`.
pub const VARIANCE_INPUT: usize = 128;

/// The bytes [`variance_key`] hashes, into `out`. The same bytes give the same key, which
/// the hit path uses to skip the hash for a request like one it already matched.
pub fn variance_input(stored: &HeaderMap, req: &HeaderMap, out: &mut Vec<u8>) {
    const MARKER: &str = "homefront-variance";
    let mut names: Vec<Cow<'_, str>> = Vec::with_capacity(4);
    names.extend(vary_fields(stored));
    // The marker's value is the request's only when the response's Vary names it too.
    let marker_varies = names.iter().any(|n| n == MARKER);
    for always in ["origin", MARKER] {
        if !names.iter().any(|n| n == always) {
            names.push(Cow::Borrowed(always));
        }
    }
    names.sort_unstable();
    names.dedup();
    for name in &names {
        let start = out.len();
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        // The request's values, joined with commas.
        let value_at = out.len();
        for (i, v) in req
            .get_all(name.as_ref())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(v.as_bytes());
        }
        if name == "accept-encoding" {
            // What the origin saw, and the coding the edge gives this viewer (a Range
            // request gets identity): one variant per pair.
            let coding = super::compress::for_request(req).map_or("identity", |c| c.token());
            let normalized = std::str::from_utf8(&out[value_at..]).map_or("identity", normalize_accept_encoding);
            out.truncate(value_at);
            out.extend_from_slice(normalized.as_bytes());
            out.push(b'|');
            out.extend_from_slice(coding.as_bytes());
        } else if name == MARKER && (!marker_varies || out.len() == value_at) {
            out.truncate(value_at);
            out.push(b'1');
        } else if out.len() == value_at {
            // Fields the request does not carry are left out.
            out.truncate(start);
            continue;
        }
        out.push(0);
    }
}

/// The key of a [`variance_input`]: pingora's variance hash.
pub fn variance_hash(input: &[u8]) -> [u8; 16] {
    use blake2::Digest;
    blake2::Blake2b::<blake2::digest::consts::U16>::digest(input).into()
}

/// Accept-Encoding as CloudFront normalizes it: `br,gzip`, `gzip`, `br` or `identity`,
/// so that the key (via Vary) and the origin see one of four values instead of every
/// browser's spelling.
pub fn normalize_accept_encoding(value: &str) -> &'static str {
    let mut gzip = false;
    let mut br = false;
    for part in value.split(',') {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        let refused = it.any(|p| {
            let p = p.trim();
            let p: Cow<'_, str> = match p.contains(' ') {
                true => p.replace(' ', "").into(),
                false => p.into(),
            };
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        if refused {
            continue;
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = true;
        } else if coding.eq_ignore_ascii_case("br") {
            br = true;
        }
    }
    match (br, gzip) {
        (true, true) => "br,gzip",
        (false, true) => "gzip",
        (true, false) => "br",
        (false, false) => "identity",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache_policy::test_headers as headers;

    #[test]
    fn variants_are_keyed_by_request_values_and_origin() {
        let plain_resp = headers(&[]);
        let cors_resp = headers(&[(
            "vary",
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        )]);
        let admin = headers(&[("origin", "https://admin.example")]);
        let none = headers(&[]);
        // Either stored response gives a request the same key.
        assert_eq!(
            variance_inputs(&plain_resp, &admin),
            variance_inputs(&cors_resp, &admin)
        );
        assert_eq!(variance_inputs(&plain_resp, &none), variance_inputs(&cors_resp, &none));
        assert_ne!(
            variance_inputs(&plain_resp, &admin),
            variance_inputs(&plain_resp, &none)
        );
        assert_eq!(variance_inputs(&plain_resp, &none).len(), 1, "never empty");
        let ae = headers(&[("vary", "accept-encoding")]);
        assert_eq!(
            variance_inputs(&ae, &headers(&[("accept-encoding", "gzip, deflate, br")])),
            variance_inputs(&ae, &headers(&[("accept-encoding", "br;q=1, gzip")])),
        );
    }

    /// Lower-cased field names listed in the response's Vary headers, sorted, once each.
    fn vary_names(headers: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = vary_fields(headers).map(Cow::into_owned).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The reference for [`variance_key`]: the names and values it hashes, as the list the
    /// edge built before it (the semantics tests below are stated on it).
    fn variance_inputs(stored: &HeaderMap, req: &HeaderMap) -> Vec<(String, String)> {
        let mut names = vary_names(stored);
        if !names.iter().any(|n| n == "origin") {
            names.push("origin".into());
        }
        let mut out = vec![("homefront-variance".to_string(), "1".to_string())];
        for name in names {
            let values: Vec<&str> = req
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let mut value = values.join(",");
            if name == "accept-encoding" {
                // What the origin saw, and the coding the edge gives this viewer (a Range
                // request gets identity): one variant per pair.
                let coding = crate::edge::compress::for_request(req).map_or("identity", |c| c.token());
                value = format!("{}|{coding}", normalize_accept_encoding(&value));
            }
            if !value.is_empty() {
                out.push((name, value));
            }
        }
        out
    }

    /// The variance key as pingora's builder makes it from [`variance_inputs`].
    fn reference_variance(stored: &HeaderMap, req: &HeaderMap) -> Option<[u8; 16]> {
        let mut b = pingora::cache::VarianceBuilder::new();
        for (name, value) in variance_inputs(stored, req) {
            b.add_owned_name_value(name, value.into_bytes());
        }
        b.finalize()
    }

    #[test]
    fn the_variance_key_is_pingoras_hash_of_the_variance_inputs() {
        let varies = [
            vec![],
            vec![("vary", "Accept-Encoding")],
            vec![("vary", "Origin, Accept-Encoding"), ("vary", "accept-encoding")],
            vec![("vary", "X-Variant, origin"), ("vary", " , ")],
            vec![("vary", "homefront-variance")],
            vec![("vary", "Access-Control-Request-Method,Access-Control-Request-Headers")],
            vec![("vary", "not a name, X-Variant")],
        ];
        let requests = [
            vec![],
            vec![("accept-encoding", "gzip, deflate, br")],
            vec![("accept-encoding", "br;q=0"), ("accept-encoding", "GZIP")],
            vec![("origin", "https://a.example"), ("x-variant", "1")],
            vec![("x-variant", ""), ("x-variant", "")],
            vec![("x-variant", "a"), ("x-variant", "b"), ("x-variant", "c")],
            vec![("homefront-variance", "2")],
            vec![("homefront-variance", "")],
            vec![("range", "bytes=0-1"), ("accept-encoding", "gzip")],
            vec![
                ("access-control-request-method", "PUT"),
                ("origin", "https://b.example"),
            ],
        ];
        let mut keys = std::collections::HashSet::new();
        for vary in &varies {
            for req in &requests {
                let (stored, req) = (headers(vary), headers(req));
                let key = Some(variance_key(&stored, &req));
                assert_eq!(key, reference_variance(&stored, &req), "{vary:?} {req:?}");
                keys.insert(key);
            }
        }
        assert!(keys.len() > 10, "the inputs make different keys: {}", keys.len());
    }

    #[test]
    fn accept_encoding_normalization() {
        assert_eq!(normalize_accept_encoding("gzip, deflate, br, zstd"), "br,gzip");
        assert_eq!(normalize_accept_encoding("gzip;q=1.0, identity; q=0.5"), "gzip");
        assert_eq!(normalize_accept_encoding("br;q=0, gzip"), "gzip");
        assert_eq!(normalize_accept_encoding("deflate"), "identity");
        assert_eq!(normalize_accept_encoding(""), "identity");
        assert_eq!(normalize_accept_encoding("BR"), "br");
        assert_eq!(normalize_accept_encoding("X-Gzip, br; q = 0"), "gzip");
        assert_eq!(normalize_accept_encoding("gzip;q=0.0,br;q=0.001"), "br");
    }
}
