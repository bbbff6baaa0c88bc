//! `distributions`: domains, behaviors, error responses and access logs.

use super::origins::Origins;
use super::policies::{compile_cache_policy, compile_headers_policy, compile_key_list, KeyGroups};
use super::*;

pub(super) const METHOD_SETS: [&[&str]; 3] = [
    &["GET", "HEAD"],
    &["GET", "HEAD", "OPTIONS"],
    &["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
];

pub(super) fn compile_distributions(
    raw: &RawConfig,
    origins: &Origins,
    key_groups: &KeyGroups,
    functions: &super::functions::Functions,
    errors: &mut Errors<'_>,
) -> Vec<Distribution> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut claimed: HashMap<String, usize> = HashMap::new();
    for (i, d) in raw.distributions.iter().enumerate() {
        let at = [k("distributions"), Seg::Index(i)];
        let name = d.name.clone().unwrap_or_else(|| format!("d{i}"));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            errors.at(
                &p(&at, &[k("name")]),
                format!("'{name}' may only use letters, digits, '_' and '-'"),
            );
        }
        if let Some(prev) = names.insert(name.clone(), i) {
            errors.at(
                &p(&at, &[k("name")]),
                format!("name '{name}' is already used by distributions[{prev}]"),
            );
        }
        if d.domains.is_empty() {
            errors.at(
                &p(&at, &[k("domains")]),
                "list at least one domain name (or \"*\" for any host)",
            );
        }
        let mut domains = Vec::new();
        for (j, dom) in d.domains.iter().enumerate() {
            let dat = p(&at, &[k("domains"), Seg::Index(j)]);
            let lower = dom.trim_end_matches('.').to_ascii_lowercase();
            if let Err(m) = check_domain(&lower, true) {
                errors.at(&dat, m);
                continue;
            }
            if let Some(prev) = claimed.insert(lower.clone(), i) {
                let what = if lower == "*" {
                    "the catch-all \"*\"".to_string()
                } else {
                    format!("'{lower}'")
                };
                errors.at(&dat, format!("{what} is already claimed by distributions[{prev}]"));
            }
            domains.push(lower);
        }
        if let Some(root) = &d.default_root_object {
            if root.is_empty()
                || root.starts_with('/')
                || root.contains(['?', '#', '\\'])
                || root.split('/').any(|s| s == "..")
            {
                errors.at(
                    &p(&at, &[k("default_root_object")]),
                    format!("'{root}' must be an object name without a leading '/' (e.g. index.html)"),
                );
            }
        }
        if d.behaviors.is_empty() {
            errors.at(
                &p(&at, &[k("behaviors")]),
                "define at least the default behavior (path_pattern: \"*\")",
            );
        }
        let last = d.behaviors.len().saturating_sub(1);
        let mut behaviors = Vec::new();
        for (j, b) in d.behaviors.iter().enumerate() {
            let bat = p(&at, &[k("behaviors"), Seg::Index(j)]);
            let is_default = b.path_pattern == "*";
            if j == last && !is_default {
                errors.at(
                    &p(&bat, &[k("path_pattern")]),
                    "the last behavior must be the default, path_pattern \"*\"",
                );
            }
            if j != last && is_default {
                errors.at(
                    &p(&bat, &[k("path_pattern")]),
                    "\"*\" is the default behavior and must be the last one (behaviors after it would never match)",
                );
            }
            let pattern = match PathPattern::compile(&b.path_pattern) {
                Ok(pt) => Some(pt),
                Err(e) => {
                    errors.at(&p(&bat, &[k("path_pattern")]), e.to_string());
                    None
                }
            };
            let origin = origins.get(&b.origin).map(|(_, o)| o.clone());
            if origin.is_none() && !raw.origins.0.iter().any(|(n, _)| n == &b.origin) {
                let known: Vec<&str> = raw.origins.0.iter().map(|(n, _)| n.as_str()).collect();
                errors.at(
                    &p(&bat, &[k("origin")]),
                    format!(
                        "no origin named '{}' (origins: {})",
                        b.origin,
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            let allowed_methods = match &b.allowed_methods {
                None => vec![Method::GET, Method::HEAD],
                Some(list) => {
                    let mut upper: Vec<String> = list.iter().map(|m| m.to_ascii_uppercase()).collect();
                    upper.sort();
                    upper.dedup();
                    let set = METHOD_SETS.iter().find(|s| {
                        let mut sorted: Vec<&str> = s.to_vec();
                        sorted.sort();
                        sorted == upper.iter().map(String::as_str).collect::<Vec<_>>()
                    });
                    match set {
                        Some(s) => s.iter().filter_map(|m| Method::from_bytes(m.as_bytes()).ok()).collect(),
                        None => {
                            errors.at(
                                &p(&bat, &[k("allowed_methods")]),
                                "must be one of CloudFront's sets: [GET, HEAD], [GET, HEAD, OPTIONS] or [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE]",
                            );
                            vec![Method::GET, Method::HEAD]
                        }
                    }
                }
            };
            let viewer_protocol_policy = match b.viewer_protocol_policy {
                RawViewerProtocolPolicy::AllowAll => ViewerProtocolPolicy::AllowAll,
                RawViewerProtocolPolicy::RedirectToHttps => ViewerProtocolPolicy::RedirectToHttps,
                RawViewerProtocolPolicy::HttpsOnly => ViewerProtocolPolicy::HttpsOnly,
            };
            let trusted_keys = match &b.trusted_key_groups {
                None => None,
                Some(groups) if groups.is_empty() => None,
                Some(groups) => {
                    let mut keys = crate::policy::signed::TrustedKeys::default();
                    for (g, group) in groups.iter().enumerate() {
                        match key_groups.get(group) {
                            Some(list) => {
                                for (id, key) in list {
                                    keys.insert(id.clone(), key.clone());
                                }
                            }
                            None => errors.at(
                                &p(&bat, &[k("trusted_key_groups"), Seg::Index(g)]),
                                format!("no key group named '{group}' under key_groups"),
                            ),
                        }
                    }
                    Some(Arc::new(keys))
                }
            };
            let mut cache_policy = compile_cache_policy(errors, &p(&bat, &[k("cache")]), b.cache.as_ref());
            let mut inject_origin = None;
            if let Some(o) = &b.origin_request {
                let oat = p(&bat, &[k("origin_request")]);
                // A preset first (CloudFront's managed policies), then what the fields say.
                match o.preset.as_deref() {
                    None => {}
                    Some("cors-s3origin") => {
                        cache_policy.forward_headers = KeyList::Whitelist(
                            crate::policy::cache_policy::CORS_S3ORIGIN_HEADERS
                                .iter()
                                .map(|s| s.to_string())
                                .collect(),
                        );
                    }
                    Some("all-viewer") => {
                        cache_policy.forward_query_strings = KeyList::All;
                        cache_policy.forward_cookies = KeyList::All;
                        cache_policy.forward_headers = KeyList::All;
                    }
                    Some(other) => errors.at(
                        &p(&oat, &[k("preset")]),
                        format!("'{other}' is not a preset: cors-s3origin or all-viewer"),
                    ),
                }
                if o.query_strings.is_some() {
                    cache_policy.forward_query_strings =
                        compile_key_list(errors, &p(&oat, &[k("query_strings")]), o.query_strings.as_ref());
                }
                if o.cookies.is_some() {
                    cache_policy.forward_cookies =
                        compile_key_list(errors, &p(&oat, &[k("cookies")]), o.cookies.as_ref());
                }
                if o.headers.is_some() {
                    let lower = |names: &Vec<String>| names.iter().map(|n| n.to_ascii_lowercase()).collect();
                    cache_policy.forward_headers =
                        match compile_key_list(errors, &p(&oat, &[k("headers")]), o.headers.as_ref()) {
                            KeyList::Whitelist(n) => KeyList::Whitelist(lower(&n)),
                            KeyList::AllExcept(n) => KeyList::AllExcept(lower(&n)),
                            other => other,
                        };
                }
                if let Some(origin) = &o.origin {
                    let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                        && !origin.contains(['?', '#', '*'])
                        && origin.matches('/').count() == 2;
                    match HeaderValue::from_str(origin) {
                        Ok(v) if valid => inject_origin = Some(v),
                        _ => errors.at(
                            &p(&oat, &[k("origin")]),
                            format!("'{origin}' must be an origin like https://cdn.example.com (scheme, host, optional port)"),
                        ),
                    }
                }
            }
            let cache = Arc::new(cache_policy);
            let headers =
                compile_headers_policy(errors, &p(&bat, &[k("response_headers")]), b.response_headers.as_ref())
                    .map(Arc::new);
            let functions =
                super::functions::compile_associations(raw, b.function_associations.as_ref(), functions, &bat, errors);
            if let (Some(path_pattern), Some(origin)) = (pattern, origin) {
                behaviors.push(Behavior {
                    path_pattern_text: b.path_pattern.clone(),
                    path_pattern,
                    origin,
                    viewer_protocol_policy,
                    allowed_methods,
                    trusted_keys,
                    cache,
                    headers,
                    inject_origin,
                    compress: b.compress.unwrap_or(true),
                    functions,
                });
            }
        }
        let mut error_responses: Vec<ErrorResponse> = Vec::new();
        for (j, e) in d.custom_error_responses.iter().enumerate() {
            let eat = p(&at, &[k("custom_error_responses"), Seg::Index(j)]);
            if !crate::policy::cache_policy::is_cacheable_error(
                http::StatusCode::from_u16(e.error_code).unwrap_or(http::StatusCode::OK),
            ) {
                errors.at(
                    &p(&eat, &[k("error_code")]),
                    format!(
                        "{} is not an error CloudFront caches (400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504)",
                        e.error_code
                    ),
                );
                continue;
            }
            if error_responses.iter().any(|r| r.error_code == e.error_code) {
                errors.at(
                    &p(&eat, &[k("error_code")]),
                    format!("{} already has a custom error response", e.error_code),
                );
            }
            if let Some(page) = &e.response_page_path {
                if !page.starts_with('/') || page.contains(['*', '?', '#']) || page.split('/').any(|s| s == "..") {
                    errors.at(
                        &p(&eat, &[k("response_page_path")]),
                        format!("'{page}' must be a path like /errors/404.html"),
                    );
                }
            }
            if let Some(code) = e.response_code {
                if e.response_page_path.is_none() {
                    errors.at(
                        &p(&eat, &[k("response_code")]),
                        "response_code needs a response_page_path to send with it",
                    );
                }
                let ok = code == 200
                    || crate::policy::cache_policy::is_cacheable_error(
                        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK),
                    );
                if !ok {
                    errors.at(
                        &p(&eat, &[k("response_code")]),
                        format!("{code} is not one CloudFront sends with an error page (200 or an error code)"),
                    );
                }
            }
            let caching_min_ttl = duration_at(
                errors,
                &p(&eat, &[k("error_caching_min_ttl")]),
                e.error_caching_min_ttl.as_ref(),
                Duration::from_secs(10),
            );
            error_responses.push(ErrorResponse {
                error_code: e.error_code,
                page_path: e.response_page_path.clone(),
                response_code: e.response_code,
                caching_min_ttl,
            });
        }
        let access_log = match d.access_log.as_deref() {
            None => None,
            Some("cloudfront") => Some(AccessLogFormat::CloudFront),
            Some("json") => Some(AccessLogFormat::Json),
            Some(other) => {
                errors.at(
                    &p(&at, &[k("access_log")]),
                    format!("'{other}' is not a log format (cloudfront or json)"),
                );
                None
            }
        };
        out.push(Distribution {
            name,
            domains,
            default_root_object: d.default_root_object.clone(),
            behaviors,
            error_responses,
            access_log,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_has, errs, MINIMAL};
    use super::*;
    use crate::config::load_str;

    #[test]
    fn behavior_order_rules() {
        let text = MINIMAL.replace(
            "      - { path_pattern: \"*\", origin: app }\n",
            "      - { path_pattern: \"*\", origin: app }\n      - { path_pattern: \"/x/*\", origin: app }\n",
        );
        let e = errs(&text);
        assert_has(
            &e,
            "behaviors[0].path_pattern: \"*\" is the default behavior and must be the last",
        );
        assert_has(&e, "behaviors[1].path_pattern: the last behavior must be the default");
        let e = errs(&MINIMAL.replace("path_pattern: \"*\"", "path_pattern: \"/a b\""));
        assert_has(&e, "not allowed in a path pattern");
    }

    #[test]
    fn methods_must_be_a_cloudfront_set() {
        let e = errs(&MINIMAL.replace("origin: app }", "origin: app, allowed_methods: [GET, PUT] }"));
        assert!(
            e[0].contains("allowed_methods: must be one of CloudFront's sets"),
            "{e:#?}"
        );
        let l = load_str(
            "t",
            &MINIMAL.replace("origin: app }", "origin: app, allowed_methods: [options, head, get] }"),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            l.config.distributions[0].behaviors[0].allowed_methods,
            [Method::GET, Method::HEAD, Method::OPTIONS]
        );
    }

    #[test]
    fn domains_and_names() {
        let text = format!("{MINIMAL}  - name: d0\n    domains: [\"*\", \"bad domain\"]\n    behaviors: [ {{ path_pattern: \"*\", origin: app }} ]\n");
        let e = errs(&text);
        assert_has(&e, "distributions[1].name: name 'd0' is already used");
        assert_has(
            &e,
            "distributions[1].domains[0]: the catch-all \"*\" is already claimed",
        );
        assert_has(&e, "distributions[1].domains[1]: 'bad domain' is not a domain name");
    }
}
