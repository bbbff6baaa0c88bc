//! Small shared helpers.

use std::io::Write;
use std::path::Path;

/// The process's `RLIMIT_NOFILE` (soft and hard), if it can be read.
fn nofile() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit to a valid pointer.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim)
}

/// The process's limit on open files (`RLIMIT_NOFILE`, the soft one).
pub fn open_files_limit() -> u64 {
    nofile().map_or(1024, |lim| lim.rlim_cur)
}

/// Raises the process's limit on open files to its hard limit (at most 1,048,576), as nginx's
/// `worker_rlimit_nofile` or Go's runtime do: the soft default is often 1,024, which a few
/// hundred viewers' connections, their origin connections and the cache's open files use
/// up. Returns the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    if let Some(mut lim) = nofile() {
        let want = lim.rlim_max.min(1 << 20);
        if want > lim.rlim_cur {
            lim.rlim_cur = want;
            // SAFETY: setrlimit reads one rlimit from a valid pointer; on failure the limit
            // stays as it was.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        }
    }
    open_files_limit()
}

/// Writes `data` to `path` crash-safely: a temp file beside it, fsync, rename, fsync of the
/// directory. After a crash the file is either the old one, absent, or whole.
pub fn write_file_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_file_with_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret");
        write_file_atomic(&p, b"abc", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        write_file_atomic(&p, b"defg", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"defg");
    }
}

/// The time decisions are made at. `Fixed` is for tests: `HOMEFRONT_FIXED_TIME=<epoch
/// seconds>` pins it for a whole process, so signed-URL expiry can be tested without the
/// wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(u64),
}

impl Clock {
    /// From `HOMEFRONT_FIXED_TIME`, else the system clock.
    pub fn from_env() -> Clock {
        match std::env::var("HOMEFRONT_FIXED_TIME")
            .ok()
            .and_then(|v| v.trim().parse().ok())
        {
            Some(t) => Clock::Fixed(t),
            None => Clock::System,
        }
    }

    /// Seconds since the epoch.
    pub fn now(&self) -> u64 {
        match self {
            Clock::Fixed(t) => *t,
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

/// The names an `Access-Control-Request-Headers` value lists, trimmed and lower-cased.
pub fn requested_headers(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// `pattern` with at most one `*` (any run of characters) against `value`, as S3 and
/// CloudFront match CORS origins and headers.
pub fn one_star_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((pre, post)) => value.len() >= pre.len() + post.len() && value.starts_with(pre) && value.ends_with(post),
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
