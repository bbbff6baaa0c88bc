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

/// Mode of every directory homefront creates: data_dir holds private objects, cached
/// signed content and secrets, so only its owner may enter it.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file homefront writes under data_dir.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// `create_dir_all` with every directory it creates made 0700 at creation (not left to the
/// umask, which can only take bits away).
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
}

/// `File::create` (write, create, truncate) with mode 0600 at creation.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
}

/// Opens `path` for appending, creating it 0600 (logs).
pub fn open_private_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
}

/// Takes group and other permissions away from `root` and everything under it that this
/// user owns (directories 0700, files 0600; symlinks are not followed), for installs made
/// before homefront created its files private. Returns how many entries it changed.
pub fn make_private(root: &Path) -> std::io::Result<usize> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut fixed = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Removed meanwhile (a temp file): nothing to fix.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let ft = meta.file_type();
        if ft.is_symlink() || meta.uid() != me {
            continue;
        }
        let want = if ft.is_dir() {
            PRIVATE_DIR_MODE
        } else {
            PRIVATE_FILE_MODE
        };
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
            fixed += 1;
        }
        if ft.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(fixed)
}

/// Writes `data` to `path` crash-safely: a temp file beside it, fsync, rename, fsync of the
/// directory. After a crash the file is either the old one, absent, or whole.
pub fn write_file_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir_all(dir)?;
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
    fn private_files_and_directories() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_private_dir_all(&deep).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&deep), 0o700);
        create_private_file(&deep.join("f")).unwrap();
        assert_eq!(mode(&deep.join("f")), 0o600);
        open_private_append(&deep.join("log")).unwrap();
        assert_eq!(mode(&deep.join("log")), 0o600);
        write_file_atomic(&dir.path().join("x/y.json"), b"{}", 0o600).unwrap();
        assert_eq!(mode(&dir.path().join("x")), 0o700);
    }

    #[test]
    fn an_old_install_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("buckets/site/objects/ab")).unwrap();
        std::fs::write(root.join("buckets/site/objects/ab/k.meta"), b"{}").unwrap();
        std::fs::write(root.join("buckets/site/bucket.json"), b"{}").unwrap();
        for d in [
            "",
            "buckets",
            "buckets/site",
            "buckets/site/objects",
            "buckets/site/objects/ab",
        ] {
            set(&root.join(d), 0o755);
        }
        set(&root.join("buckets/site/objects/ab/k.meta"), 0o644);
        set(&root.join("buckets/site/bucket.json"), 0o600);
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, b"not homefront's").unwrap();
        set(&outside, 0o644);
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        assert_eq!(make_private(&root).unwrap(), 6);
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("buckets/site/objects/ab")), 0o700);
        assert_eq!(mode(&root.join("buckets/site/objects/ab/k.meta")), 0o600);
        assert_eq!(make_private(&root).unwrap(), 0, "once is enough");
        // A symlink is not followed out of data_dir.
        assert_eq!(mode(&outside), 0o644);
    }

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

/// The time decisions are made at, injected into the edge's state (`EdgeState::clock`):
/// the system clock, or a fixed instant for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(u64),
}

impl Clock {
    /// The clock a server runs on: the system's. A debug build (the binary the integration
    /// tests start) can be pinned with `HOMEFRONT_FIXED_TIME=<epoch seconds>`, so that
    /// signed-URL expiry is tested without the wall clock; a release build never reads it.
    pub fn from_env() -> Clock {
        #[cfg(debug_assertions)]
        if let Some(t) = std::env::var("HOMEFRONT_FIXED_TIME")
            .ok()
            .and_then(|v| v.trim().parse().ok())
        {
            return Clock::Fixed(t);
        }
        Clock::System
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

/// Seconds since the epoch as ISO 8601 in UTC (`2026-12-03T14:34:00Z`).
pub fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
