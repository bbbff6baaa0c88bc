//! Bytes and text for the functions' built-ins, as Node and njs read them: the encodings
//! `Buffer`, `digest()` and njs's byte strings take, and the digests of `crypto`.

use crate::policy::percent::hex;

/// `text` in `encoding` (utf8, hex, base64, base64url, latin1/binary, ascii) as bytes.
/// Decoding is lenient as Node's is: hex stops at the first bad pair, base64 skips what is
/// not of its alphabet.
pub fn encode(text: &str, encoding: &str) -> Result<Vec<u8>, String> {
    match normalize(encoding)? {
        Encoding::Utf8 => Ok(text.as_bytes().to_vec()),
        Encoding::Latin1 => Ok(text.chars().map(|c| c as u32 as u8).collect()),
        Encoding::Hex => {
            let digits: Vec<u8> = text.bytes().collect();
            let mut out = Vec::with_capacity(digits.len() / 2);
            for pair in digits.chunks_exact(2) {
                match (hex(pair[0]), hex(pair[1])) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => break,
                }
            }
            Ok(out)
        }
        Encoding::Base64 | Encoding::Base64Url => Ok(base64_decode(text)),
    }
}

/// `bytes` as text in `encoding`.
pub fn decode(bytes: &[u8], encoding: &str) -> Result<String, String> {
    Ok(match normalize(encoding)? {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Latin1 => bytes.iter().map(|&b| b as char).collect(),
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => openssl::base64::encode_block(bytes),
        Encoding::Base64Url => openssl::base64::encode_block(bytes)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_"),
    })
}

enum Encoding {
    Utf8,
    Latin1,
    Hex,
    Base64,
    Base64Url,
}

fn normalize(encoding: &str) -> Result<Encoding, String> {
    Ok(match encoding.to_ascii_lowercase().as_str() {
        "utf8" | "utf-8" => Encoding::Utf8,
        "latin1" | "binary" | "ascii" => Encoding::Latin1,
        "hex" => Encoding::Hex,
        "base64" => Encoding::Base64,
        "base64url" => Encoding::Base64Url,
        other => return Err(format!("Unknown encoding: {other}")),
    })
}

/// Base64 in either alphabet, padded or not; other characters are skipped, and decoding
/// stops at the first `=`.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The digest of `chunks` with `algorithm` (md5, sha1, sha256), an HMAC when `key` is given.
pub fn digest(algorithm: &str, key: Option<&[u8]>, chunks: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    use openssl::hash::MessageDigest;
    let md = match algorithm {
        "md5" => MessageDigest::md5(),
        "sha1" => MessageDigest::sha1(),
        "sha256" => MessageDigest::sha256(),
        other => return Err(format!("Digest method not supported: {other} (md5, sha1, sha256)")),
    };
    let failed = |e: openssl::error::ErrorStack| e.to_string();
    match key {
        None => {
            let mut h = openssl::hash::Hasher::new(md).map_err(failed)?;
            for c in chunks {
                h.update(c).map_err(failed)?;
            }
            Ok(h.finish().map_err(failed)?.to_vec())
        }
        Some(key) => {
            let pkey = openssl::pkey::PKey::hmac(key).map_err(failed)?;
            let mut s = openssl::sign::Signer::new(md, &pkey).map_err(failed)?;
            for c in chunks {
                s.update(c).map_err(failed)?;
            }
            s.sign_to_vec().map_err(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_as_nodes_do() {
        for enc in ["utf8", "hex", "base64", "base64url", "latin1"] {
            let bytes = vec![0u8, 1, 0x7f, 0x80, 0xfe, 0xff, b'a'];
            if enc == "utf8" {
                continue;
            }
            let text = decode(&bytes, enc).unwrap();
            assert_eq!(encode(&text, enc).unwrap(), bytes, "{enc}");
        }
        assert_eq!(decode(b"\xfb\xff", "base64url").unwrap(), "-_8");
        assert_eq!(decode(b"\xfb\xff", "base64").unwrap(), "+/8=");
        // Either alphabet, with or without padding; hex stops at a bad pair.
        assert_eq!(encode("-_8", "base64").unwrap(), b"\xfb\xff");
        assert_eq!(encode("+/8=", "base64url").unwrap(), b"\xfb\xff");
        assert_eq!(encode("41zz42", "hex").unwrap(), b"A");
        assert_eq!(encode("é", "utf8").unwrap(), "é".as_bytes());
        assert!(encode("x", "utf16").is_err());
    }

    #[test]
    fn digests_and_hmacs_match_known_values() {
        let hex = |a: &str, k: Option<&[u8]>, d: &str| hex::encode(digest(a, k, &[d.as_bytes().to_vec()]).unwrap());
        assert_eq!(hex("md5", None, ""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex("sha1", None, "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex("sha256", None, "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hex("sha256", Some(b"Jefe"), "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Chunks hash as their concatenation.
        let whole = digest("sha1", None, &[b"hello world".to_vec()]).unwrap();
        assert_eq!(
            digest("sha1", None, &[b"hello".to_vec(), b" world".to_vec()]).unwrap(),
            whole
        );
        assert!(digest("sha512", None, &[]).is_err());
    }
}
