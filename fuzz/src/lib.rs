//! Reference implementations the fuzz targets compare homefront against. They are
//! deliberately simple (a dynamic program, exhaustive splits), so that when one disagrees
//! with homefront's optimized code, the optimized code is the suspect.

pub mod signed_reference;

/// Does `pattern` match the whole of `text`? `*` matches any run of bytes (also empty, also
/// `/`); with `question_is_wildcard`, `?` matches exactly one byte; every other byte
/// matches itself. O(pattern × text) time, no backtracking.
pub fn glob_reference(pattern: &[u8], text: &[u8], question_is_wildcard: bool) -> bool {
    // row[j]: the pattern read so far matches text[..j].
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for &pc in pattern {
        let mut next = vec![false; text.len() + 1];
        if pc == b'*' {
            let mut reachable = false;
            for j in 0..=text.len() {
                reachable |= row[j];
                next[j] = reachable;
            }
        } else {
            for j in 1..=text.len() {
                let one = pc == text[j - 1] || (question_is_wildcard && pc == b'?');
                next[j] = row[j - 1] && one;
            }
        }
        row = next;
    }
    row[text.len()]
}

/// S3/CloudFront CORS matching: `pattern` holds at most one wildcard, its first `*`; any
/// later `*` is literal. `value` matches when it is the pattern with the star replaced by
/// some middle part: the only candidate middle is cut out, put back between the pattern's
/// two halves, and the result compared with `value`.
pub fn one_star_reference(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let Some(star) = p.iter().position(|&b| b == b'*') else {
        return p == v;
    };
    let (pre, post) = (&p[..star], &p[star + 1..]);
    if v.len() < pre.len() + post.len() {
        return false;
    }
    let middle = &v[pre.len()..v.len() - post.len()];
    [pre, middle, post].concat() == v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_reference_basics() {
        assert!(glob_reference(b"/a*b?", b"/aXXbY", true));
        assert!(!glob_reference(b"/a*b?", b"/aXXbY", false));
        assert!(glob_reference(b"/a*b?", b"/aXXb?", false));
        assert!(glob_reference(b"*", b"", true));
        assert!(!glob_reference(b"?", b"", true));
        assert!(glob_reference(b"", b"", true));
        assert!(!glob_reference(b"", b"x", true));
    }

    #[test]
    fn one_star_reference_basics() {
        assert!(one_star_reference("https://*.example.com", "https://a.example.com"));
        assert!(!one_star_reference("https://*.example.com", "https://example.com"));
        assert!(one_star_reference("a*b*", "axxb*"));
        assert!(!one_star_reference("a*b*", "axxbz"));
        assert!(one_star_reference("x", "x"));
        assert!(!one_star_reference("ab*ba", "aba"));
    }
}
