//! The built-in bucket store: its buckets (`buckets`) and its S3 server (`origin_server`).

use super::secrets::{secret_from_env, secret_from_file};
use super::*;

pub(super) fn compile_buckets(raw: &RawConfig, errors: &mut Errors<'_>) -> BTreeMap<String, BucketConfig> {
    let mut out = BTreeMap::new();
    for (name, b) in &raw.buckets.0 {
        if let Err(m) = check_bucket_name(name) {
            errors.at(&[k("buckets"), k(name)], m);
        }
        let cors = b.cors.as_ref().map(|rules| {
            rules
                .iter()
                .map(|r| crate::policy::cors::CorsRule {
                    id: r.id.clone(),
                    allowed_origins: r.allowed_origins.clone(),
                    allowed_methods: r.allowed_methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                    allowed_headers: r.allowed_headers.clone(),
                    expose_headers: r.expose_headers.clone(),
                    max_age_seconds: r.max_age_seconds,
                })
                .collect::<Vec<_>>()
        });
        if let Some(rules) = &cors {
            if let Err(m) = crate::policy::cors::validate(rules) {
                errors.at(&[k("buckets"), k(name), k("cors")], m);
            }
        }
        out.insert(
            name.clone(),
            BucketConfig {
                cors,
                access_log: b.access_log,
                versioning: b.versioning.map(|v| match v {
                    RawVersioning::Enabled => crate::policy::bucket::Versioning::Enabled,
                    RawVersioning::Suspended => crate::policy::bucket::Versioning::Suspended,
                }),
            },
        );
    }
    out
}

pub(super) fn compile_origin_server(
    raw: &RawConfig,
    base: &Path,
    data_dir: &Path,
    errors: &mut Errors<'_>,
) -> (Option<OriginServer>, Vec<(usize, PathBuf)>) {
    let Some(os) = &raw.origin_server else {
        return (None, Vec::new());
    };
    let at = [k("origin_server")];
    let listen = match &os.listen {
        Some(t) => socket_addr(errors, &p(&at, &[k("listen")]), t),
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
    };
    if os.credentials.is_empty() {
        errors.at(
            &p(&at, &[k("credentials")]),
            "list at least one credential (access_key_id and secret_access_key_file or secret_access_key_env)",
        );
    }
    let mut credentials = Vec::new();
    let mut to_generate = Vec::new();
    for (i, c) in os.credentials.iter().enumerate() {
        let at = p(&at, &[k("credentials"), Seg::Index(i)]);
        let id_ok = !c.access_key_id.is_empty()
            && c.access_key_id.len() <= 128
            && c.access_key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !id_ok {
            errors.at(
                &p(&at, &[k("access_key_id")]),
                "an access key id is 1-128 letters, digits, '_', '-' or '.'",
            );
        }
        if credentials
            .iter()
            .any(|x: &Credential| x.access_key_id == c.access_key_id)
        {
            errors.at(
                &p(&at, &[k("access_key_id")]),
                format!("access key id '{}' is listed twice", c.access_key_id),
            );
        }
        let secret = match (&c.secret_access_key_file, &c.secret_access_key_env) {
            (Some(f), None) => secret_from_file(&resolve(base, f), &at, errors, |path| {
                // Missing inside data_dir: `serve` generates it.
                let generate = path.starts_with(data_dir);
                if generate {
                    to_generate.push((i, path.to_path_buf()));
                }
                generate
            }),
            (None, Some(var)) => secret_from_env(var, &at, errors),
            _ => {
                errors.at(
                    &at,
                    "give exactly one of secret_access_key_file and secret_access_key_env",
                );
                None
            }
        }
        .unwrap_or_default();
        credentials.push(Credential {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: secret,
        });
    }
    (listen.map(|listen| OriginServer { listen, credentials }), to_generate)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_has, errs};
    use super::*;
    use crate::config::load_str;

    #[test]
    fn bucket_cors_rules_are_checked() {
        let base = "origins:\n  s: { bucket: site }\ndistributions:\n  - domains: [\"*\"]\n    behaviors:\n      - { path_pattern: \"*\", origin: s }\norigin_server: { credentials: [ { access_key_id: k, secret_access_key_env: X } ] }\nbuckets:\n  site:\n    cors:\n";
        let e = errs(&format!(
            "{base}      - {{ allowed_origins: [\"*\"], allowed_methods: [patch] }}\n"
        ));
        assert_has(&e, "buckets.site.cors");
        assert_has(&e, "Unsupported method is PATCH");
        let e = errs(&format!(
            "{base}      - {{ allowed_origins: [\"*\"], allowed_methods: [GET], max_age: 5 }}\n"
        ));
        assert_has(&e, "max_age");
        std::env::set_var("X", "s");
        let l = load_str(
            "t.yaml",
            &format!("{base}      - {{ allowed_origins: [\"https://a.test\"], allowed_methods: [get, PUT] }}\n"),
            Path::new("/"),
        )
        .unwrap();
        let rules = l.config.buckets["site"].cors.as_ref().unwrap();
        assert_eq!(rules[0].allowed_methods, ["GET", "PUT"]);
    }
}
