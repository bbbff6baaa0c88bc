//! Certificates from an ACME CA (RFC 8555): Let's Encrypt in production, Pebble in tests,
//! through the instant-acme client.
//!
//! `tls.acme` names the domains; the edge answers the CA's challenge itself — HTTP-01 on its
//! HTTP listener (`/.well-known/acme-challenge/<token>`), or TLS-ALPN-01 (RFC 8737) on its
//! HTTPS listener (a self-signed certificate carrying the key authorization's digest, for
//! handshakes that offer only `acme-tls/1`). The account and the certificate live in
//! `data_dir/acme/` (`account.json`, `<first domain>.pem` and `.key`); the certificate is
//! renewed `renew_before` (30 days) ahead of expiry, or when the configured domains change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Extension, X509NameBuilder, X509ReqBuilder, X509};

use super::LoadedCert;
use crate::config::model::{AcmeChallenge, AcmeConfig};

/// The ALPN protocol of TLS-ALPN-01 validation handshakes.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Challenge answers the edge is giving right now.
#[derive(Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http01: RwLock<HashMap<String, String>>,
    /// TLS-ALPN-01: domain → the validation certificate.
    tls_alpn01: RwLock<HashMap<String, Arc<LoadedCert>>>,
}

impl Challenges {
    /// The key authorization for an HTTP-01 token being validated.
    pub fn http01(&self, token: &str) -> Option<String> {
        self.http01.read().ok()?.get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for a domain being validated.
    pub fn tls_alpn01(&self, domain: &str) -> Option<Arc<LoadedCert>> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.tls_alpn01.read().ok()?.get(&domain).cloned()
    }

    fn clear(&self) {
        if let Ok(mut m) = self.http01.write() {
            m.clear();
        }
        if let Ok(mut m) = self.tls_alpn01.write() {
            m.clear();
        }
    }
}

/// Whether a certificate must be obtained: there is none (or it does not parse), it does not
/// name every configured domain, or it expires within `renew_before` of `now`.
pub fn needs_certificate(cert_pem: Option<&[u8]>, domains: &[String], renew_before: Duration, now: SystemTime) -> bool {
    let Some(cert) = cert_pem.and_then(|p| X509::from_pem(p).ok()) else {
        return true;
    };
    let names: Vec<String> = cert
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| n.dnsname().map(|d| d.to_ascii_lowercase()))
                .collect()
        })
        .unwrap_or_default();
    if !domains.iter().all(|d| names.contains(d)) {
        return true;
    }
    let deadline = now
        .checked_add(renew_before)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .and_then(|secs| Asn1Time::from_unix(secs).ok());
    match deadline {
        Some(deadline) => cert
            .not_after()
            .compare(&deadline)
            .map(|o| o == std::cmp::Ordering::Less)
            .unwrap_or(true),
        None => true,
    }
}

/// The TLS-ALPN-01 validation certificate for `domain` (RFC 8737 §3): self-signed, the
/// domain as its only name, and the critical id-pe-acmeIdentifier extension holding the
/// SHA-256 digest of the key authorization.
pub fn alpn_challenge_cert(domain: &str, digest: &[u8]) -> Result<LoadedCert, openssl::error::ErrorStack> {
    let (cert, key) = super::self_signed(&[("CN", domain)], 7, |b| {
        let san = SubjectAlternativeName::new()
            .dns(domain)
            .build(&b.x509v3_context(None, None))?;
        b.append_extension(san)?;
        // extnValue = DER OCTET STRING of the 32-byte digest.
        let mut der = vec![0x04, digest.len() as u8];
        der.extend_from_slice(digest);
        let oid = Asn1Object::from_str("1.3.6.1.5.5.7.1.31")?;
        let value = Asn1OctetString::new_from_bytes(&der)?;
        b.append_extension(X509Extension::new_from_der(&oid, true, &value)?)
    })?;
    Ok(LoadedCert {
        domains: vec![domain.to_string()],
        chain: vec![cert],
        key,
    })
}

fn err(what: &str) -> impl FnOnce(instant_acme::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The account, restored from `account.json` or registered (and saved) on first use.
async fn account(cfg: &AcmeConfig) -> Result<Account, String> {
    let builder = || match &cfg.ca_file {
        Some(ca) => Account::builder_with_root(ca).map_err(err("cannot read the ACME CA file")),
        None => Account::builder().map_err(err("cannot set up the ACME client")),
    };
    let path = cfg.dir.join("account.json");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(creds) = serde_json::from_slice::<AccountCredentials>(&bytes) {
            match builder()?.from_credentials(creds).await {
                Ok(account) => return Ok(account),
                Err(e) => tracing::warn!(
                    "ACME: the saved account in {} is not usable ({e}); registering a new one",
                    path.display()
                ),
            }
        }
    }
    let contact = cfg.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, creds) = builder()?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await
        .map_err(err("cannot register an ACME account"))?;
    let json = serde_json::to_vec(&creds).map_err(|e| format!("cannot encode the ACME account: {e}"))?;
    crate::util::write_file_atomic(&path, &json, 0o600).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(account)
}

/// Obtains a certificate for `cfg.domains`, answering the challenges through `challenges`,
/// and writes it (key first, then the chain) to `cfg.spec()`'s files.
pub async fn obtain(cfg: &AcmeConfig, challenges: &Challenges) -> Result<(), String> {
    // rustls (the ACME client's HTTPS) needs one crypto provider chosen for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::util::create_private_dir_all(&cfg.dir).map_err(|e| format!("cannot create {}: {e}", cfg.dir.display()))?;
    let account = account(cfg).await?;
    let identifiers: Vec<Identifier> = cfg.domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(err("the CA refused the order"))?;
    let result = answer_and_finalize(cfg, challenges, &mut order).await;
    challenges.clear();
    result
}

async fn answer_and_finalize(
    cfg: &AcmeConfig,
    challenges: &Challenges,
    order: &mut instant_acme::Order,
) -> Result<(), String> {
    let kind = match cfg.challenge {
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(err("cannot read an authorization"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("an authorization is {other:?}")),
        }
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| format!("the CA offers no {kind:?} challenge"))?;
        let key_auth = challenge.key_authorization();
        match cfg.challenge {
            AcmeChallenge::Http01 => {
                if let Ok(mut m) = challenges.http01.write() {
                    m.insert(challenge.token.clone(), key_auth.as_str().to_string());
                }
            }
            AcmeChallenge::TlsAlpn01 => {
                let domain = challenge.identifier().to_string();
                let cert = alpn_challenge_cert(&domain, key_auth.digest().as_ref())
                    .map_err(|e| format!("cannot make the TLS-ALPN-01 certificate: {e}"))?;
                if let Ok(mut m) = challenges.tls_alpn01.write() {
                    m.insert(domain, Arc::new(cert));
                }
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(err("the CA refused the challenge"))?;
    }
    let retries = RetryPolicy::default().timeout(Duration::from_secs(60));
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(err("waiting for the CA to validate"))?;
    if status != OrderStatus::Ready {
        let problem = order.state().error.as_ref().map(|p| p.to_string()).unwrap_or_default();
        return Err(format!("the order is {status:?} {problem}"));
    }
    // Our key and CSR (P-256, every domain as a SAN).
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(|e| e.to_string())?;
    let key = PKey::from_ec_key(EcKey::generate(&group).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let csr = (|| -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut req = X509ReqBuilder::new()?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", &cfg.domains[0])?;
        req.set_subject_name(&name.build())?;
        req.set_pubkey(&key)?;
        let mut san = SubjectAlternativeName::new();
        for d in &cfg.domains {
            san.dns(d);
        }
        let mut exts = Stack::new()?;
        exts.push(san.build(&req.x509v3_context(None))?)?;
        req.add_extensions(&exts)?;
        req.sign(&key, MessageDigest::sha256())?;
        req.build().to_der()
    })()
    .map_err(|e| format!("cannot make the certificate request: {e}"))?;
    order
        .finalize_csr(&csr)
        .await
        .map_err(err("the CA refused the certificate request"))?;
    let chain = order
        .poll_certificate(&retries)
        .await
        .map_err(err("waiting for the certificate"))?;
    let spec = cfg.spec();
    let key_pem = key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?;
    crate::util::write_file_atomic(&spec.key, &key_pem, 0o600)
        .map_err(|e| format!("cannot write {}: {e}", spec.key.display()))?;
    crate::util::write_file_atomic(&spec.cert, chain.as_bytes(), crate::util::PRIVATE_FILE_MODE)
        .map_err(|e| format!("cannot write {}: {e}", spec.cert.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_for(names: &[&str], days: u32) -> Vec<u8> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut b = X509::builder().unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(Asn1Time::days_from_now(0).unwrap().as_ref()).unwrap();
        b.set_not_after(Asn1Time::days_from_now(days).unwrap().as_ref())
            .unwrap();
        let mut san = SubjectAlternativeName::new();
        for n in names {
            san.dns(n);
        }
        let san = san.build(&b.x509v3_context(None, None)).unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build().to_pem().unwrap()
    }

    #[test]
    fn renewal_is_due_when_missing_expiring_or_not_covering() {
        let domains = vec!["a.test".to_string(), "b.test".to_string()];
        let month = Duration::from_secs(30 * 86_400);
        let now = SystemTime::now();
        assert!(needs_certificate(None, &domains, month, now));
        assert!(needs_certificate(Some(b"garbage"), &domains, month, now));
        let fresh = cert_for(&["a.test", "b.test"], 90);
        assert!(!needs_certificate(Some(&fresh), &domains, month, now));
        assert!(needs_certificate(
            Some(&fresh),
            &domains,
            month,
            now + Duration::from_secs(61 * 86_400)
        ));
        let expiring = cert_for(&["a.test", "b.test"], 20);
        assert!(needs_certificate(Some(&expiring), &domains, month, now));
        let partial = cert_for(&["a.test"], 90);
        assert!(needs_certificate(Some(&partial), &domains, month, now));
    }

    #[test]
    fn the_alpn_challenge_certificate_carries_the_digest() {
        let digest = [7u8; 32];
        let c = alpn_challenge_cert("a.test", &digest).unwrap();
        let der = c.chain[0].to_der().unwrap();
        // The extension: OID 1.3.6.1.5.5.7.1.31, critical, OCTET STRING(OCTET STRING(digest)).
        let oid = [
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f, 0x01, 0x01, 0xff, 0x04, 0x22, 0x04, 0x20,
        ];
        let at = der
            .windows(oid.len())
            .position(|w| w == oid)
            .expect("acmeIdentifier extension");
        assert_eq!(&der[at + oid.len()..at + oid.len() + 32], &digest);
        let names: Vec<String> = c.chain[0]
            .subject_alt_names()
            .unwrap()
            .iter()
            .filter_map(|n| n.dnsname().map(str::to_string))
            .collect();
        assert_eq!(names, ["a.test"]);
    }
}
