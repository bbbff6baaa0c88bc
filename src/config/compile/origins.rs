//! `origins` and `origin_groups`: HTTP and S3 origins, their paths, headers, timeouts
//! and pools.

use super::secrets::{secret_from_env, secret_from_file};
use super::*;

pub(super) fn check_origin_path(text: &str) -> Result<String, String> {
    let t = text.trim_end_matches('/');
    if t.is_empty() {
        return Ok(String::new());
    }
    if !t.starts_with('/') {
        return Err(format!("'{text}' must start with '/' (e.g. /build)"));
    }
    if t.contains(['?', '#', '\\', '\0']) || t.split('/').any(|s| s == ".." || s == ".") {
        return Err(format!(
            "'{text}' may not contain '.' or '..' segments, '?', '#' or '\\'"
        ));
    }
    Ok(t.to_string())
}

pub(super) const FORBIDDEN_CUSTOM_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "x-amz-cf-id",
    "x-forwarded-for",
    "via",
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
];

pub(super) type Origins = BTreeMap<String, (usize, Arc<Origin>)>;

pub(super) fn compile_origins(
    raw: &RawConfig,
    buckets: &BTreeMap<String, BucketConfig>,
    has_store: bool,
    base: &Path,
    errors: &mut Errors<'_>,
) -> Origins {
    let mut out = BTreeMap::new();
    for (i, (name, o)) in raw.origins.0.iter().enumerate() {
        let at = [k("origins"), k(name)];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            errors.at(
                &at,
                format!("origin name '{name}' may only use letters, digits, '_' and '-'"),
            );
        }
        if o.group.is_some() {
            if o.bucket.is_some() || o.http.is_some() || o.s3.is_some() {
                errors.at(
                    &at,
                    "a group names its member origins; it has no bucket, http or s3 of its own",
                );
            }
            // Groups are put together below, once their members exist.
            continue;
        }
        let kind = match (&o.bucket, &o.http, &o.s3) {
            (None, None, Some(s3)) => compile_s3_origin(s3, o.sni.as_deref(), base, &p(&at, &[k("s3")]), errors),
            (Some(bucket), None, None) => {
                if !buckets.contains_key(bucket) {
                    errors.at(
                        &p(&at, &[k("bucket")]),
                        format!("bucket '{bucket}' is not declared under buckets: (add `{bucket}: {{}}` there)"),
                    );
                }
                if !has_store {
                    errors.at(
                        &p(&at, &[k("bucket")]),
                        "a bucket origin needs the built-in bucket store: add an origin_server section",
                    );
                }
                if o.sni.is_some() {
                    errors.at(&p(&at, &[k("sni")]), "sni applies to https upstreams only");
                }
                Some(OriginKind::Bucket { bucket: bucket.clone() })
            }
            (None, Some(OneOrMany(list)), None) => {
                let mut upstreams = Vec::new();
                if list.is_empty() {
                    errors.at(&p(&at, &[k("http")]), "give the upstream address");
                }
                for (j, one) in list.iter().enumerate() {
                    let uat = if list.len() > 1 {
                        p(&at, &[k("http"), Seg::Index(j)])
                    } else {
                        p(&at, &[k("http")])
                    };
                    match parse_upstream(one, o.sni.as_deref()) {
                        Ok(u) if upstreams.contains(&u) => errors.at(&uat, format!("'{one}' is listed twice")),
                        Ok(u) => upstreams.push(u),
                        Err(m) => errors.at(&uat, m),
                    }
                }
                let balance = match o.balance.as_deref() {
                    None | Some("round-robin") => Balance::RoundRobin,
                    Some("least-connections") => Balance::LeastConnections,
                    Some("consistent-hash") => Balance::ConsistentHash,
                    Some(other) => {
                        errors.at(
                            &p(&at, &[k("balance")]),
                            format!("'{other}' is not round-robin, least-connections or consistent-hash"),
                        );
                        Balance::RoundRobin
                    }
                };
                let health_check = o.health_check.as_ref().map(|h| {
                    let hat = p(&at, &[k("health_check")]);
                    if let Some(path) = &h.path {
                        if !path.starts_with('/') || path.contains(char::is_whitespace) {
                            errors.at(&p(&hat, &[k("path")]), format!("'{path}' is not a path like /healthz"));
                        }
                    }
                    HealthCheckSpec {
                        path: h.path.clone(),
                        interval: duration_at(
                            errors,
                            &p(&hat, &[k("interval")]),
                            h.interval.as_ref(),
                            Duration::from_secs(5),
                        )
                        .max(Duration::from_millis(100)),
                    }
                });
                (!upstreams.is_empty()).then_some(OriginKind::Http {
                    upstreams,
                    balance,
                    health_check,
                })
            }
            _ => {
                errors.at(
                    &at,
                    "an origin is exactly one of `bucket: NAME`, `http: ADDRESS` or `s3: { endpoint, bucket, ... }`",
                );
                None
            }
        };
        let signing = match o.signing.as_deref() {
            None | Some("always") => Signing::Always,
            Some("never") => Signing::Never,
            Some("no-override") => Signing::NoOverride,
            Some(other) => {
                errors.at(
                    &p(&at, &[k("signing")]),
                    format!("'{other}' is not always, never or no-override"),
                );
                Signing::Always
            }
        };
        if o.signing.is_some() && o.http.is_some() {
            errors.at(&p(&at, &[k("signing")]), "signing applies to bucket and s3 origins");
        }
        if o.http.is_none() {
            for (key, set) in [
                ("balance", o.balance.is_some()),
                ("health_check", o.health_check.is_some()),
            ] {
                if set {
                    errors.at(&p(&at, &[k(key)]), format!("{key} applies to http origins"));
                }
            }
        }
        let timeouts = compile_timeouts(o, &at, errors);
        let origin_path = match &o.origin_path {
            Some(t) => check_origin_path(t)
                .map_err(|m| errors.at(&p(&at, &[k("origin_path")]), m))
                .unwrap_or_default(),
            None => String::new(),
        };
        let mut custom_headers = Vec::new();
        for (hname, hvalue) in &o.custom_headers.0 {
            let hat = p(&at, &[k("custom_headers"), k(hname)]);
            match (HeaderName::from_bytes(hname.as_bytes()), HeaderValue::from_str(hvalue)) {
                (Ok(n), Ok(v)) => {
                    if FORBIDDEN_CUSTOM_HEADERS.contains(&n.as_str()) {
                        errors.at(
                            &hat,
                            format!("the edge sets {hname} itself; it cannot be a custom header"),
                        );
                    } else {
                        custom_headers.push((n, v));
                    }
                }
                (Err(_), _) => errors.at(&hat, format!("'{hname}' is not a valid header name")),
                (_, Err(_)) => errors.at(&hat, "the value is not a valid header value (no control characters)"),
            }
        }
        if let Some(kind) = kind {
            out.insert(
                name.clone(),
                (
                    i,
                    Arc::new(Origin {
                        name: name.clone(),
                        kind,
                        signing,
                        timeouts,
                        origin_path,
                        custom_headers,
                    }),
                ),
            );
        }
    }
    compile_groups(raw, &mut out, errors);
    out
}

/// The longest `response_timeout` of an `http` origin: an app behind the edge may take
/// minutes to answer (a report, a long poll) or pause that long between events.
pub(crate) const HTTP_RESPONSE_TIMEOUT_MAX: u64 = 24 * 3600;
/// CloudFront's limit, for bucket and s3 origins.
pub(crate) const RESPONSE_TIMEOUT_MAX: u64 = 60;

/// Connect and response timeouts and connection attempts, within CloudFront's ranges (the
/// response timeout of an `http` origin up to a day).
pub(super) fn compile_timeouts(o: &RawOrigin, at: &[Seg], errors: &mut Errors<'_>) -> OriginTimeouts {
    let d = OriginTimeouts::default();
    let mut ranged = |key: &str, text: Option<&String>, default: Duration, max: u64| {
        let v = duration_at(errors, &p(at, &[k(key)]), text, default);
        if text.is_some() && !(Duration::from_secs(1)..=Duration::from_secs(max)).contains(&v) {
            errors.at(&p(at, &[k(key)]), format!("must be between 1s and {max}s"));
        }
        v
    };
    let connect = ranged("connect_timeout", o.connect_timeout.as_ref(), d.connect, 10);
    let response_max = if o.http.is_some() {
        HTTP_RESPONSE_TIMEOUT_MAX
    } else {
        RESPONSE_TIMEOUT_MAX
    };
    let response = ranged(
        "response_timeout",
        o.response_timeout.as_ref(),
        d.response,
        response_max,
    );
    let attempts = o.connection_attempts.unwrap_or(d.attempts);
    if !(1..=3).contains(&attempts) {
        errors.at(&p(at, &[k("connection_attempts")]), "must be 1, 2 or 3");
    }
    OriginTimeouts {
        connect,
        response,
        attempts: attempts.clamp(1, 3),
    }
}

/// Origin groups, once the origins they name exist: two different origins, neither a group.
pub(super) fn compile_groups(raw: &RawConfig, out: &mut Origins, errors: &mut Errors<'_>) {
    for (i, (name, o)) in raw.origins.0.iter().enumerate() {
        let Some(g) = &o.group else { continue };
        let at = [k("origins"), k(name), k("group")];
        let member = |key: &str, errors: &mut Errors<'_>| -> Option<Arc<Origin>> {
            let target = if key == "primary" { &g.primary } else { &g.secondary };
            match out.get(target) {
                Some((_, m)) => Some(m.clone()),
                None => {
                    errors.at(
                        &p(&at, &[k(key)]),
                        format!("'{target}' is not an origin (groups cannot be members)"),
                    );
                    None
                }
            }
        };
        let primary = member("primary", errors);
        let secondary = member("secondary", errors);
        if g.primary == g.secondary {
            errors.at(&at, "primary and secondary must be different origins");
        }
        let failover_on = g.failover_on.clone().unwrap_or_else(|| vec![500, 502, 503, 504]);
        for (j, s) in failover_on.iter().enumerate() {
            if !(400..=599).contains(s) {
                errors.at(
                    &p(&at, &[k("failover_on"), Seg::Index(j)]),
                    format!("{s} is not a 4xx or 5xx status"),
                );
            }
        }
        if let (Some(primary), Some(secondary)) = (primary, secondary) {
            out.insert(
                name.clone(),
                (
                    i,
                    Arc::new(Origin {
                        name: name.clone(),
                        kind: OriginKind::Group {
                            primary,
                            secondary,
                            failover_on,
                        },
                        signing: Signing::Always,
                        origin_path: String::new(),
                        custom_headers: Vec::new(),
                        timeouts: OriginTimeouts::default(),
                    }),
                ),
            );
        }
    }
}

/// An `s3:` origin: endpoint, addressing style, region and the credential the edge signs
/// with (its secret from a file or an environment variable, never inline).
pub(super) fn compile_s3_origin(
    s3: &RawS3Origin,
    sni: Option<&str>,
    base: &Path,
    at: &[Seg],
    errors: &mut Errors<'_>,
) -> Option<OriginKind> {
    let mut ok = true;
    if !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://")) {
        errors.at(
            &p(at, &[k("endpoint")]),
            format!("'{}' must start with http:// or https://", s3.endpoint),
        );
        ok = false;
    }
    if check_bucket_name(&s3.bucket).is_err() && !s3.bucket.is_empty() {
        // Other services allow names S3 does not (uppercase, underscores): only refuse what
        // cannot be a path segment.
        if s3.bucket.contains(['/', '?', '#']) {
            errors.at(&p(at, &[k("bucket")]), format!("'{}' is not a bucket name", s3.bucket));
            ok = false;
        }
    }
    if s3.bucket.is_empty() {
        errors.at(&p(at, &[k("bucket")]), "give the bucket name");
        ok = false;
    }
    let virtual_host = match s3.style.as_deref() {
        None | Some("path") => false,
        Some("virtual") => true,
        Some(other) => {
            errors.at(&p(at, &[k("style")]), format!("'{other}' is not path or virtual"));
            ok = false;
            false
        }
    };
    let region = s3.region.clone().unwrap_or_else(|| "us-east-1".to_string());
    let secret = match (&s3.secret_access_key_file, &s3.secret_access_key_env) {
        (Some(f), None) => secret_from_file(&resolve(base, f), at, errors, |_| false),
        (None, Some(var)) => secret_from_env(var, at, errors),
        (None, None) => None,
        (Some(_), Some(_)) => {
            errors.at(at, "give the secret in a file or an environment variable, not both");
            None
        }
    };
    let credential = match (&s3.access_key_id, secret) {
        (Some(id), Some(secret)) => Some(Credential {
            access_key_id: id.clone(),
            secret_access_key: secret,
        }),
        (None, None) => None,
        (Some(_), None) => {
            if s3.secret_access_key_file.is_none() && s3.secret_access_key_env.is_none() {
                errors.at(
                    at,
                    "access_key_id needs its secret: secret_access_key_file or secret_access_key_env",
                );
            }
            ok = false;
            None
        }
        (None, Some(_)) => {
            errors.at(at, "the secret needs its access_key_id");
            ok = false;
            None
        }
    };
    let endpoint = match parse_upstream(&s3.endpoint, sni) {
        Ok(Upstream { address, tls, sni }) => Some((address, tls, sni)),
        Err(m) => {
            errors.at(&p(at, &[k("endpoint")]), m);
            None
        }
    };
    let (address, tls, sni) = endpoint?;
    if !ok {
        return None;
    }
    // Host as the service expects it: with the port only when the endpoint names one.
    let authority = s3
        .endpoint
        .split_once("://")
        .map(|(_, r)| r.trim_end_matches('/'))
        .unwrap_or("")
        .to_ascii_lowercase();
    let host = if virtual_host {
        format!("{}.{authority}", s3.bucket)
    } else {
        authority
    };
    let sni = if virtual_host && tls {
        format!("{}.{sni}", s3.bucket)
    } else {
        sni
    };
    Some(OriginKind::S3 {
        address,
        tls,
        sni,
        host,
        bucket: s3.bucket.clone(),
        virtual_host,
        region,
        credential,
    })
}

/// `127.0.0.1:3000`, `http://app:3000`, `https://10.0.0.5:8443` (port defaults 80/443).
pub(super) fn parse_upstream(text: &str, sni: Option<&str>) -> Result<Upstream, String> {
    let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = text.strip_prefix("http://") {
        (false, r)
    } else {
        (false, text)
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(format!(
            "'{text}': give only scheme, host and port; use origin_path for a path"
        ));
    }
    let with_port = if rest.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !rest.ends_with(']') {
        rest.to_string()
    } else {
        format!("{rest}:{}", if tls { 443 } else { 80 })
    };
    let address = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{text}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{text}' resolves to no address"))?;
    let host = with_port
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']))
        .unwrap_or("")
        .to_string();
    Ok(Upstream {
        address,
        tls,
        sni: sni.map(str::to_string).unwrap_or(host),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_has, errs, MINIMAL};
    use super::*;
    use crate::config::load_str;

    #[test]
    fn bucket_origins_need_store_and_bucket() {
        let text = "origins:\n  site: { bucket: site, origin_path: \"build/\" }\ndistributions:\n  - domains: [\"*\"]\n    behaviors: [ { path_pattern: \"*\", origin: site } ]\n";
        let e = errs(text);
        assert_has(&e, "origins.site.bucket: bucket 'site' is not declared");
        assert_has(
            &e,
            "origins.site.bucket: a bucket origin needs the built-in bucket store",
        );
        assert_has(&e, "origins.site.origin_path: 'build/' must start with '/'");
    }

    #[test]
    fn origin_path_and_headers_are_normalized_and_checked() {
        let text = MINIMAL.replace(
            "app: { http: \"127.0.0.1:3000\" }",
            "app: { http: \"https://127.0.0.1:8443\", sni: app.internal, origin_path: /v1/, custom_headers: { X-A: \"1\", Host: evil } }",
        );
        let e = errs(&text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].contains("origins.app.custom_headers.Host: the edge sets Host itself"),
            "{e:#?}"
        );
        let l = load_str("t", &text.replace(", Host: evil", ""), Path::new("/")).unwrap();
        let o = &l.config.origins[0];
        assert_eq!(o.origin_path, "/v1");
        assert!(
            matches!(&o.kind, OriginKind::Http { upstreams, .. } if upstreams[0].tls && upstreams[0].sni == "app.internal")
        );
        assert_eq!(o.custom_headers[0].0.as_str(), "x-a");
    }

    #[test]
    fn s3_origins_in_path_and_virtual_style() {
        std::env::set_var("HF_TEST_S3_SECRET", "s3cret");
        let cfg = |style: &str| {
            MINIMAL.replace(
                "app: { http: \"127.0.0.1:3000\" }",
                &format!("app: {{ s3: {{ endpoint: \"https://127.0.0.1:9443\", bucket: media, region: eu-west-1, style: {style}, access_key_id: k, secret_access_key_env: HF_TEST_S3_SECRET }}, signing: no-override }}"),
            )
        };
        for (style, host, sni) in [
            ("path", "127.0.0.1:9443", "127.0.0.1"),
            ("virtual", "media.127.0.0.1:9443", "media.127.0.0.1"),
        ] {
            let c = load_str("t", &cfg(style), Path::new("/")).unwrap().config;
            let o = &c.origins[0];
            assert_eq!(o.signing, Signing::NoOverride);
            match &o.kind {
                OriginKind::S3 {
                    host: h,
                    sni: s,
                    tls,
                    region,
                    credential,
                    virtual_host,
                    ..
                } => {
                    assert_eq!(
                        (h.as_str(), s.as_str(), *tls, region.as_str()),
                        (host, sni, true, "eu-west-1")
                    );
                    assert_eq!(*virtual_host, style == "virtual");
                    assert_eq!(credential.as_ref().unwrap().secret_access_key, "s3cret");
                    assert!(!format!("{o:?}").contains("s3cret"), "secrets never in debug output");
                }
                other => panic!("{other:?}"),
            }
        }
        let e = errs(&cfg("sideways").replace("HF_TEST_S3_SECRET", "HF_TEST_S3_UNSET"));
        assert_has(&e, "origins.app.s3.style: 'sideways' is not path or virtual");
        assert_has(
            &e,
            "origins.app.s3.secret_access_key_env: environment variable HF_TEST_S3_UNSET",
        );
    }

    #[test]
    fn pools_groups_and_timeouts_compile_and_errors_are_located() {
        let pool = MINIMAL.replace(
            "http: \"127.0.0.1:3000\"",
            "http: [\"127.0.0.1:3000\", \"127.0.0.1:3001\"], balance: least-connections, health_check: { path: /healthz, interval: 2s }, connect_timeout: 2s, response_timeout: 5s, connection_attempts: 2",
        );
        let c = load_str("t", &pool, Path::new("/")).unwrap().config;
        let o = c.origins.iter().find(|o| o.name == "app").unwrap();
        match &o.kind {
            OriginKind::Http {
                upstreams,
                balance,
                health_check,
            } => {
                assert_eq!(upstreams.len(), 2);
                assert_eq!(*balance, Balance::LeastConnections);
                assert_eq!(health_check.as_ref().unwrap().interval, Duration::from_secs(2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            o.timeouts,
            OriginTimeouts {
                connect: Duration::from_secs(2),
                response: Duration::from_secs(5),
                attempts: 2
            }
        );
        let e = errs(&MINIMAL.replace(
            "http: \"127.0.0.1:3000\"",
            "http: [\"127.0.0.1:3000\", \"127.0.0.1:3000\"], balance: fastest, connect_timeout: 30s, connection_attempts: 5",
        ));
        assert_has(&e, "origins.app.http[1]: '127.0.0.1:3000' is listed twice");
        assert_has(&e, "origins.app.balance");
        assert_has(&e, "origins.app.connect_timeout: must be between 1s and 10s");
        assert_has(&e, "origins.app.connection_attempts");
        // An app may take minutes; a bucket is held to CloudFront's minute.
        let long = MINIMAL.replace(
            "http: \"127.0.0.1:3000\"",
            "http: \"127.0.0.1:3000\", response_timeout: 1h",
        );
        let c = load_str("t", &long, Path::new("/")).unwrap().config;
        let o = c.origins.iter().find(|o| o.name == "app").unwrap();
        assert_eq!(o.timeouts.response, Duration::from_secs(3600));
        let e = errs(&MINIMAL.replace(
            "http: \"127.0.0.1:3000\"",
            "http: \"127.0.0.1:3000\", response_timeout: 25h",
        ));
        assert_has(&e, "origins.app.response_timeout: must be between 1s and 86400s");
        let e = errs(&MINIMAL.replace(
            "app: { http: \"127.0.0.1:3000\" }",
            "app: { http: \"127.0.0.1:3000\" }\n  b: { bucket: b, response_timeout: 2m }",
        ));
        assert_has(&e, "origins.b.response_timeout: must be between 1s and 60s");
        let group = MINIMAL.replace(
            "origins:\n",
            "origins:\n  both: { group: { primary: app, secondary: nope, failover_on: [503, 200] } }\n",
        );
        let e = errs(&group);
        assert_has(&e, "origins.both.group.secondary: 'nope' is not an origin");
        assert_has(&e, "origins.both.group.failover_on[1]: 200 is not a 4xx or 5xx status");
    }
}
