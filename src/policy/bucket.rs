//! Buckets: the names S3 allows, and the versioning state a bucket's configuration can set.

use serde::{Deserialize, Serialize};

/// A bucket's versioning state, once it has been set (S3: a bucket never returns to
/// unversioned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    Enabled,
    Suspended,
}

/// S3 bucket naming rules; also what keeps bucket names safe as directory names.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if (3..=63).contains(&name.len()) && ok_chars && ends && !name.contains("..") {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid bucket name (3-63 characters: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("site").is_ok());
        assert!(check_bucket_name("my.site-1").is_ok());
        for bad in ["ab", "Site", "-site", "site-", "a..b", "s_te"] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
