//! Invalidation paths: which cached entries an invalidation covers.

use crate::policy::percent::{canonical_path, canonical_query, BadPath};

/// An invalidation path: `/images/*` (a prefix; `*` only at the end) or an exact
/// `/a.jpg` (that object without a query string; `/a.jpg*` covers its query variants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidationPath {
    Exact(String),
    Prefix(String),
}

impl InvalidationPath {
    /// Parses an invalidation path and puts it in the canonical form cached entries are
    /// labelled with (`edge::canonical`), so `/%7Euser/*` covers what `/~user/a` stored.
    pub fn parse(text: &str) -> Result<InvalidationPath, String> {
        if !text.starts_with('/') {
            return Err(format!("invalidation path '{text}' must start with '/'"));
        }
        let (body, prefix) = match text.find('*') {
            None => (text, false),
            Some(i) if i == text.len() - 1 => (&text[..i], true),
            Some(_) => return Err(format!("invalidation path '{text}': '*' is allowed only at the end")),
        };
        let (path, query) = match body.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (body, None),
        };
        let refused = |e: BadPath| format!("invalidation path '{text}': {e}");
        let mut canonical = if prefix && query.is_none() {
            // A prefix may end inside a segment (`/.*`, `/a/..*`): canonical as the start
            // of a longer path.
            let mut longer = path.as_bytes().to_vec();
            longer.push(b'x');
            let mut c = canonical_path(&longer).map_err(refused)?;
            c.pop();
            c
        } else {
            canonical_path(path.as_bytes()).map_err(refused)?
        };
        if let Some(q) = query {
            canonical.push('?');
            canonical.push_str(&canonical_query(q.as_bytes()));
        }
        Ok(if prefix {
            InvalidationPath::Prefix(canonical)
        } else {
            InvalidationPath::Exact(canonical)
        })
    }

    /// Whether a cached entry's path (with its keyed query string) is covered.
    pub fn covers(&self, path_and_query: &str) -> bool {
        match self {
            InvalidationPath::Exact(p) => path_and_query == p,
            InvalidationPath::Prefix(p) => path_and_query.starts_with(p.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_paths() {
        let star = InvalidationPath::parse("/images/*").unwrap();
        assert!(star.covers("/images/a.jpg"));
        assert!(star.covers("/images/x/y.png?v=2"));
        assert!(!star.covers("/img/a.jpg"));
        let exact = InvalidationPath::parse("/a.jpg").unwrap();
        assert!(exact.covers("/a.jpg"));
        assert!(!exact.covers("/a.jpg?v=1"));
        assert!(InvalidationPath::parse("/a.jpg*").unwrap().covers("/a.jpg?v=1"));
        assert!(InvalidationPath::parse("/*").unwrap().covers("/anything"));
        assert!(InvalidationPath::parse("images/*").is_err());
        assert!(InvalidationPath::parse("/a*/b").is_err());
        // Canonical, as entries are labelled.
        assert_eq!(
            InvalidationPath::parse("/%7euser/a%2bb*"),
            Ok(InvalidationPath::Prefix("/~user/a%2Bb".into()))
        );
        assert_eq!(
            InvalidationPath::parse("/.*"),
            Ok(InvalidationPath::Prefix("/.".into()))
        );
        assert!(InvalidationPath::parse("/a/../b").is_err());
        assert!(InvalidationPath::parse("/a%2Fb").is_err());
    }
}
