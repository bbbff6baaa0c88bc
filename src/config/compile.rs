//! Raw schema → validated, compiled [`Config`]. Every problem is collected, none stops the
//! others from being found.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

use super::de::{record_fields, DeErrorKind, NodeDe};
use super::model::*;
use super::schema::*;
use super::yaml::{self, path_string, Node, Seg};
use super::{ConfigError, ConfigErrors, Loaded};
use crate::policy::cache_policy::{CachePolicy, KeyList};
use crate::policy::path_pattern::PathPattern;
use std::time::Duration;

/// Collects errors against one file, locating key paths in its tree.
struct Errors<'a> {
    file: &'a str,
    tree: &'a Node,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn at(&mut self, path: &[Seg], message: impl Into<String>) {
        let node = self.tree.find_nearest(path);
        self.list.push(ConfigError {
            file: self.file.to_string(),
            line: node.line,
            column: node.column,
            path: path_string(path),
            message: message.into(),
        });
    }
}

fn k(s: &str) -> Seg {
    Seg::Key(s.to_string())
}

fn p(base: &[Seg], more: &[Seg]) -> Vec<Seg> {
    let mut v = base.to_vec();
    v.extend_from_slice(more);
    v
}

pub(super) fn load(source: &str, text: &str, base: &Path) -> Result<Loaded, ConfigErrors> {
    let tree = yaml::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: source.to_string(),
            line: e.line,
            column: e.column,
            path: String::new(),
            message: format!("YAML syntax error: {}", e.message),
        }])
    })?;
    let mut errors = Errors {
        file: source,
        tree: &tree,
        list: Vec::new(),
    };

    // serde stops at the first error: record it, cut the offending node out, try again.
    let mut work = tree.clone();
    let mut removed: Vec<Vec<Seg>> = Vec::new();
    let mut raw = None;
    for _ in 0..200 {
        match RawConfig::deserialize(NodeDe::root(&work)) {
            Ok(r) => {
                raw = Some(r);
                break;
            }
            Err(e) => {
                if let DeErrorKind::MissingKey(field) = e.kind {
                    let key_path = p(&e.path, &[k(field)]);
                    if !removed.contains(&key_path) {
                        errors.list.push(ConfigError {
                            file: source.to_string(),
                            line: e.line,
                            column: e.column,
                            path: path_string(&e.path),
                            message: e.message.clone(),
                        });
                    }
                    break;
                }
                errors.list.push(ConfigError {
                    file: source.to_string(),
                    line: e.line,
                    column: e.column,
                    path: path_string(&e.path),
                    message: e.message.clone(),
                });
                if e.path.is_empty() || !work.remove(&e.path) {
                    break;
                }
                removed.push(e.path);
            }
        }
    }

    // Validate what did parse (with the bad nodes cut out), so that one run reports the
    // semantic errors too.
    let loaded = raw.map(|raw| compile(&raw, base, source, &mut errors));
    let mut list = errors.list;
    if list.is_empty() {
        if let Some(l) = loaded {
            return Ok(l);
        }
    }
    list.sort_by_key(|e| (e.line, e.column));
    list.dedup();
    Err(ConfigErrors(list))
}

pub(super) fn undocumented_keys(text: &str) -> Result<Vec<String>, ConfigErrors> {
    let tree = yaml::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: "<text>".into(),
            line: e.line,
            column: e.column,
            path: String::new(),
            message: e.message,
        }])
    })?;
    let (result, log) = record_fields(|| RawConfig::deserialize(NodeDe::root(&tree)));
    if let Err(e) = result {
        return Err(ConfigErrors(vec![ConfigError {
            file: "<text>".into(),
            line: e.line,
            column: e.column,
            path: path_string(&e.path),
            message: e.message,
        }]));
    }
    let mut missing = Vec::new();
    for (path, fields) in &log.structs {
        for f in fields.iter() {
            let key = if path.is_empty() {
                f.to_string()
            } else {
                format!("{path}.{f}")
            };
            if !log.present.contains(&key) {
                missing.push(key);
            }
        }
    }
    Ok(missing)
}

/// Lexically removes `.` components so that paths can be compared.
fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    normalize(&base.join(p))
}

fn socket_addr(errors: &mut Errors<'_>, path: &[Seg], text: &str) -> Option<SocketAddr> {
    match text.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.at(
                path,
                format!("'{text}' is not a listen address (expected IP:port, e.g. 0.0.0.0:8443 or [::]:8443)"),
            );
            None
        }
    }
}

fn compile(raw: &RawConfig, base: &Path, source: &str, errors: &mut Errors<'_>) -> Loaded {
    let data_dir = resolve(base, raw.data_dir.as_deref().unwrap_or("./data"));

    // Listeners: without a `listen` section, both defaults; with one, only those named.
    let listen = match &raw.listen {
        None => Listen {
            http: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            https: Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
        },
        Some(l) => Listen {
            http: l
                .http
                .as_deref()
                .and_then(|t| socket_addr(errors, &[k("listen"), k("http")], t)),
            https: l
                .https
                .as_deref()
                .and_then(|t| socket_addr(errors, &[k("listen"), k("https")], t)),
        },
    };
    let metrics_listen = raw
        .metrics
        .as_ref()
        .and_then(|m| socket_addr(errors, &[k("metrics"), k("listen")], &m.listen));

    let mut tls = compile_tls(raw, base, errors);
    tls.acme = compile_acme(raw, base, &data_dir, errors);
    let buckets = compile_buckets(raw, errors);
    let (origin_server, secrets_to_generate) = compile_origin_server(raw, base, &data_dir, errors);
    let origins = compile_origins(raw, &buckets, origin_server.is_some(), base, errors);
    let key_groups = compile_key_groups(raw, base, errors);
    let distributions = compile_distributions(raw, &origins, &key_groups, errors);
    let mut trusted_proxies = Vec::new();
    for (i, t) in raw.trusted_proxies.iter().enumerate() {
        match crate::policy::ip::Cidr::parse(t) {
            Some(c) => trusted_proxies.push(c),
            None => errors.at(
                &[k("trusted_proxies"), Seg::Index(i)],
                format!("'{t}' is not an IP address or CIDR range"),
            ),
        }
    }

    let cache = compile_cache_store(raw, errors);
    let admin = raw.admin.as_ref().and_then(|a| {
        let listen = socket_addr(errors, &[k("admin"), k("listen")], &a.listen)?;
        let token_file = match &a.token_file {
            Some(f) => resolve(base, f),
            None => data_dir.join("secrets/admin.token"),
        };
        Some(AdminConfig { listen, token_file })
    });

    let mut ordered: Vec<(usize, Arc<Origin>)> = origins.into_values().collect();
    ordered.sort_by_key(|(i, _)| *i);
    let config = Config {
        source: source.to_string(),
        data_dir,
        listen,
        metrics_listen,
        tls,
        origins: ordered.into_iter().map(|(_, o)| o).collect(),
        distributions,
        buckets,
        origin_server,
        trusted_proxies,
        cache,
        admin,
        watch_config: raw.reload.as_ref().is_some_and(|r| r.watch),
        limits: compile_limits(raw, errors),
    };
    Loaded {
        config,
        secrets_to_generate,
    }
}

fn compile_cache_store(raw: &RawConfig, errors: &mut Errors<'_>) -> CacheStoreConfig {
    let mut out = CacheStoreConfig::default();
    let Some(c) = &raw.cache else { return out };
    for (key, text, slot) in [
        ("disk_size", &c.disk_size, &mut out.disk_size),
        ("memory_size", &c.memory_size, &mut out.memory_size),
    ] {
        if let Some(t) = text {
            match super::parse_size(t) {
                Ok(n) => *slot = n,
                Err(m) => errors.at(&[k("cache"), k(key)], m),
            }
        }
    }
    out
}

/// The parser under the edge reads at most this many header fields; more is a bare 400.
const PARSER_MAX_HEADERS: usize = 256;

fn compile_limits(raw: &RawConfig, errors: &mut Errors<'_>) -> Limits {
    let mut out = Limits::default();
    let Some(l) = &raw.limits else { return out };
    let at = |key: &str| [k("limits"), k(key)];
    let size = |key: &str, text: &Option<String>, min: u64, max: u64, errors: &mut Errors<'_>| -> Option<u64> {
        let t = text.as_ref()?;
        match super::parse_size(t) {
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

fn duration_at(errors: &mut Errors<'_>, path: &[Seg], text: Option<&String>, default: Duration) -> Duration {
    match text.map(|t| super::parse_duration(t)) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(m)) => {
            errors.at(path, m);
            default
        }
    }
}

fn compile_key_list(errors: &mut Errors<'_>, path: &[Seg], raw: Option<&RawKeyList>) -> KeyList {
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

fn compile_cache_policy(errors: &mut Errors<'_>, at: &[Seg], raw: Option<&RawCachePolicy>) -> CachePolicy {
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
    CachePolicy {
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

const REFERRER_POLICIES: [&str; 8] = [
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

fn compile_headers_policy(
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

fn compile_tls(raw: &RawConfig, base: &Path, errors: &mut Errors<'_>) -> Tls {
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
            if let Err(e) = crate::tls::CertStore::load(std::slice::from_ref(&spec)) {
                errors.at(&at, e.to_string());
            }
        }
        tls.certificates.push(spec);
    }
    tls
}

fn compile_acme(raw: &RawConfig, base: &Path, data_dir: &Path, errors: &mut Errors<'_>) -> Option<AcmeConfig> {
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

/// S3 bucket naming rules.
fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if (3..=63).contains(&name.len()) && ok_chars && ends && !name.contains("..") {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid bucket name (3-63 characters: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        ))
    }
}

fn compile_buckets(raw: &RawConfig, errors: &mut Errors<'_>) -> BTreeMap<String, BucketConfig> {
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

fn compile_origin_server(
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

fn check_origin_path(text: &str) -> Result<String, String> {
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

const FORBIDDEN_CUSTOM_HEADERS: &[&str] = &[
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

type Origins = BTreeMap<String, (usize, Arc<Origin>)>;

fn compile_origins(
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

/// Connect and response timeouts and connection attempts, within CloudFront's ranges.
fn compile_timeouts(o: &RawOrigin, at: &[Seg], errors: &mut Errors<'_>) -> OriginTimeouts {
    let d = OriginTimeouts::default();
    let mut ranged = |key: &str, text: Option<&String>, default: Duration, max: u64| {
        let v = duration_at(errors, &p(at, &[k(key)]), text, default);
        if text.is_some() && !(Duration::from_secs(1)..=Duration::from_secs(max)).contains(&v) {
            errors.at(&p(at, &[k(key)]), format!("must be between 1s and {max}s"));
        }
        v
    };
    let connect = ranged("connect_timeout", o.connect_timeout.as_ref(), d.connect, 10);
    let response = ranged("response_timeout", o.response_timeout.as_ref(), d.response, 60);
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
fn compile_groups(raw: &RawConfig, out: &mut Origins, errors: &mut Errors<'_>) {
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

/// A secret access key from `secret_access_key_file` (trimmed; an error at `at` when it is
/// empty or unreadable). A missing file that `generate` takes on (it will be generated) is
/// no error: `None`.
fn secret_from_file(
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
fn secret_from_env(var: &str, at: &[Seg], errors: &mut Errors<'_>) -> Option<String> {
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

/// An `s3:` origin: endpoint, addressing style, region and the credential the edge signs
/// with (its secret from a file or an environment variable, never inline).
fn compile_s3_origin(
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
fn parse_upstream(text: &str, sni: Option<&str>) -> Result<Upstream, String> {
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

/// A domain name, a `*.` wildcard of one, or (when `catch_all`) `*` alone.
fn check_domain(d: &str, catch_all: bool) -> Result<(), String> {
    if catch_all && d == "*" {
        return Ok(());
    }
    let name = d.strip_prefix("*.").unwrap_or(d);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(())
    } else if catch_all {
        Err(format!("'{d}' is not a domain name, a '*.' wildcard or '*'"))
    } else {
        Err(format!("'{d}' is not a domain name or a '*.' wildcard"))
    }
}

const METHOD_SETS: [&[&str]; 3] = [
    &["GET", "HEAD"],
    &["GET", "HEAD", "OPTIONS"],
    &["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
];

type KeyGroups = HashMap<String, Vec<(String, Arc<crate::policy::signed::VerifyKey>)>>;

fn compile_key_groups(raw: &RawConfig, base: &Path, errors: &mut Errors<'_>) -> KeyGroups {
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
            let path = resolve(base, &key.public_key);
            match std::fs::read(&path) {
                Ok(pem) => match crate::policy::signed::VerifyKey::from_pem(&pem) {
                    Ok(v) => group.push((key.id.clone(), Arc::new(v))),
                    Err(e) => errors.at(&p(&kat, &[k("public_key")]), format!("{}: {e}", path.display())),
                },
                Err(e) => errors.at(
                    &p(&kat, &[k("public_key")]),
                    format!("cannot read {}: {e}", path.display()),
                ),
            }
        }
        out.insert(name.clone(), group);
    }
    out
}

fn compile_distributions(
    raw: &RawConfig,
    origins: &Origins,
    key_groups: &KeyGroups,
    errors: &mut Errors<'_>,
) -> Vec<Distribution> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut claimed: HashMap<String, usize> = HashMap::new();
    if raw.distributions.is_empty() {
        errors.at(&[k("distributions")], "define at least one distribution");
    }
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
    use super::super::load_str;
    use super::*;

    const MINIMAL: &str = "origins:\n  app: { http: \"127.0.0.1:3000\" }\ndistributions:\n  - domains: [\"*\"]\n    behaviors:\n      - { path_pattern: \"*\", origin: app }\n";

    fn assert_has(errors: &[String], needle: &str) {
        assert!(
            errors.iter().any(|m| m.contains(needle)),
            "no error contains {needle:?}: {errors:#?}"
        );
    }

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

    fn errs(text: &str) -> Vec<String> {
        match load_str("t.yaml", text, Path::new("/nonexistent-base")) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn with_cache(cache: &str) -> String {
        format!("origins:\n  app: {{ http: \"127.0.0.1:3000\" }}\ndistributions:\n  - domains: [\"*\"]\n    behaviors:\n      - {{ path_pattern: \"*\", origin: app, cache: {cache} }}\n")
    }

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
    fn minimal_config_compiles_with_defaults() {
        let l = load_str("t.yaml", MINIMAL, Path::new("/base")).unwrap();
        let c = l.config;
        assert_eq!(c.data_dir, PathBuf::from("/base/data"));
        assert_eq!(c.listen.http, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(c.listen.https, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.distributions[0].name, "d0");
        let b = &c.distributions[0].behaviors[0];
        assert_eq!(b.allowed_methods, [Method::GET, Method::HEAD]);
        assert_eq!(b.viewer_protocol_policy, ViewerProtocolPolicy::AllowAll);
        assert!(matches!(&b.origin.kind, OriginKind::Http { upstreams, .. } if !upstreams[0].tls));
    }

    #[test]
    fn every_error_is_reported_with_position_and_path() {
        let text = "listen: { http: \"nope\" }\norigins:\n  app: { http: \"127.0.0.1:3000\", colour: red }\ndistributions:\n  - domains: [\"*\"]\n    behaviors:\n      - { path_pattern: \"/a/*\", origin: app, pth: 1 }\n      - { path_pattern: \"*\", origin: ghost }\n";
        let e = errs(text);
        assert!(
            e.iter()
                .any(|m| m.starts_with("t.yaml:3:") && m.contains("origins.app.colour: unknown key 'colour'")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("t.yaml:7:")
                    && m.contains("distributions[0].behaviors[0].pth: unknown key 'pth'")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("t.yaml:1:") && m.contains("listen.http: 'nope' is not a listen address")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("t.yaml:8:")
                && m.contains("distributions[0].behaviors[1].origin: no origin named 'ghost'")),
            "{e:#?}"
        );
        assert_eq!(e.len(), 4, "{e:#?}");
        // In file order.
        let lines: Vec<&str> = e.iter().map(|m| m.split(':').nth(1).unwrap()).collect();
        assert_eq!(lines, ["1", "3", "7", "8"]);
    }

    #[test]
    fn type_errors_and_unknown_values() {
        let e = errs(&MINIMAL.replace("origin: app }", "origin: app, viewer_protocol_policy: sometimes }"));
        assert!(e[0].contains("behaviors[0].viewer_protocol_policy: unknown value 'sometimes' (expected one of: allow-all, redirect-to-https, https-only)"), "{e:#?}");
        let e = errs(&MINIMAL.replace("domains: [\"*\"]", "domains: \"*\""));
        assert!(
            e[0].contains("distributions[0].domains: expected a list, found a single value"),
            "{e:#?}"
        );
    }

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
        let group = MINIMAL.replace(
            "origins:\n",
            "origins:\n  both: { group: { primary: app, secondary: nope, failover_on: [503, 200] } }\n",
        );
        let e = errs(&group);
        assert_has(&e, "origins.both.group.secondary: 'nope' is not an origin");
        assert_has(&e, "origins.both.group.failover_on[1]: 200 is not a 4xx or 5xx status");
    }

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

    #[test]
    fn embedded_default_loads_on_a_fresh_machine() {
        let dir = tempfile::tempdir().unwrap();
        let l = load_str("<embedded default>", super::super::EMBEDDED_DEFAULT, dir.path()).unwrap();
        assert_eq!(l.secrets_to_generate.len(), 1);
        assert_eq!(
            l.config.distributions[0].default_root_object.as_deref(),
            Some("index.html")
        );
        assert!(l.config.tls.certificates.is_empty());
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = load_str("t.yaml", "a: [1, 2\n", Path::new("/")).unwrap_err();
        assert!(e.0[0].to_string().starts_with("t.yaml:"), "{e}");
        assert!(e.0[0].message.starts_with("YAML syntax error"), "{e}");
    }

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("site").is_ok());
        assert!(check_bucket_name("my.site-1").is_ok());
        for bad in ["ab", "Site", "-site", "site-", "a..b", "s_te"] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
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
