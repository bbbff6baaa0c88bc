//! The keys of a behavior's trusted key groups, and the signatures they already verified.

use std::collections::HashMap;
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;

/// A public key of a trusted key group, parsed once per config generation.
pub struct VerifyKey {
    pkey: PKey<Public>,
    is_ec: bool,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VerifyKey({}, {} bits)",
            if self.is_ec { "ECDSA" } else { "RSA" },
            self.pkey.bits()
        )
    }
}

impl VerifyKey {
    /// RSA (2048 bits or more) or ECDSA P-256, from PEM.
    pub fn from_pem(pem: &[u8]) -> Result<VerifyKey, String> {
        let pkey = PKey::public_key_from_pem(pem).map_err(|e| format!("not a PEM public key: {e}"))?;
        match pkey.id() {
            Id::RSA if pkey.bits() >= 2048 => Ok(VerifyKey { pkey, is_ec: false }),
            Id::RSA => Err(format!(
                "RSA keys must have at least 2048 bits (this one has {})",
                pkey.bits()
            )),
            Id::EC => {
                let ec = pkey.ec_key().map_err(|e| e.to_string())?;
                if ec.group().curve_name() == Some(openssl::nid::Nid::X9_62_PRIME256V1) {
                    Ok(VerifyKey { pkey, is_ec: true })
                } else {
                    Err("EC keys must be on the P-256 curve".into())
                }
            }
            _ => Err("only RSA and ECDSA P-256 public keys are supported".into()),
        }
    }

    fn verify(&self, sha256: bool, message: &[u8], signature: &[u8]) -> bool {
        // CloudFront pairs ECDSA with SHA-256 only.
        if self.is_ec && !sha256 {
            return false;
        }
        let md = if sha256 {
            MessageDigest::sha256()
        } else {
            MessageDigest::sha1()
        };
        match Verifier::new(md, &self.pkey) {
            Ok(mut v) => v.verify_oneshot(signature, message).unwrap_or(false),
            Err(_) => false,
        }
    }
}

/// The keys a behavior trusts: the union of its key groups, by key id.
#[derive(Default, Clone)]
pub struct TrustedKeys {
    pub(super) keys: HashMap<String, Arc<VerifyKey>>,
    /// Signatures already verified, so that a signed URL used for many requests (a page's
    /// assets, a video's segments) pays for the public-key operation once. Keyed by a
    /// SHA-256 over key id, algorithm, signature and signed bytes; only successes are kept.
    memo: Arc<Memo>,
}

/// A bounded set of verified (key, algorithm, signature, message) digests.
#[derive(Default)]
struct Memo {
    seen: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

/// Verified signatures kept per config generation; the set is cleared when full.
const MEMO_CAPACITY: usize = 65_536;

impl Memo {
    fn digest(key_id: &str, sha256: bool, message: &[u8], signature: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update((key_id.len() as u32).to_be_bytes());
        h.update(key_id.as_bytes());
        h.update([u8::from(sha256)]);
        h.update((signature.len() as u32).to_be_bytes());
        h.update(signature);
        h.update(message);
        h.finalize().into()
    }
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("TrustedKeys").field("ids", &ids).finish()
    }
}

impl TrustedKeys {
    pub fn insert(&mut self, id: String, key: Arc<VerifyKey>) {
        self.keys.insert(id, key);
    }

    /// Forgets remembered signatures (benchmarks measure the first use with it).
    pub fn forget_verified(&self) {
        if let Ok(mut seen) = self.memo.seen.lock() {
            seen.clear();
        }
    }

    /// Verifies `signature` over `message` with key `key_id`, remembering successes.
    pub(super) fn verify_signature(
        &self,
        key_id: &str,
        key: &VerifyKey,
        sha256: bool,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let digest = Memo::digest(key_id, sha256, message, signature);
        if self.memo.seen.lock().map(|s| s.contains(&digest)).unwrap_or(false) {
            return true;
        }
        if !key.verify(sha256, message, signature) {
            return false;
        }
        if let Ok(mut seen) = self.memo.seen.lock() {
            if seen.len() >= MEMO_CAPACITY {
                seen.clear();
            }
            seen.insert(digest);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_keys_are_refused() {
        let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
        let pem = PKey::from_rsa(rsa).unwrap().public_key_to_pem().unwrap();
        assert!(VerifyKey::from_pem(&pem).unwrap_err().contains("2048"));
        assert!(VerifyKey::from_pem(b"garbage").is_err());
    }
}
