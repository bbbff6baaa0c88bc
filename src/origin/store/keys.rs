//! Object keys: which are refused before they reach the disk, and the hash that names
//! their files.

use sha2::{Digest, Sha256};

/// Why a key is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadKey(pub &'static str);

/// S3 allows nearly any key; we refuse those that only an attack would send.
pub fn check_key(key: &str) -> Result<(), BadKey> {
    if key.is_empty() {
        return Err(BadKey("the object key is empty"));
    }
    if key.len() > 1024 {
        return Err(BadKey("the object key is longer than 1024 bytes"));
    }
    if key.starts_with('/') {
        return Err(BadKey("the object key may not start with '/'"));
    }
    if key.contains('\0') {
        return Err(BadKey("the object key may not contain NUL"));
    }
    if key.split(['/', '\\']).any(|seg| seg == ".." || seg == ".") {
        return Err(BadKey("the object key may not contain '.' or '..' segments"));
    }
    Ok(())
}

pub(super) fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("a").is_ok());
        assert!(check_key("a/b/c.txt").is_ok());
        assert!(check_key("a..b/...").is_ok());
        assert!(check_key("ünïcödé/ключ").is_ok());
        for bad in ["", "/abs", "../../etc/passwd", "a/../b", "a/./b", "a\0b", "..\\x"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(1025)).is_err());
    }
}
