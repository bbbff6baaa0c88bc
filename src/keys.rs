//! `homefront keygen` and `homefront sign-url`: the signer's side of signed URLs, for
//! operators and scripts (applications keep using botocore or the AWS JS signer).

use std::path::{Path, PathBuf};

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

use crate::policy::signed::{self, SignSpec};

/// A key pair just written.
#[derive(Debug)]
pub struct Generated {
    pub id: String,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub ec: bool,
}

impl Generated {
    /// What to paste into the config, and how to sign.
    pub fn instructions(&self) -> String {
        let (kind, flag) = if self.ec {
            ("ECDSA P-256", " --sha256")
        } else {
            ("RSA 2048", "")
        };
        format!(
            "# {kind} key pair {id}:\n#   private key (for the signing application): {private}\n#   public key (for the edge): {public}\n\
             # Add to your homefront.yaml:\nkey_groups:\n  signers:\n    - {{ id: {id}, public_key: {public} }}\n\
             # and to each private behavior:\n#   trusted_key_groups: [signers]\n\
             # Sign a URL:\n#   homefront sign-url --key-pair-id {id} --private-key {private} --expires 1h{flag} https://cdn.example.com/private/file\n",
            id = self.id,
            private = self.private_key.display(),
            public = self.public_key.display(),
        )
    }
}

/// `K` and 13 random upper-case letters and digits, like CloudFront's public key ids.
fn new_key_id() -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut raw = [0u8; 13];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| e.to_string())?;
    let mut id = String::from("K");
    id.extend(raw.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char));
    Ok(id)
}

/// Writes `private_key.pem` (PKCS#1 for RSA, SEC1 for EC: what botocore's examples, `rsa` and
/// `cryptography` load) with mode 0600, and `public_key.pem` (SubjectPublicKeyInfo).
pub fn keygen(dir: &Path, ec: bool) -> Result<Generated, String> {
    let private_key = dir.join("private_key.pem");
    let public_key = dir.join("public_key.pem");
    for p in [&private_key, &public_key] {
        if p.exists() {
            return Err(format!(
                "{} already exists; choose another --out directory",
                p.display()
            ));
        }
    }
    let (private_pem, public_pem) = if ec {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(|e| e.to_string())?;
        let key = EcKey::generate(&group).map_err(|e| e.to_string())?;
        let public = PKey::from_ec_key(key.clone())
            .and_then(|k| k.public_key_to_pem())
            .map_err(|e| e.to_string())?;
        (key.private_key_to_pem().map_err(|e| e.to_string())?, public)
    } else {
        let rsa = Rsa::generate(2048).map_err(|e| e.to_string())?;
        (
            rsa.private_key_to_pem().map_err(|e| e.to_string())?,
            rsa.public_key_to_pem().map_err(|e| e.to_string())?,
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    crate::util::write_file_atomic(&private_key, &private_pem, 0o600)
        .map_err(|e| format!("cannot write {}: {e}", private_key.display()))?;
    crate::util::write_file_atomic(&public_key, &public_pem, 0o644)
        .map_err(|e| format!("cannot write {}: {e}", public_key.display()))?;
    Ok(Generated {
        id: new_key_id()?,
        private_key,
        public_key,
        ec,
    })
}

/// Arguments of `homefront sign-url`.
pub struct SignArgs {
    pub key_pair_id: String,
    pub private_key: PathBuf,
    pub expires: String,
    pub policy_resource: Option<String>,
    pub ip: Option<String>,
    pub not_before: Option<String>,
    pub sha256: bool,
    pub cookies: bool,
    pub url: String,
}

/// `@EPOCH` or a duration from `now`.
pub fn parse_when(text: &str, now: u64) -> Result<u64, String> {
    match text.strip_prefix('@') {
        Some(epoch) => epoch
            .trim()
            .parse()
            .map_err(|_| format!("'{text}': expected @EPOCH_SECONDS")),
        None => crate::config::parse_duration(text).map(|d| now + d.as_secs()),
    }
}

/// The signed URL, or the Set-Cookie lines.
pub fn sign(args: &SignArgs, now: u64) -> Result<String, String> {
    if !(args.url.starts_with("https://") || args.url.starts_with("http://")) {
        return Err(format!("'{}' is not an http(s) URL", args.url));
    }
    if let Some(ip) = &args.ip {
        crate::policy::ip::Cidr::parse(ip).ok_or_else(|| format!("--ip '{ip}' is not an IP address or CIDR range"))?;
    }
    let pem =
        std::fs::read(&args.private_key).map_err(|e| format!("cannot read {}: {e}", args.private_key.display()))?;
    let key = PKey::private_key_from_pem(&pem)
        .map_err(|e| format!("{} is not a PEM private key: {e}", args.private_key.display()))?;
    let spec = SignSpec {
        url: &args.url,
        key_pair_id: &args.key_pair_id,
        expires: parse_when(&args.expires, now)?,
        resource: args.policy_resource.as_deref(),
        ip: args.ip.as_deref(),
        not_before: args.not_before.as_deref().map(|t| parse_when(t, now)).transpose()?,
        sha256: args.sha256,
    };
    if args.cookies {
        let cookies = signed::sign_cookies(&spec, &key)?;
        Ok(cookies
            .iter()
            .map(|(name, value)| format!("Set-Cookie: {name}={value}; Path=/; Secure; HttpOnly"))
            .collect::<Vec<_>>()
            .join("\n"))
    } else {
        signed::sign_url(&spec, &key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when() {
        assert_eq!(parse_when("@4102444800", 5), Ok(4_102_444_800));
        assert_eq!(parse_when("1h", 100), Ok(3700));
        assert!(parse_when("@soon", 0).is_err());
        assert!(parse_when("tomorrow", 0).is_err());
    }

    #[test]
    fn keygen_writes_usable_keys_once() {
        let dir = tempfile::tempdir().unwrap();
        for ec in [false, true] {
            let out = dir.path().join(if ec { "ec" } else { "rsa" });
            let g = keygen(&out, ec).unwrap();
            assert!(g.id.starts_with('K') && g.id.len() == 14);
            let public = std::fs::read(&g.public_key).unwrap();
            assert!(signed::VerifyKey::from_pem(&public).is_ok());
            let args = SignArgs {
                key_pair_id: g.id.clone(),
                private_key: g.private_key.clone(),
                expires: "1h".into(),
                policy_resource: None,
                ip: None,
                not_before: None,
                sha256: ec,
                cookies: false,
                url: "https://cdn.example.com/a".into(),
            };
            assert!(sign(&args, 0)
                .unwrap()
                .starts_with("https://cdn.example.com/a?Expires=3600&Signature="));
            assert!(g.instructions().contains(&format!("id: {}", g.id)));
            assert!(keygen(&out, ec).unwrap_err().contains("already exists"));
        }
    }
}
