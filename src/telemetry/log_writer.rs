//! The writer both access logs share (the bucket store's, [`crate::origin::access_log`], and
//! the edge's, [`super::access_log`]): requests hand their record to one writer thread per
//! log, which formats it and appends the line to one file per folder (bucket, distribution)
//! per hour (UTC), `<dir>/<folder>/YYYY-MM-DD-HH.<ext>`. Files are private and opened in
//! append mode; each line is one unbuffered write, so lines never interleave and a line is
//! in its file as soon as the writer has taken it (nothing waits for a flush, on shutdown
//! either: the writer drains what is queued, then ends when its log is dropped).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// What one request writes to a log.
pub trait LogLine: Send + 'static {
    /// The folder of the log's directory the line goes to (the bucket, the distribution).
    fn folder(&self) -> &str;
    /// The file of that folder it goes to (an [`hourly_file_name`]).
    fn file_name(&self) -> String;
    /// What a new, empty file begins with.
    fn header(&self) -> Option<String> {
        None
    }
    /// The line, without its newline.
    fn line(&self) -> String;
}

/// The file for the hour (UTC) of `secs`: `2019-02-06-00.<ext>`.
pub fn hourly_file_name(secs: u64, ext: &str) -> String {
    let (y, m, d) = crate::util::civil_from_days((secs / 86_400) as i64);
    format!("{y}-{m:02}-{d:02}-{:02}.{ext}", secs % 86_400 / 3600)
}

/// A record for the writer, and who waits for it to be written.
struct Job<R> {
    record: R,
    written: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Hands records to the log's writer thread. The queue grows with what waits in it: a
/// bounded channel of the edge's size reserved ~35 MiB up front, even with no access log
/// configured.
pub struct LogWriter<R> {
    tx: Sender<Job<R>>,
    queued: Arc<AtomicUsize>,
    /// Records waiting at most for [`LogWriter::log`]; more are dropped.
    limit: usize,
}

impl<R: LogLine> LogWriter<R> {
    /// Starts the writer thread `thread` for logs under `dir`; `what` names a folder in the
    /// warnings of a failed write ("bucket", "distribution").
    pub fn start(thread: &str, dir: PathBuf, what: &'static str, limit: usize) -> LogWriter<R> {
        let (tx, rx) = channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let count = queued.clone();
        let spawned = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || writer(dir, what, rx, count));
        if let Err(e) = spawned {
            tracing::error!("cannot start the access log writer: {e}");
        }
        LogWriter { tx, queued, limit }
    }

    /// Never blocks: with `limit` records waiting already (or no writer) the record is
    /// dropped, and `false` returned.
    pub fn log(&self, record: R) -> bool {
        let job = Job { record, written: None };
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.limit || self.tx.send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Hands `record` to the writer and waits until its line is in the file (or could not be
    /// written): what a request logs this way is on disk before it is answered. Never drops.
    pub async fn write(&self, record: R) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            record,
            written: Some(tx),
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let _ = rx.await;
    }
}

fn writer<R: LogLine>(dir: PathBuf, what: &str, rx: Receiver<Job<R>>, queued: Arc<AtomicUsize>) {
    // Open file per folder, with the hour it is for.
    let mut files: HashMap<String, (String, File)> = HashMap::new();
    while let Ok(job) = rx.recv() {
        queued.fetch_sub(1, Ordering::Relaxed);
        append(&dir, what, &mut files, &job.record);
        if let Some(written) = job.written {
            let _ = written.send(());
        }
    }
}

/// Appends one line; a failure to write is reported, never fails the request.
fn append<R: LogLine>(dir: &Path, what: &str, files: &mut HashMap<String, (String, File)>, r: &R) {
    let name = r.file_name();
    let folder = r.folder();
    let reopen = files.get(folder).is_none_or(|(hour, _)| *hour != name);
    if reopen {
        let d = dir.join(folder);
        let opened = crate::util::create_private_dir_all(&d)
            .and_then(|_| crate::util::open_private_append(&d.join(&name)))
            .and_then(|mut f| {
                if let Some(header) = r.header() {
                    if f.metadata()?.len() == 0 {
                        f.write_all(header.as_bytes())?;
                    }
                }
                Ok(f)
            });
        match opened {
            Ok(f) => {
                files.insert(folder.to_string(), (name, f));
            }
            Err(e) => {
                tracing::warn!("access log for {what} {folder}: {e}");
                return;
            }
        }
    }
    let mut text = r.line();
    text.push('\n');
    if let Some((_, f)) = files.get_mut(folder) {
        // One write per line with O_APPEND: lines never interleave.
        if let Err(e) = f.write_all(text.as_bytes()) {
            tracing::warn!("access log for {what} {folder}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_file_names() {
        assert_eq!(hourly_file_name(1_549_411_238 + 3600 * 13, "log"), "2019-02-06-13.log");
        assert_eq!(hourly_file_name(1_575_493_351, "jsonl"), "2019-12-04-21.jsonl");
    }

    struct Line(&'static str, u64, &'static str);

    impl LogLine for Line {
        fn folder(&self) -> &str {
            self.0
        }
        fn file_name(&self) -> String {
            hourly_file_name(self.1, "log")
        }
        fn header(&self) -> Option<String> {
            Some("#head\n".into())
        }
        fn line(&self) -> String {
            self.2.into()
        }
    }

    #[tokio::test]
    async fn a_written_line_is_in_its_hourly_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogWriter::start("test log", dir.path().to_path_buf(), "test", usize::MAX);
        log.write(Line("a", 0, "one")).await;
        log.write(Line("a", 0, "two")).await;
        log.write(Line("a", 3600, "three")).await;
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("a/1970-01-01-00.log"), "#head\none\ntwo\n");
        assert_eq!(read("a/1970-01-01-01.log"), "#head\nthree\n");
    }
}
