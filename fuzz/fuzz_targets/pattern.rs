//! Path patterns and wildcards against a reference matcher.
//!
//! Input: `<pattern>\n<text>` (the text may hold further newlines). Checked, for every
//! input: `glob_match` (behaviors and policy resources), `PathPattern` as compiled from a
//! config, a custom policy's `Resource`, `util::one_star_match` (CORS origins and headers)
//! and invalidation paths all agree with `homefront_fuzz`'s dynamic-programming matcher.
//! A pattern that makes the matcher blow up exponentially trips libFuzzer's `-timeout`.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use homefront::policy::cache_policy::InvalidationPath;
use homefront::policy::path_pattern::{glob_match, PathPattern, PatternError};
use homefront::policy::signed::Policy;
use homefront::util::one_star_match;
use homefront_fuzz::{glob_reference, one_star_reference};
use libfuzzer_sys::fuzz_target;

/// The characters CloudFront allows in a path pattern, `*` and `?` included.
fn allowed_in_pattern(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.*$/~\"'@:+&?%=,!()[];".contains(c)
}

fuzz_target!(|data: &[u8]| {
    let (pattern, text) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };

    // The matcher itself, on raw bytes.
    let expected = glob_reference(pattern, text, true);
    assert_eq!(glob_match(pattern, text), expected, "glob_match");

    // A custom policy's Resource is matched with the same rules (the time and address
    // conditions hold here, so only the resource decides).
    if let Ok(resource) = std::str::from_utf8(pattern) {
        let url = String::from_utf8_lossy(text);
        let policy = Policy {
            resource: Some(resource.to_string()),
            date_less_than: 20,
            date_greater_than: Some(5),
            source_ip: None,
        };
        let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            policy.allows(&url, client, 10),
            glob_reference(resource.as_bytes(), url.as_bytes(), true),
            "Policy::allows on the resource"
        );
        assert!(!policy.allows(&url, client, 20), "DateLessThan is exclusive");
        assert!(!policy.allows(&url, client, 5), "DateGreaterThan is exclusive");
    }

    let (Ok(pattern), Ok(text)) = (std::str::from_utf8(pattern), std::str::from_utf8(text)) else {
        return;
    };

    // Behavior path patterns as the config compiles them.
    match PathPattern::compile(pattern) {
        Ok(compiled) => {
            assert!(!pattern.is_empty() && pattern.len() <= 255 && pattern.chars().all(allowed_in_pattern));
            // The leading `/` is optional, unless the pattern starts with a wildcard.
            let full = if pattern.starts_with('/') || pattern.starts_with('*') {
                pattern.to_string()
            } else {
                format!("/{pattern}")
            };
            assert_eq!(
                compiled.matches(text),
                glob_reference(full.as_bytes(), text.as_bytes(), true),
                "PathPattern {full:?}"
            );
        }
        Err(PatternError::Empty) => assert!(pattern.is_empty()),
        Err(PatternError::TooLong) => assert!(pattern.len() > 255),
        Err(PatternError::BadChar(c)) => {
            assert!(pattern.len() <= 255 && pattern.contains(c) && !allowed_in_pattern(c));
        }
    }

    // CORS origins and headers: at most one wildcard, `?` literal.
    assert_eq!(
        one_star_match(pattern, text),
        one_star_reference(pattern, text),
        "one_star_match"
    );
    if pattern.matches('*').count() == 1 {
        let question_literal = glob_reference(pattern.as_bytes(), text.as_bytes(), false);
        assert_eq!(one_star_match(pattern, text), question_literal, "one star as a glob");
    }

    // Invalidation paths: a trailing `*` is a prefix match, anything else is exact, on the
    // path put in canonical form (as cached entries are labelled); canonical already, it is
    // kept as written, and putting it in canonical form twice changes nothing.
    if let Ok(path) = InvalidationPath::parse(pattern) {
        assert!(pattern.starts_with('/'));
        assert!(pattern.find('*').is_none_or(|i| i + 1 == pattern.len()));
        let canonical = match &path {
            InvalidationPath::Exact(p) => p.clone(),
            InvalidationPath::Prefix(p) => format!("{p}*"),
        };
        assert_eq!(
            path.covers(text),
            glob_reference(canonical.as_bytes(), text.as_bytes(), false),
            "InvalidationPath {pattern:?} as {canonical:?}"
        );
        assert_eq!(InvalidationPath::parse(&canonical).as_ref(), Ok(&path), "{canonical:?}");
        let plain = pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/*?=&".contains(&b));
        if plain
            && !pattern
                .split('?')
                .next()
                .unwrap_or("")
                .split('/')
                .any(|s| s == "." || s == "..")
        {
            assert_eq!(canonical, pattern, "a canonical path is kept as written");
        }
    } else {
        let star_inside = pattern.find('*').is_some_and(|i| i + 1 < pattern.len());
        let (path, prefix) = match pattern.strip_suffix('*') {
            Some(p) => (p, true),
            None => (pattern, false),
        };
        let (path, query) = match path.split_once('?') {
            Some((p, _)) => (p.to_string(), true),
            None => (path.to_string(), false),
        };
        let path = if prefix && !query { format!("{path}x") } else { path };
        let not_canonical = homefront::policy::percent::canonical_path(path.as_bytes()).is_err();
        assert!(
            !pattern.starts_with('/') || star_inside || not_canonical,
            "refused {pattern:?}"
        );
    }
});
