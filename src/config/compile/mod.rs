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
use super::Purpose;
use super::{ConfigError, ConfigErrors, Loaded};
use crate::policy::bucket::check_bucket_name;
use crate::policy::cache_policy::{CachePolicy, KeyList};
use crate::policy::path_pattern::PathPattern;
use std::time::Duration;

mod buckets;
mod distributions;
mod functions;
mod limits;
mod origins;
mod policies;
pub(crate) mod secrets;
mod tls;

use buckets::{compile_buckets, compile_origin_server};
use distributions::compile_distributions;
use functions::compile_functions;
use limits::{compile_cache_store, compile_limits};
use origins::compile_origins;
use policies::compile_key_groups;
use tls::{compile_acme, compile_tls};

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

pub(super) fn load(source: &str, text: &str, base: &Path, purpose: Purpose) -> Result<Loaded, ConfigErrors> {
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
    let loaded = raw.map(|raw| compile(&raw, base, source, purpose, &mut errors));
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

fn compile(raw: &RawConfig, base: &Path, source: &str, purpose: Purpose, errors: &mut Errors<'_>) -> Loaded {
    let data_dir = resolve(base, raw.data_dir.as_deref().unwrap_or("./data"));

    // Listeners: without a `listen` section, both defaults; with one, only those named.
    let listen = match &raw.listen {
        None => Listen {
            http: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            https: Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
            proxy_protocol: ProxyProtocolOn::default(),
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
            proxy_protocol: compile_proxy_protocol(l, raw, errors),
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
    let functions = compile_functions(raw, base, errors);
    let distributions = compile_distributions(raw, &origins, &key_groups, &functions, errors);
    match purpose {
        Purpose::Edge if raw.distributions.is_empty() => {
            errors.at(&[k("distributions")], "define at least one distribution")
        }
        Purpose::Origin if origin_server.is_none() => errors.at(
            &[k("origin_server")],
            "`homefront origin` runs the bucket store: define origin_server (listen, credentials)",
        ),
        _ => {}
    }
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
        functions,
    };
    Loaded {
        config,
        secrets_to_generate,
    }
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

/// `listen.proxy_protocol`: named listeners that exist, and proxies to believe.
fn compile_proxy_protocol(l: &RawListen, raw: &RawConfig, errors: &mut Errors<'_>) -> ProxyProtocolOn {
    let mut on = ProxyProtocolOn::default();
    for (i, name) in l.proxy_protocol.iter().enumerate() {
        let at = [k("listen"), k("proxy_protocol"), Seg::Index(i)];
        match name.as_str() {
            "http" if l.http.is_some() => on.http = true,
            "https" if l.https.is_some() => on.https = true,
            "http" | "https" => errors.at(&at, format!("there is no `listen.{name}` listener")),
            other => errors.at(&at, format!("'{other}' is not a listener (http or https)")),
        }
    }
    if (on.http || on.https) && raw.trusted_proxies.is_empty() {
        errors.at(
            &[k("listen"), k("proxy_protocol")],
            "name the proxies that send the PROXY protocol header in `trusted_proxies`",
        );
    }
    on
}

/// What the tests of every part share: a minimal config, loading text into its errors.
#[cfg(test)]
mod test_support {
    use std::path::Path;

    use crate::config::load_str;

    pub(super) const MINIMAL: &str = "origins:\n  app: { http: \"127.0.0.1:3000\" }\ndistributions:\n  - domains: [\"*\"]\n    behaviors:\n      - { path_pattern: \"*\", origin: app }\n";

    pub(super) fn assert_has(errors: &[String], needle: &str) {
        assert!(
            errors.iter().any(|m| m.contains(needle)),
            "no error contains {needle:?}: {errors:#?}"
        );
    }

    pub(super) fn errs(text: &str) -> Vec<String> {
        match load_str("t.yaml", text, Path::new("/nonexistent-base")) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    pub(super) fn with_cache(cache: &str) -> String {
        format!("origins:\n  app: {{ http: \"127.0.0.1:3000\" }}\ndistributions:\n  - domains: [\"*\"]\n    behaviors:\n      - {{ path_pattern: \"*\", origin: app, cache: {cache} }}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{assert_has, errs, MINIMAL};
    use super::*;
    use crate::config::load_str;

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
    fn proxy_protocol_names_listeners_and_needs_trusted_proxies() {
        let listen = "listen: { http: \"127.0.0.1:8080\", https: \"127.0.0.1:8443\", proxy_protocol: [https] }\n";
        let with = format!("{listen}trusted_proxies: [10.0.0.1]\n{MINIMAL}");
        let c = load_str("t", &with, Path::new("/")).unwrap().config;
        assert_eq!(
            c.listen.proxy_protocol,
            ProxyProtocolOn {
                http: false,
                https: true
            }
        );
        assert_has(
            &errs(&format!("{listen}{MINIMAL}")),
            "listen.proxy_protocol: name the proxies",
        );
        let e = errs(&format!(
            "listen: {{ https: \"127.0.0.1:8443\", proxy_protocol: [http, h3] }}\ntrusted_proxies: [10.0.0.1]\n{MINIMAL}"
        ));
        assert_has(&e, "listen.proxy_protocol[0]: there is no `listen.http` listener");
        assert_has(&e, "listen.proxy_protocol[1]: 'h3' is not a listener");
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
}
