//! Updating a stored response from the 304 that revalidated it (RFC 9111 §3.2, §4.3.4):
//! every field the 304 carries replaces the stored one of that name, `Date` and custom
//! fields included, but those the stored body depends on or the HTTP layer frames
//! (`Content-Length`, `Content-Encoding`, `Transfer-Encoding`, `Vary`, which keys the
//! stored variants). The 304 is the newer response: an `Age` it does not carry no longer
//! applies.

use http::{HeaderMap, HeaderName};

/// Fields a 304 never changes in the stored response.
const KEPT: [&str; 6] = [
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "vary",
    "connection",
    "set-cookie",
];

/// `stored`'s fields updated from `not_modified`'s.
pub fn update_from_304(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    if !not_modified.contains_key(http::header::AGE) {
        out.remove(http::header::AGE);
    }
    let names: Vec<&HeaderName> = not_modified.keys().filter(|n| !KEPT.contains(&n.as_str())).collect();
    for name in names {
        out.remove(name);
        for value in not_modified.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_headers as headers;
    use super::*;

    #[test]
    fn the_304s_fields_replace_the_stored_ones() {
        let stored = headers(&[
            ("date", "Tue, 14 Nov 2023 22:00:00 GMT"),
            ("age", "30"),
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("content-encoding", "gzip"),
            ("vary", "Accept-Encoding"),
            ("x-version", "1"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("x-stays", "yes"),
        ]);
        let not_modified = headers(&[
            ("date", "Tue, 14 Nov 2023 23:00:00 GMT"),
            ("content-type", "text/markdown"),
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("vary", "*"),
            ("x-version", "2"),
            ("x-multi", "c"),
        ]);
        let u = update_from_304(&stored, &not_modified);
        assert_eq!(u["date"], "Tue, 14 Nov 2023 23:00:00 GMT");
        assert_eq!(u["content-type"], "text/markdown");
        assert_eq!(u["x-version"], "2");
        assert_eq!(u.get_all("x-multi").iter().collect::<Vec<_>>(), ["c"]);
        assert_eq!(u["x-stays"], "yes");
        assert_eq!(
            (&u["content-length"], &u["content-encoding"], &u["vary"]),
            (
                &"5".parse().unwrap(),
                &"gzip".parse().unwrap(),
                &"Accept-Encoding".parse().unwrap()
            )
        );
        assert!(u.get("age").is_none(), "the stored Age belonged to the older response");
        let with_age = headers(&[("age", "7")]);
        assert_eq!(update_from_304(&stored, &with_age)["age"], "7");
    }
}
