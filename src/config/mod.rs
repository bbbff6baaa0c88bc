//! YAML configuration: parsed once into a marked tree, deserialized into the raw schema with
//! every error located (file, line, column, key path), validated, and compiled into the
//! immutable [`model::Config`] the edge and the bucket store use.

pub(crate) mod compile;
pub mod de;
pub mod model;
pub mod schema;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default configuration (`conf/homefront.yaml`).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../conf/homefront.yaml");
/// `Config::source` of the embedded default.
pub const EMBEDDED_SOURCE: &str = "<embedded default>";

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Key path such as `distributions[0].behaviors[1].path_pattern`; empty for the file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A compiled config plus the work `serve` still has to do before using it.
#[derive(Debug)]
pub struct Loaded {
    pub config: model::Config,
    /// `origin_server.credentials[i]` whose `secret_access_key_file` does not exist yet but
    /// lies inside `data_dir`: `serve` generates it (their secret is empty until then).
    pub secrets_to_generate: Vec<(usize, PathBuf)>,
}

/// What a config is loaded for: the whole server (at least one distribution), or only the
/// bucket store (`homefront origin`: `origin_server` and `buckets`; distributions optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Edge,
    Origin,
}

/// Loads and compiles a config file; relative paths are relative to its directory.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    load_file_for(path, Purpose::Edge)
}

/// [`load_file`] for a purpose.
pub fn load_file_for(path: &Path, purpose: Purpose) -> Result<Loaded, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    compile::load(&file, &text, &base, purpose)
}

/// The embedded default; relative paths are relative to the current directory.
pub fn load_embedded_default() -> Result<Loaded, ConfigErrors> {
    load_str(EMBEDDED_SOURCE, EMBEDDED_DEFAULT, Path::new("."))
}

/// Loads config text named `source` (for messages), resolving relative paths against
/// `base_dir`.
pub fn load_str(source: &str, text: &str, base_dir: &Path) -> Result<Loaded, ConfigErrors> {
    compile::load(source, text, base_dir, Purpose::Edge)
}

/// The keys a config text leaves out of the schema: for each struct in the schema that the
/// text reaches, the fields the text does not use (as `path.key`). The README's reference
/// must leave none out.
pub fn undocumented_keys(text: &str) -> Result<Vec<String>, ConfigErrors> {
    compile::undocumented_keys(text)
}

/// `250ms`, `30s`, `10m`, `2h`, `1d`, `1w`, `1y` (365 days) or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "'{s}' is not a duration (use e.g. 30s, 10m, 1d or plain seconds)"
        ));
    }
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is too large a duration"))?;
    if unit.trim() == "ms" {
        return Ok(Duration::from_millis(n));
    }
    let mult: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        other => return Err(format!("'{s}': unknown unit '{other}' (use ms, s, m, h, d, w or y)")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is too large a duration"))
}

/// Parses a size: plain bytes or with a unit (`512KiB`, `256MiB`, `10GiB`, `1TiB`; `KB`,
/// `MB`, `GB`, `TB` are decimal; `K`, `M`, `G`, `T` binary).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("'{s}' is not a size (use e.g. 512MiB, 10GiB or plain bytes)"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is too large a size"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "'{s}': unknown unit '{other}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
            ))
        }
    };
    n.checked_mul(mult).ok_or_else(|| format!("'{s}' is too large a size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("5 furlongs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(31_536_000)));
        assert_eq!(parse_duration("86400"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999y").is_err());
        assert!(parse_duration("9999999999999999y").is_err());
    }
}
