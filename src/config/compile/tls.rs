//! `tls`: certificate files and ACME.

use super::secrets::read_certificate_pair;
use super::*;

pub(super) fn compile_tls(raw: &RawConfig, base: &Path, errors: &mut Errors<'_>) -> Tls {
    let mut tls = Tls::default();
    let Some(raw_tls) = &raw.tls else { return tls };
    for (i, c) in raw_tls.certificates.iter().enumerate() {
        let at = [k("tls"), k("certificates"), Seg::Index(i)];
        let mut ok = true;
        if c.domains.is_empty() {
            errors.at(&p(&at, &[k("domains")]), "list at least one domain name");
            ok = false;
        }
        for (j, d) in c.domains.iter().enumerate() {
            if let Err(m) = check_domain(d, false) {
                errors.at(&p(&at, &[k("domains"), Seg::Index(j)]), m);
                ok = false;
            }
        }
        let spec = CertificateSpec {
            domains: c.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            cert: resolve(base, &c.cert),
            key: resolve(base, &c.key),
        };
        if !spec.cert.is_file() {
            errors.at(
                &p(&at, &[k("cert")]),
                format!("certificate file {} does not exist", spec.cert.display()),
            );
            ok = false;
        }
        if !spec.key.is_file() {
            errors.at(
                &p(&at, &[k("key")]),
                format!("key file {} does not exist", spec.key.display()),
            );
            ok = false;
        }
        if ok {
            if let Err(m) = read_certificate_pair(&spec.cert, &spec.key) {
                errors.at(&at, m);
            }
        }
        tls.certificates.push(spec);
    }
    tls
}

pub(super) fn compile_acme(
    raw: &RawConfig,
    base: &Path,
    data_dir: &Path,
    errors: &mut Errors<'_>,
) -> Option<AcmeConfig> {
    let a = raw.tls.as_ref()?.acme.as_ref()?;
    let at = [k("tls"), k("acme")];
    let mut ok = true;
    if !(a.directory.starts_with("https://") || a.directory.starts_with("http://")) {
        errors.at(
            &p(&at, &[k("directory")]),
            format!("'{}' is not an http(s) URL", a.directory),
        );
        ok = false;
    }
    if a.domains.is_empty() {
        errors.at(&p(&at, &[k("domains")]), "list at least one domain name");
        ok = false;
    }
    for (j, d) in a.domains.iter().enumerate() {
        if let Err(m) = check_domain(d, false) {
            errors.at(&p(&at, &[k("domains"), Seg::Index(j)]), m);
            ok = false;
        } else if d.starts_with("*.") {
            errors.at(
                &p(&at, &[k("domains"), Seg::Index(j)]),
                "wildcard names need the dns-01 challenge, which homefront does not do",
            );
            ok = false;
        }
    }
    let challenge = match a.challenge.as_deref() {
        None | Some("http-01") => AcmeChallenge::Http01,
        Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
        Some(other) => {
            errors.at(
                &p(&at, &[k("challenge")]),
                format!("'{other}' is not http-01 or tls-alpn-01"),
            );
            ok = false;
            AcmeChallenge::Http01
        }
    };
    let ca_file = a.ca_file.as_ref().map(|f| resolve(base, f));
    if let Some(f) = &ca_file {
        if !f.is_file() {
            errors.at(
                &p(&at, &[k("ca_file")]),
                format!("CA file {} does not exist", f.display()),
            );
            ok = false;
        }
    }
    let renew_before = duration_at(
        errors,
        &p(&at, &[k("renew_before")]),
        a.renew_before.as_ref(),
        Duration::from_secs(30 * 86_400),
    );
    ok.then(|| AcmeConfig {
        directory: a.directory.clone(),
        domains: a.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        email: a.email.clone(),
        ca_file,
        challenge,
        renew_before,
        dir: data_dir.join("acme"),
    })
}
