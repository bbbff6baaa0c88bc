//! Percent-escapes (RFC 3986 §2.1): reading a `%XX` escape, decoding a string's escapes, and
//! the canonical one-way encoding of a path and of a query string that every stage reads
//! (the rules are listed in `edge::canonical`'s module doc; invalidation paths are put in
//! the same form).

use std::borrow::Cow;

/// A path the canonical form refuses (400 InvalidURI at the edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPath;

impl std::fmt::Display for BadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("The request path is not valid.")
    }
}

/// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Kept as sent in a path: unreserved, sub-delims, ":", "@" and "/".
fn path_char(b: u8) -> bool {
    unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/'
        )
}

/// The value of one hex digit, either case.
pub fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%XX` escape starting at `s[i]` (the `%`) stands for, if it is one.
fn escape_at(s: &[u8], i: usize) -> Option<u8> {
    let hi = hex(*s.get(i + 1)?)?;
    let lo = hex(*s.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Decodes `%XX` escapes; `None` for a malformed escape.
pub fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            out.push(escape_at(input, i)?);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Every `%XX` escape decoded once (a canonical path has only well-formed ones); a `%` that
/// starts no escape is kept.
pub fn decode_all(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'%') {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let Some(d) = escape_at(s, i) {
                out.push(d);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// The canonical path (see `edge::canonical`'s module doc), or [`BadPath`].
pub fn canonical_path(raw: &[u8]) -> Result<String, BadPath> {
    if raw.first() != Some(&b'/') {
        return Err(BadPath);
    }
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let Some(d) = escape_at(raw, i) else {
                return Err(BadPath);
            };
            match d {
                b'/' | b'\\' | 0 => return Err(BadPath),
                d if unreserved(d) => out.push(d as char),
                d => push_escape(&mut out, d),
            }
            i += 3;
            continue;
        }
        match b {
            b'\\' => return Err(BadPath),
            b if b < 0x20 || b == 0x7f => return Err(BadPath),
            b if path_char(b) => out.push(b as char),
            b => push_escape(&mut out, b),
        }
        i += 1;
    }
    // Dot segments, as any origin would read them (escapes decoded).
    let decoded = decode_all(out.as_bytes());
    if decoded.split(|&b| b == b'/').any(|seg| seg == b"." || seg == b"..") {
        return Err(BadPath);
    }
    Ok(out)
}

/// The canonical query string (see `edge::canonical`'s module doc).
pub fn canonical_query(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            if let Some(d) = escape_at(raw, i) {
                if unreserved(d) {
                    out.push(d as char);
                } else {
                    push_escape(&mut out, d);
                }
                i += 3;
                continue;
            }
            // Not an escape: a literal percent sign, encoded (kept raw, it could form an
            // escape with what a decoded escape after it turns into: `%4%43` → `%4C`).
            push_escape(&mut out, b'%');
        } else if path_char(b) || b == b'?' {
            out.push(b as char);
        } else {
            push_escape(&mut out, b);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_refuses_a_malformed_escape() {
        assert_eq!(percent_decode(b"a%2Fb%7e").as_deref(), Some(&b"a/b~"[..]));
        assert_eq!(percent_decode(b"%zz"), None);
        assert_eq!(percent_decode(b"a%2"), None);
        assert_eq!(percent_decode(b"100%"), None);
    }

    #[test]
    fn decode_all_keeps_a_percent_that_starts_no_escape() {
        assert_eq!(&*decode_all(b"/a%41%zz%"), b"/aA%zz%");
        assert!(matches!(decode_all(b"/plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn canonical_path_and_query() {
        assert_eq!(canonical_path(b"/%7euser/a%2bb").as_deref(), Ok("/~user/a%2Bb"));
        assert_eq!(canonical_path(b"/a/%2e%2e/b"), Err(BadPath));
        assert_eq!(canonical_path(b"relative"), Err(BadPath));
        assert_eq!(canonical_query(b"x=%7e%2f&z=100%"), "x=~%2F&z=100%25");
        assert_eq!(BadPath.to_string(), "The request path is not valid.");
    }
}
