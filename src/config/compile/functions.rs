//! `functions`: CloudFront Functions, each compiled at load (its code must load and define
//! `handler`), with its KeyValueStore and limits.

use std::collections::BTreeMap;

use super::*;
use crate::functions::{Function, Kvs, Limits, Runtime};

pub(super) type Functions = BTreeMap<String, Function>;

pub(super) fn compile_functions(raw: &RawConfig, base: &Path, errors: &mut Errors<'_>) -> Functions {
    let mut out = Functions::new();
    for (name, f) in &raw.functions.0 {
        let at = [k("functions"), k(name)];
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            errors.at(
                &at,
                format!("'{name}': a function name is 1 to 64 letters, digits, '_' and '-'"),
            );
            continue;
        }
        let runtime = match f.runtime.as_deref() {
            None => Runtime::Js2,
            Some(r) => match Runtime::parse(r) {
                Some(r) => r,
                None => {
                    errors.at(
                        &p(&at, &[k("runtime")]),
                        format!("'{r}' is not a runtime: cloudfront-js-2.0 or cloudfront-js-1.0"),
                    );
                    continue;
                }
            },
        };
        let mut limits = Limits::default();
        if let Some(t) = &f.compute_budget {
            match crate::config::parse_duration(t) {
                Ok(d) if d >= Duration::from_millis(1) && d <= Duration::from_secs(1) => limits.compute = d,
                Ok(_) => errors.at(&p(&at, &[k("compute_budget")]), "must be between 1ms and 1s"),
                Err(m) => errors.at(&p(&at, &[k("compute_budget")]), m),
            }
        }
        if let Some(t) = &f.memory {
            match crate::config::parse_size(t) {
                Ok(n) if (256 * 1024..=256 << 20).contains(&n) => limits.memory = n as usize,
                Ok(_) => errors.at(&p(&at, &[k("memory")]), "must be between 256KiB and 256MiB"),
                Err(m) => errors.at(&p(&at, &[k("memory")]), m),
            }
        }
        let kvs = match &f.kvs {
            None => None,
            Some(file) => {
                let path = resolve(base, file);
                let loaded = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
                    .and_then(|text| {
                        let at = std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_secs());
                        Kvs::parse(&text, at).map_err(|e| format!("{}: {e}", path.display()))
                    });
                match loaded {
                    Ok(kvs) => Some(Arc::new(kvs)),
                    Err(m) => {
                        errors.at(&p(&at, &[k("kvs")]), m);
                        continue;
                    }
                }
            }
        };
        let path = resolve(base, &f.file);
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                errors.at(&p(&at, &[k("file")]), format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        let file_name = path.display().to_string();
        match Function::compile(name, &file_name, runtime, source, kvs, limits) {
            Ok(function) => {
                out.insert(name.clone(), function);
            }
            Err(e) => {
                // Where the code is wrong: the script's file and line.
                let (file, line) = match e.line {
                    Some(line) => (file_name.clone(), line as usize),
                    None => (
                        errors.file.to_string(),
                        errors.tree.find_nearest(&p(&at, &[k("file")])).line,
                    ),
                };
                errors.list.push(ConfigError {
                    file,
                    line,
                    column: 0,
                    path: path_string(&p(&at, &[k("file")])),
                    message: format!("function '{name}' ({}): {}", runtime.name(), e.message),
                });
            }
        }
    }
    out
}

/// A behavior's `function_associations`, each naming a function of `functions`.
pub(super) fn compile_associations(
    config: &RawConfig,
    raw: Option<&RawFunctionAssociations>,
    functions: &Functions,
    at: &[Seg],
    errors: &mut Errors<'_>,
) -> FunctionAssociations {
    let Some(raw) = raw else {
        return FunctionAssociations::default();
    };
    let mut find = |key: &str, name: &Option<String>| -> Option<Function> {
        let name = name.as_ref()?;
        let found = functions.get(name).cloned();
        // A function that is listed but did not compile has its own error.
        if found.is_none() && !config.functions.0.iter().any(|(n, _)| n == name) {
            errors.at(
                &p(at, &[k("function_associations"), k(key)]),
                format!("no function named '{name}' under functions"),
            );
        }
        found
    };
    FunctionAssociations {
        viewer_request: find("viewer_request", &raw.viewer_request),
        viewer_response: find("viewer_response", &raw.viewer_response),
    }
}
