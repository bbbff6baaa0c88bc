//! `limits` and the `cache` store sizes.

use super::*;

pub(super) fn compile_cache_store(raw: &RawConfig, errors: &mut Errors<'_>) -> CacheStoreConfig {
    let mut out = CacheStoreConfig::default();
    let Some(c) = &raw.cache else { return out };
    for (key, text, slot) in [
        ("disk_size", &c.disk_size, &mut out.disk_size),
        ("memory_size", &c.memory_size, &mut out.memory_size),
    ] {
        if let Some(t) = text {
            match crate::config::parse_size(t) {
                Ok(n) => *slot = n,
                Err(m) => errors.at(&[k("cache"), k(key)], m),
            }
        }
    }
    out
}

/// The parser under the edge reads at most this many header fields; more is a bare 400.
pub(super) const PARSER_MAX_HEADERS: usize = 256;

pub(super) fn compile_limits(raw: &RawConfig, errors: &mut Errors<'_>) -> Limits {
    let mut out = Limits::default();
    let Some(l) = &raw.limits else { return out };
    let at = |key: &str| [k("limits"), k(key)];
    let size = |key: &str, text: &Option<String>, min: u64, max: u64, errors: &mut Errors<'_>| -> Option<u64> {
        let t = text.as_ref()?;
        match crate::config::parse_size(t) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(_) => {
                errors.at(&at(key), format!("must be between {min} and {max} bytes"));
                None
            }
            Err(m) => {
                errors.at(&at(key), m);
                None
            }
        }
    };
    if let Some(n) = size("max_header_size", &l.max_header_size, 1024, 1 << 20, errors) {
        out.max_header_size = n as usize;
    }
    if let Some(n) = size("max_url_length", &l.max_url_length, 256, 1 << 20, errors) {
        out.max_url_length = n as usize;
    }
    if let Some(n) = size("max_body_size", &l.max_body_size, 0, u64::MAX, errors) {
        out.max_body_size = n;
    }
    if let Some(n) = l.max_headers {
        if (1..=PARSER_MAX_HEADERS).contains(&n) {
            out.max_headers = n;
        } else {
            errors.at(
                &at("max_headers"),
                format!("must be between 1 and {PARSER_MAX_HEADERS}"),
            );
        }
    }
    for (key, text, slot) in [
        ("header_timeout", &l.header_timeout, &mut out.header_timeout),
        ("idle_timeout", &l.idle_timeout, &mut out.idle_timeout),
        ("body_timeout", &l.body_timeout, &mut out.body_timeout),
    ] {
        let d = duration_at(errors, &at(key), text.as_ref(), *slot);
        if text.is_some() && !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d) {
            errors.at(&at(key), "must be between 1s and 1h");
        }
        *slot = d;
    }
    if let Some(c) = &l.per_client {
        let pc = &mut out.per_client;
        pc.max_connections = c.max_connections.unwrap_or(pc.max_connections);
        pc.requests_per_second = c.requests_per_second.unwrap_or(pc.requests_per_second);
        // The burst follows the rate unless it is given.
        pc.burst = match (c.burst, c.requests_per_second) {
            (Some(b), _) => b,
            (None, Some(r)) => r.saturating_mul(2),
            (None, None) => pc.burst,
        };
        if pc.requests_per_second > 0 && pc.burst == 0 {
            errors.at(
                &[k("limits"), k("per_client"), k("burst")],
                "must be at least 1 when requests_per_second is set",
            );
        }
        if let Some(list) = &c.exempt {
            pc.exempt.clear();
            for (i, t) in list.iter().enumerate() {
                match crate::policy::ip::Cidr::parse(t) {
                    Some(cidr) => pc.exempt.push(cidr),
                    None => errors.at(
                        &[k("limits"), k("per_client"), k("exempt"), Seg::Index(i)],
                        format!("'{t}' is not an IP address or CIDR range"),
                    ),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_has, errs};
    use super::*;
    use crate::config::load_str;

    #[test]
    fn limits_defaults_and_errors() {
        let base = "origins:\n  app: { http: \"127.0.0.1:3000\" }\ndistributions:\n  - domains: [\"*\"]\n    behaviors:\n      - { path_pattern: \"*\", origin: app }\n";
        let l = load_str("t.yaml", base, Path::new("/")).unwrap().config.limits;
        assert_eq!(l, Limits::default());
        assert!(l
            .per_client
            .exempt
            .iter()
            .any(|c| c.contains("127.0.0.1".parse().unwrap())));
        let with = |limits: &str| format!("{base}limits: {limits}\n");
        let l = load_str(
            "t.yaml",
            &with("{ max_body_size: 1MiB, header_timeout: 2s, per_client: { requests_per_second: 5, exempt: [] } }"),
            Path::new("/"),
        )
        .unwrap()
        .config
        .limits;
        assert_eq!(l.max_body_size, 1 << 20);
        assert_eq!(l.header_timeout, Duration::from_secs(2));
        assert_eq!((l.per_client.requests_per_second, l.per_client.burst), (5, 10));
        assert!(l.per_client.exempt.is_empty());
        assert_has(&errs(&with("{ max_headers: 300 }")), "limits.max_headers");
        assert_has(&errs(&with("{ max_url_length: 10 }")), "limits.max_url_length");
        assert_has(&errs(&with("{ idle_timeout: 0s }")), "limits.idle_timeout");
        assert_has(
            &errs(&with("{ per_client: { exempt: [nowhere] } }")),
            "limits.per_client.exempt[0]",
        );
        assert_has(
            &errs(&with("{ per_client: { requests_per_second: 5, burst: 0 } }")),
            "burst",
        );
        assert_has(&errs(&with("{ max_body: 1 }")), "max_body");
    }
}
