//! A behavior's cache and response headers policies, and the key groups its signed URLs
//! are checked against.

use super::secrets::read_public_key;
use super::*;

pub(super) fn compile_key_list(errors: &mut Errors<'_>, path: &[Seg], raw: Option<&RawKeyList>) -> KeyList {
    match raw {
        None => KeyList::None,
        Some(RawKeyList::Word(w)) => match w.as_str() {
            "none" => KeyList::None,
            "all" => KeyList::All,
            other => {
                errors.at(
                    path,
                    format!("'{other}' is not none, all, a list of names or {{ all_except: [names] }}"),
                );
                KeyList::None
            }
        },
        Some(RawKeyList::List(names)) if names.is_empty() => KeyList::None,
        Some(RawKeyList::List(names)) => KeyList::Whitelist(names.clone()),
        Some(RawKeyList::AllExcept(names)) => KeyList::AllExcept(names.clone()),
    }
}

pub(super) fn compile_cache_policy(errors: &mut Errors<'_>, at: &[Seg], raw: Option<&RawCachePolicy>) -> CachePolicy {
    let d = CachePolicy::default();
    let Some(c) = raw else { return d };
    let min_ttl = duration_at(errors, &p(at, &[k("min_ttl")]), c.min_ttl.as_ref(), d.min_ttl);
    let max_ttl = duration_at(errors, &p(at, &[k("max_ttl")]), c.max_ttl.as_ref(), d.max_ttl);
    // An explicit max_ttl below the default pulls the default down with it.
    let default_ttl = duration_at(
        errors,
        &p(at, &[k("default_ttl")]),
        c.default_ttl.as_ref(),
        d.default_ttl.min(max_ttl),
    );
    if min_ttl > default_ttl || default_ttl > max_ttl {
        errors.at(
            at,
            format!(
                "TTLs must satisfy min_ttl <= default_ttl <= max_ttl (found {}s, {}s, {}s)",
                min_ttl.as_secs(),
                default_ttl.as_secs(),
                max_ttl.as_secs()
            ),
        );
    }
    let mut headers = Vec::new();
    for (i, h) in c.headers.iter().flatten().enumerate() {
        match HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()) {
            Ok(n) if n == http::header::AUTHORIZATION => errors.at(
                &p(at, &[k("headers"), Seg::Index(i)]),
                "Authorization cannot be in the cache key: it would store one user's answer for others",
            ),
            Ok(n) => headers.push(n),
            Err(_) => errors.at(
                &p(at, &[k("headers"), Seg::Index(i)]),
                format!("'{h}' is not a header name"),
            ),
        }
    }
    let rfc9111 = match c.freshness.as_deref() {
        None | Some("cloudfront") => false,
        Some("rfc9111") => true,
        Some(other) => {
            errors.at(
                &p(at, &[k("freshness")]),
                format!("'{other}' is not cloudfront or rfc9111"),
            );
            false
        }
    };
    CachePolicy {
        rfc9111,
        forward_query_strings: KeyList::None,
        forward_cookies: KeyList::None,
        forward_headers: d.forward_headers.clone(),
        min_ttl,
        default_ttl,
        max_ttl,
        query_strings: compile_key_list(errors, &p(at, &[k("query_strings")]), c.query_strings.as_ref()),
        cookies: compile_key_list(errors, &p(at, &[k("cookies")]), c.cookies.as_ref()),
        headers,
    }
}

pub(super) const REFERRER_POLICIES: [&str; 8] = [
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

pub(super) fn compile_headers_policy(
    errors: &mut Errors<'_>,
    at: &[Seg],
    raw: Option<&RawHeadersPolicy>,
) -> Option<crate::policy::headers_policy::HeadersPolicy> {
    use crate::policy::headers_policy::{CorsPolicy, HeadersPolicy};
    let raw = raw?;
    let mut out = HeadersPolicy {
        security_override: true,
        ..HeadersPolicy::default()
    };
    if let Some(c) = &raw.cors {
        let cat = p(at, &[k("cors")]);
        if c.allow_origins.is_empty() {
            errors.at(&p(&cat, &[k("allow_origins")]), "list at least one origin (or \"*\")");
        }
        for (i, o) in c.allow_origins.iter().enumerate() {
            if o != "*" && (o.matches('*').count() > 1 || !(o.starts_with("http://") || o.starts_with("https://"))) {
                errors.at(
                    &p(&cat, &[k("allow_origins"), Seg::Index(i)]),
                    format!("'{o}' must be \"*\" or a scheme://host[:port] origin with at most one '*'"),
                );
            }
        }
        if c.allow_credentials && c.allow_origins.iter().any(|o| o == "*") {
            errors.at(
                &p(&cat, &[k("allow_credentials")]),
                "browsers refuse credentials with Access-Control-Allow-Origin: *; list the origins instead",
            );
        }
        let methods: Vec<String> = c
            .allow_methods
            .clone()
            .unwrap_or_else(|| vec!["GET".into(), "HEAD".into()])
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        for (i, m) in methods.iter().enumerate() {
            if !matches!(
                m.as_str(),
                "*" | "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE" | "OPTIONS"
            ) {
                errors.at(
                    &p(&cat, &[k("allow_methods"), Seg::Index(i)]),
                    format!("'{m}' is not an HTTP method"),
                );
            }
        }
        let max_age = c
            .max_age
            .as_ref()
            .map(|t| duration_at(errors, &p(&cat, &[k("max_age")]), Some(t), Duration::ZERO).as_secs());
        out.cors = Some(CorsPolicy {
            allow_origins: c.allow_origins.clone(),
            allow_methods: methods,
            allow_headers: c.allow_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            expose_headers: c.expose_headers.clone(),
            max_age,
            allow_credentials: c.allow_credentials,
            origin_override: c.origin_override.unwrap_or(true),
        });
    }
    let value = |errors: &mut Errors<'_>, path: Vec<Seg>, v: &str| match HeaderValue::from_str(v) {
        Ok(v) => Some(v),
        Err(_) => {
            errors.at(&path, format!("'{v}' is not a valid header value"));
            None
        }
    };
    if let Some(sec) = &raw.security {
        let sat = p(at, &[k("security")]);
        out.security_override = sec.override_origin.unwrap_or(true);
        if let Some(h) = &sec.hsts {
            let age = duration_at(
                errors,
                &p(&sat, &[k("hsts"), k("max_age")]),
                Some(&h.max_age),
                Duration::ZERO,
            );
            let mut v = format!("max-age={}", age.as_secs());
            if h.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if h.preload {
                v.push_str("; preload");
            }
            if let Some(v) = value(errors, p(&sat, &[k("hsts")]), &v) {
                out.security
                    .push((HeaderName::from_static("strict-transport-security"), v));
            }
        }
        if sec.content_type_options {
            out.security.push((
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ));
        }
        if let Some(f) = &sec.frame_options {
            let upper = f.to_ascii_uppercase();
            if upper == "DENY" || upper == "SAMEORIGIN" {
                if let Some(v) = value(errors, p(&sat, &[k("frame_options")]), &upper) {
                    out.security.push((HeaderName::from_static("x-frame-options"), v));
                }
            } else {
                errors.at(
                    &p(&sat, &[k("frame_options")]),
                    format!("'{f}' is not DENY or SAMEORIGIN"),
                );
            }
        }
        if let Some(r) = &sec.referrer_policy {
            if REFERRER_POLICIES.contains(&r.as_str()) {
                if let Some(v) = value(errors, p(&sat, &[k("referrer_policy")]), r) {
                    out.security.push((HeaderName::from_static("referrer-policy"), v));
                }
            } else {
                errors.at(
                    &p(&sat, &[k("referrer_policy")]),
                    format!("'{r}' is not a referrer policy ({})", REFERRER_POLICIES.join(", ")),
                );
            }
        }
        if let Some(c) = &sec.csp {
            if let Some(v) = value(errors, p(&sat, &[k("csp")]), c) {
                out.security
                    .push((HeaderName::from_static("content-security-policy"), v));
            }
        }
    }
    for (name, v) in &raw.add.0 {
        let hat = p(at, &[k("add"), k(name)]);
        match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
            Ok(n) => {
                if let Some(v) = value(errors, hat, v) {
                    out.add.push((n, v));
                }
            }
            Err(_) => errors.at(&hat, format!("'{name}' is not a header name")),
        }
    }
    for (i, name) in raw.remove.iter().enumerate() {
        match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
            Ok(n) => out.remove.push(n),
            Err(_) => errors.at(
                &p(at, &[k("remove"), Seg::Index(i)]),
                format!("'{name}' is not a header name"),
            ),
        }
    }
    Some(out)
}

pub(super) type KeyGroups = HashMap<String, Vec<(String, Arc<crate::policy::signed::VerifyKey>)>>;

pub(super) fn compile_key_groups(raw: &RawConfig, base: &Path, errors: &mut Errors<'_>) -> KeyGroups {
    let mut out = HashMap::new();
    for (name, keys) in &raw.key_groups.0 {
        let at = [k("key_groups"), k(name)];
        if keys.is_empty() {
            errors.at(&at, "list at least one public key (id and public_key)");
        }
        let mut group = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let kat = p(&at, &[Seg::Index(i)]);
            if key.id.is_empty()
                || !key
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                errors.at(
                    &p(&kat, &[k("id")]),
                    format!("'{}' is not a key id (letters, digits, '_' and '-')", key.id),
                );
            }
            if group.iter().any(|(id, _)| id == &key.id) {
                errors.at(
                    &p(&kat, &[k("id")]),
                    format!("key id '{}' is listed twice in this group", key.id),
                );
            }
            match read_public_key(&resolve(base, &key.public_key)) {
                Ok(v) => group.push((key.id.clone(), Arc::new(v))),
                Err(m) => errors.at(&p(&kat, &[k("public_key")]), m),
            }
        }
        out.insert(name.clone(), group);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_has, errs, with_cache, MINIMAL};
    use super::*;
    use crate::config::load_str;

    #[test]
    fn cache_policies_compile_and_errors_are_located() {
        let l = load_str(
            "t.yaml",
            &with_cache("{ min_ttl: 1m, default_ttl: 2h, max_ttl: 1d, query_strings: [v, w], cookies: { all_except: [sid] }, headers: [Origin] }"),
            Path::new("/"),
        )
        .unwrap();
        let c = &l.config.distributions[0].behaviors[0].cache;
        assert_eq!(c.min_ttl, Duration::from_secs(60));
        assert_eq!(c.default_ttl, Duration::from_secs(7200));
        assert_eq!(c.max_ttl, Duration::from_secs(86_400));
        assert_eq!(c.query_strings, KeyList::Whitelist(vec!["v".into(), "w".into()]));
        assert_eq!(c.cookies, KeyList::AllExcept(vec!["sid".into()]));
        assert_eq!(c.headers, vec![HeaderName::from_static("origin")]);
        // max_ttl below the default pulls the default down; 0 disables.
        let l = load_str("t.yaml", &with_cache("{ max_ttl: 0 }"), Path::new("/")).unwrap();
        assert!(l.config.distributions[0].behaviors[0].cache.caching_disabled());

        let e = errs(&with_cache("{ min_ttl: 1h, default_ttl: 1m }"));
        assert_has(&e, "distributions[0].behaviors[0].cache");
        assert_has(&e, "min_ttl <= default_ttl <= max_ttl");
        assert_has(&errs(&with_cache("{ max_ttl: soon }")), "cache.max_ttl");
        assert_has(&errs(&with_cache("{ query_strings: some }")), "'some' is not none, all");
        assert_has(&errs(&with_cache("{ cookies: { only: [a] } }")), "all_except");
        assert_has(
            &errs(&with_cache("{ headers: [Authorization] }")),
            "Authorization cannot be in the cache key",
        );
        assert_has(&errs(&with_cache("{ ttl: 5 }")), "ttl");
        assert_has(
            &errs(&format!("{MINIMAL}cache: {{ disk_size: lots }}\n")),
            "cache.disk_size",
        );
        assert_has(
            &errs(&MINIMAL.replace(
                "    behaviors:",
                "    custom_error_responses: [ { error_code: 302 } ]\n    behaviors:",
            )),
            "302 is not an error CloudFront caches",
        );
        let with_errors = |list: &str| {
            MINIMAL.replace(
                "    behaviors:",
                &format!("    custom_error_responses: {list}\n    behaviors:"),
            )
        };
        assert_has(
            &errs(&with_errors("[ { error_code: 404, response_code: 200 } ]")),
            "response_code needs a response_page_path",
        );
        assert_has(
            &errs(&with_errors(
                "[ { error_code: 404, response_page_path: errors/404.html } ]",
            )),
            "must be a path like",
        );
        assert_has(
            &errs(&with_errors(
                "[ { error_code: 404, response_page_path: /e.html, response_code: 302 } ]",
            )),
            "302 is not one CloudFront sends",
        );
        let l = load_str(
            "t.yaml",
            &with_errors("[ { error_code: 403, response_page_path: /index.html, response_code: 200, error_caching_min_ttl: 0 } ]"),
            Path::new("/"),
        )
        .unwrap();
        let d = &l.config.distributions[0];
        assert_eq!(d.error_ttl(403), Duration::ZERO);
        assert_eq!(d.error_ttl(404), Duration::from_secs(10));
        assert_eq!(d.error_response(403).unwrap().page_path.as_deref(), Some("/index.html"));
    }

    #[test]
    fn response_headers_policies_are_checked() {
        let with = |policy: &str| {
            format!("origins:\n  app: {{ http: \"127.0.0.1:3000\" }}\ndistributions:\n  - domains: [\"*\"]\n    behaviors:\n      - {{ path_pattern: \"*\", origin: app, response_headers: {policy} }}\n")
        };
        let e = errs(&with("{ cors: { allow_origins: [\"*\"], allow_credentials: true } }"));
        assert_has(&e, "response_headers.cors.allow_credentials");
        assert_has(
            &errs(&with("{ cors: { allow_origins: [example.com] } }")),
            "scheme://host",
        );
        assert_has(
            &errs(&with("{ security: { frame_options: ALLOW } }")),
            "not DENY or SAMEORIGIN",
        );
        assert_has(
            &errs(&with("{ security: { referrer_policy: everything } }")),
            "not a referrer policy",
        );
        assert_has(
            &errs(&with("{ security: { hsts: { max_age: forever } } }")),
            "hsts.max_age",
        );
        assert_has(&errs(&with("{ add: { \"bad header\": x } }")), "not a header name");
        let l = load_str(
            "t.yaml",
            &with("{ cors: { allow_origins: [\"https://a.test\"], max_age: 10m }, security: { hsts: { max_age: 1y, preload: true } } }"),
            Path::new("/"),
        )
        .unwrap();
        let h = l.config.distributions[0].behaviors[0].headers.clone().unwrap();
        assert_eq!(h.cors.as_ref().unwrap().max_age, Some(600));
        assert_eq!(h.cors.as_ref().unwrap().allow_methods, ["GET", "HEAD"]);
        assert_eq!(h.security[0].1, "max-age=31536000; preload");
    }
}
