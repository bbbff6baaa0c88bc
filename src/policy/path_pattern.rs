//! CloudFront path patterns, compiled once per config generation (behavior selection,
//! `edge::behavior`, tries them in order).
//!
//! Rules (CloudFront): patterns are tried in order and the first match wins; the default
//! `*` is last. A leading `/` is optional, `*` matches any run of characters (also across
//! `/`), `?` matches exactly one character, matching is case-sensitive and the query string
//! is never part of the path.

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// Pattern bytes, always starting with `/` unless the pattern is a lone `*`.
    pattern: Box<[u8]>,
    /// `*` alone: matches everything without scanning.
    match_all: bool,
}

/// Why a path pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    Empty,
    TooLong,
    BadChar(char),
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatternError::Empty => write!(f, "a path pattern may not be empty (use \"*\" for the default behavior)"),
            PatternError::TooLong => write!(f, "a path pattern may be at most 255 characters long"),
            PatternError::BadChar(c) => write!(
                f,
                "character {c:?} is not allowed in a path pattern (CloudFront allows A-Z a-z 0-9 _ - . * $ / ~ \" ' @ : + & and ? as a wildcard)"
            ),
        }
    }
}

impl PathPattern {
    /// Compiles a pattern as written in the config (`/images/*.jpg`, `images/*`, `*`).
    pub fn compile(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > 255 {
            return Err(PatternError::TooLong);
        }
        if let Some(c) = text.chars().find(|c| !is_pattern_char(*c)) {
            return Err(PatternError::BadChar(c));
        }
        let match_all = text.bytes().all(|b| b == b'*');
        let mut pattern = Vec::with_capacity(text.len() + 1);
        if !text.starts_with('/') && !text.starts_with('*') {
            pattern.push(b'/');
        }
        pattern.extend_from_slice(text.as_bytes());
        Ok(PathPattern {
            pattern: pattern.into_boxed_slice(),
            match_all,
        })
    }

    /// Does the request path (without query string) match? The edge matches the decoded
    /// canonical path (`edge::canonical`), which need not be UTF-8.
    pub fn matches(&self, path: impl AsRef<[u8]>) -> bool {
        self.match_all || glob_match(&self.pattern, path.as_ref())
    }
}

fn is_pattern_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.*$/~\"'@:+&?%=,!()[];".contains(c)
}

/// `*` = any run (also empty, also across `/`), `?` = exactly one byte. Linear-time
/// backtracking over the last star, no allocation.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        // A star first: it is a wildcard even where the text holds a `*` itself.
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        PathPattern::compile(p).unwrap().matches(path)
    }

    #[test]
    fn star_matches_everything() {
        assert!(m("*", "/"));
        assert!(m("*", "/a/b/c.jpg"));
        assert!(m("*", ""));
    }

    #[test]
    fn leading_slash_optional() {
        assert!(m("images/*", "/images/a.jpg"));
        assert!(m("/images/*", "/images/a.jpg"));
        assert!(!m("images/*", "/img/a.jpg"));
    }

    #[test]
    fn star_crosses_slashes() {
        assert!(m("/images/*.jpg", "/images/2024/05/cat.jpg"));
        assert!(!m("/images/*.jpg", "/images/2024/05/cat.png"));
        assert!(m("*.jpg", "/deep/down/x.jpg"));
    }

    #[test]
    fn question_mark_is_one_char() {
        assert!(m("/v?/*", "/v1/x"));
        assert!(!m("/v?/*", "/v10/x"));
        assert!(!m("/a?", "/a"));
    }

    #[test]
    fn case_sensitive() {
        assert!(!m("/Images/*", "/images/a.jpg"));
    }

    #[test]
    fn exact_pattern() {
        assert!(m("/index.html", "/index.html"));
        assert!(!m("/index.html", "/index.html5"));
        assert!(!m("/index.html", "/x/index.html"));
    }

    #[test]
    fn backtracking() {
        assert!(m("/a*b*c", "/aXbYbZc"));
        assert!(!m("/a*b*c", "/aXbYbZ"));
        assert!(m("/*a*a*a*", "/aaa"));
        assert!(!m("/*a*a*a*a", "/aaa"));
    }

    #[test]
    fn a_star_in_the_path_does_not_disarm_the_pattern_star() {
        // Found by the `pattern` fuzz target: the `*` was taken as a literal when the path
        // held one at its place, so `/private/*x` escaped a `/private/*` behavior.
        assert!(m("/private/*", "/private/*secret.pdf"));
        assert!(m("images/*", "/images/*\n/images/a.jpgimages/a.jpg"));
        assert!(m("/a*b", "/a*xb"));
        assert!(glob_match(
            b"https://cdn.example.test/x/*",
            b"https://cdn.example.test/x/*y"
        ));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert_eq!(PathPattern::compile(""), Err(PatternError::Empty));
        assert!(matches!(PathPattern::compile("/a b"), Err(PatternError::BadChar(' '))));
        assert!(matches!(
            PathPattern::compile(&"a".repeat(256)),
            Err(PatternError::TooLong)
        ));
    }
}
