//! Reading the files and variables a configuration names: secret access keys, trusted
//! public keys and certificate/key pairs (the TLS store loads certificates with the same
//! reader, so a configuration that validates serves).

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::*;
use crate::policy::signed::VerifyKey;

/// A secret access key from `secret_access_key_file` (trimmed; an error at `at` when it is
/// empty or unreadable). A missing file that `generate` takes on (it will be generated) is
/// no error: `None`.
pub(super) fn secret_from_file(
    path: &Path,
    at: &[Seg],
    errors: &mut Errors<'_>,
    generate: impl FnOnce(&Path) -> bool,
) -> Option<String> {
    let at = p(at, &[k("secret_access_key_file")]);
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Ok(_) => {
            errors.at(&at, format!("{} is empty", path.display()));
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate(path) => None,
        Err(e) => {
            errors.at(&at, format!("cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// A secret access key from the environment variable `secret_access_key_env` names.
pub(super) fn secret_from_env(var: &str, at: &[Seg], errors: &mut Errors<'_>) -> Option<String> {
    match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => {
            errors.at(
                &p(at, &[k("secret_access_key_env")]),
                format!("environment variable {var} is not set or empty"),
            );
            None
        }
    }
}

/// A trusted public key from its PEM file; the error names the file.
pub(super) fn read_public_key(path: &Path) -> Result<VerifyKey, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    VerifyKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
}

/// A certificate chain and its private key from their PEM files, the key checked against
/// the chain's first certificate; the error names the file.
pub(crate) fn read_certificate_pair(cert: &Path, key: &Path) -> Result<(Vec<X509>, PKey<Private>), String> {
    let pem = std::fs::read(cert).map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?;
    let chain = X509::stack_from_pem(&pem).map_err(|e| format!("{} is not a PEM certificate: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key_pem = std::fs::read(key).map_err(|e| format!("cannot read key {}: {e}", key.display()))?;
    let pkey =
        PKey::private_key_from_pem(&key_pem).map_err(|e| format!("{} is not a PEM private key: {e}", key.display()))?;
    let matches = chain[0].public_key().map(|pk| pk.public_eq(&pkey)).unwrap_or(false);
    if !matches {
        return Err(format!(
            "the key {} does not belong to the certificate {}",
            key.display(),
            cert.display()
        ));
    }
    Ok((chain, pkey))
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    #[test]
    fn secrets_inside_data_dir_are_generated_others_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let text = "origins:\n  site: { bucket: site }\ndistributions:\n  - domains: [\"*\"]\n    behaviors: [ { path_pattern: \"*\", origin: site } ]\nbuckets:\n  site: {}\norigin_server:\n  credentials:\n    - { access_key_id: a, secret_access_key_file: ./data/secrets/a.key }\n    - { access_key_id: b, secret_access_key_file: elsewhere.key }\n";
        let e = load_str("t", text, dir.path()).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].path == "origin_server.credentials[1].secret_access_key_file",
            "{e}"
        );
        std::fs::write(dir.path().join("elsewhere.key"), "s3cret\n").unwrap();
        let l = load_str("t", text, dir.path()).unwrap();
        assert_eq!(l.secrets_to_generate, vec![(0, dir.path().join("data/secrets/a.key"))]);
        let os = l.config.origin_server.unwrap();
        assert_eq!(os.credentials[1].secret_access_key, "s3cret");
        assert_eq!(os.listen, "127.0.0.1:9000".parse().unwrap());
    }
}
