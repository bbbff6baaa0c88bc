//! Reading a response's `Vary` header fields.

use std::borrow::Cow;

use http::HeaderMap;

/// Whether a response's `Vary` names `name` (lowercase) or `*`; on every response, so
/// without building the list.
pub fn varies_by(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(http::header::VARY)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .any(|t| t == b"*" || t.eq_ignore_ascii_case(name.as_bytes()))
}

/// The field names the response's Vary headers list, lower-cased (borrowed when they are
/// already), in order, repeats included.
pub fn vary_fields(headers: &HeaderMap) -> impl Iterator<Item = Cow<'_, str>> {
    headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| match n.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(n.to_ascii_lowercase()),
            false => Cow::Borrowed(n),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varies_by_finds_a_name_in_any_vary_field_or_a_star() {
        let mut h = HeaderMap::new();
        assert!(!super::varies_by(&h, "origin"));
        h.append("vary", "Accept-Encoding , X-Thing".parse().unwrap());
        assert!(super::varies_by(&h, "accept-encoding"));
        assert!(!super::varies_by(&h, "origin"));
        h.append("vary", "ORIGIN".parse().unwrap());
        assert!(super::varies_by(&h, "origin"));
        let mut star = HeaderMap::new();
        star.insert("vary", "*".parse().unwrap());
        assert!(super::varies_by(&star, "origin"));
    }
}
