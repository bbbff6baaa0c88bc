//! A bucket-store request's path and query, decoded exactly as s3s decodes them, once, so
//! that every decision homefront takes beside s3s (anonymous reads, the presign expiry cap,
//! unsigned headers, SigV2, the access log) reads the same names and values s3s dispatches
//! on. s3s 0.14 parses the query with `serde_urlencoded` (form decoding: `+` is a space,
//! `%XX` decoded in names and values, invalid UTF-8 replaced) and keeps repeated names; it
//! decodes the path with `urlencoding::decode` (no `+` rule; not UTF-8 → InvalidURI).

/// The decoded `(name, value)` pairs of a query, in request order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

/// A query or path that s3s refuses to decode (it answers 400 InvalidURI).
#[derive(Debug, PartialEq, Eq)]
pub struct Undecodable;

/// A parameter given more than once, where only one may be.
#[derive(Debug, PartialEq, Eq)]
pub struct Repeated;

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, Undecodable> {
        match raw {
            None => Ok(Query::default()),
            Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .map(Query)
                .map_err(|_| Undecodable),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// The value of `name`, which may be given at most once.
    pub fn unique(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut values = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let first = values.next();
        match values.next() {
            Some(_) => Err(Repeated),
            None => Ok(first),
        }
    }

    /// The value of `name` when given exactly once (for the access log).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.unique(name).ok().flatten()
    }
}

/// The path as s3s decodes it before splitting it into bucket and key.
pub fn decode_path(raw: &str) -> Result<String, Undecodable> {
    urlencoding::decode(raw)
        .map(|p| p.into_owned())
        .map_err(|_| Undecodable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_decoded_as_s3s_does() {
        let q = Query::parse(Some("version%49d=abc&%58-Amz-%45xpires=9&a+b=c+d%2B&flag&=x&e%3Dq=1")).unwrap();
        assert_eq!(q.get("versionId"), Some("abc"));
        assert_eq!(q.get("X-Amz-Expires"), Some("9"));
        assert_eq!(q.get("a b"), Some("c d+"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("e=q"), Some("1"));
        assert!(!q.has("version%49d"));
        assert_eq!(Query::parse(None).unwrap(), Query::default());
        // Invalid UTF-8 is replaced, not refused (serde_urlencoded decodes lossily).
        assert_eq!(Query::parse(Some("k=%FF")).unwrap().get("k"), Some("\u{FFFD}"));
    }

    #[test]
    fn repeated_parameters_are_seen_whatever_their_spelling() {
        let q = Query::parse(Some("versionId=a&version%49d=b&x=1")).unwrap();
        assert_eq!(q.unique("versionId"), Err(Repeated));
        assert_eq!(q.get("versionId"), None);
        assert_eq!(q.unique("x"), Ok(Some("1")));
        assert_eq!(q.unique("y"), Ok(None));
    }

    #[test]
    fn paths_are_decoded_as_s3s_does() {
        assert_eq!(decode_path("/%73ite/a+b%20c").unwrap(), "/site/a+b c");
        assert_eq!(decode_path("/site/%FF"), Err(Undecodable));
    }
}
