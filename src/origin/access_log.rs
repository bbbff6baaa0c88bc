//! Server access logs in S3's format, opt-in per bucket (`buckets.<name>.access_log: true`):
//! one line per request, appended to `data_dir/logs/buckets/<bucket>/<YYYY-MM-DD-HH>.log` (one file
//! per bucket per hour, UTC) by the log's writer thread ([`crate::telemetry::log_writer`]), before
//! the request is answered. Fields, space-separated, `-` when empty, as S3 writes them:
//!
//! ```text
//! owner bucket [time] remote-ip requester request-id operation key "request-uri" status
//! error-code bytes-sent object-size total-ms turn-around-ms "referer" "user-agent"
//! version-id host-id signature-version cipher-suite auth-type host-header tls-version
//! ```

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::telemetry::log_writer::{hourly_file_name, LogLine, LogWriter};

/// The canonical owner id written in the first field (all credentials are the owner's).
pub const OWNER: &str = "homefront";

/// What one request contributes to its log line.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub bucket: String,
    pub time: u64,
    pub remote_ip: String,
    /// Access key id of the signature, `None` for anonymous requests.
    pub requester: Option<String>,
    pub request_id: String,
    pub operation: String,
    /// The object key, percent-encoded as in the request; `None` for bucket operations.
    pub key: Option<String>,
    /// `METHOD /path?query HTTP/1.1`
    pub request_uri: String,
    pub status: u16,
    pub error_code: Option<String>,
    pub bytes_sent: Option<u64>,
    pub object_size: Option<u64>,
    pub total_ms: u64,
    pub turn_around_ms: u64,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub version_id: Option<String>,
    /// `AuthHeader` or `QueryString`; `None` when unsigned.
    pub auth_type: Option<&'static str>,
    pub host: Option<String>,
}

use crate::util::civil_from_days as civil;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `[06/Feb/2019:00:00:38 +0000]`
pub fn log_time(secs: u64) -> String {
    let (y, m, d) = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "[{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000]",
        MONTHS[(m - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// S3's operation name, e.g. `REST.GET.OBJECT`, `REST.PUT.PART`, `REST.GET.BUCKET`.
pub fn operation(method: &str, has_key: bool, query: &super::query::Query) -> String {
    let has = |p: &str| query.has(p);
    let kind = if method == "OPTIONS" {
        "PREFLIGHT"
    } else if has("uploadId") {
        match method {
            "PUT" => "PART",
            _ => "UPLOAD",
        }
    } else if has("uploads") {
        "UPLOADS"
    } else if has("acl") {
        "ACL"
    } else if has("cors") {
        "CORS"
    } else if has("tagging") {
        if has_key {
            "OBJECT_TAGGING"
        } else {
            "BUCKET_TAGGING"
        }
    } else if has("versioning") {
        "VERSIONING"
    } else if has("versions") {
        "BUCKETVERSIONS"
    } else if has("delete") {
        "MULTI_OBJECT_DELETE"
    } else if has("location") {
        "LOCATION"
    } else if has_key {
        "OBJECT"
    } else {
        "BUCKET"
    };
    format!("REST.{method}.{kind}")
}

fn dash(v: Option<&str>) -> &str {
    match v {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    }
}

/// A quoted field: `"..."` with inner quotes escaped, or `-`.
fn quoted(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        _ => "-".into(),
    }
}

/// One log line, without the newline.
pub fn format_line(e: &Entry) -> String {
    let num = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    let signed = e.auth_type.is_some();
    format!(
        "{OWNER} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} - {} - {} {} -",
        e.bucket,
        log_time(e.time),
        dash(Some(&e.remote_ip)),
        dash(e.requester.as_deref()),
        dash(Some(&e.request_id)),
        e.operation,
        dash(e.key.as_deref()),
        quoted(Some(&e.request_uri)),
        e.status,
        dash(e.error_code.as_deref()),
        num(e.bytes_sent.filter(|n| *n > 0)),
        num(e.object_size),
        e.total_ms,
        e.turn_around_ms,
        quoted(e.referer.as_deref()),
        quoted(e.user_agent.as_deref()),
        dash(e.version_id.as_deref()),
        if signed { "SigV4" } else { "-" },
        dash(e.auth_type),
        dash(e.host.as_deref()),
    )
}

impl LogLine for Entry {
    fn folder(&self) -> &str {
        &self.bucket
    }

    /// The hourly file name: `2019-02-06-00.log`.
    fn file_name(&self) -> String {
        hourly_file_name(self.time, "log")
    }

    fn line(&self) -> String {
        format_line(self)
    }
}

/// Appends lines to the hourly files of the buckets that log.
pub struct AccessLog {
    buckets: HashSet<String>,
    writer: LogWriter<Entry>,
}

impl AccessLog {
    /// Starts the log's writer thread, for logs under `dir`.
    pub fn new(dir: PathBuf, buckets: HashSet<String>) -> AccessLog {
        AccessLog {
            buckets,
            writer: LogWriter::start("homefront bucket log", dir, "bucket", usize::MAX),
        }
    }

    pub fn enabled(&self, bucket: &str) -> bool {
        self.buckets.contains(bucket)
    }

    /// Appends one line, and waits until it is in the file (as when it was written on the
    /// request's task): a request's line is on disk before it is answered. A failure to
    /// write is reported, never fails the request.
    pub async fn write(&self, e: Entry) {
        if !self.enabled(&e.bucket) {
            return;
        }
        self.writer.write(e).await;
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_file_names() {
        assert_eq!(log_time(1_549_411_238), "[06/Feb/2019:00:00:38 +0000]");
        assert_eq!(log_time(0), "[01/Jan/1970:00:00:00 +0000]");
        assert_eq!(log_time(951_782_400), "[29/Feb/2000:00:00:00 +0000]");
        let e = Entry {
            time: 1_549_411_238 + 3600 * 13,
            ..Entry::default()
        };
        assert_eq!(e.file_name(), "2019-02-06-13.log");
    }

    #[test]
    fn operations() {
        let q = |raw| crate::origin::query::Query::parse(raw).unwrap();
        assert_eq!(operation("GET", true, &q(None)), "REST.GET.OBJECT");
        assert_eq!(
            operation("GET", false, &q(Some("list-type=2&prefix=a"))),
            "REST.GET.BUCKET"
        );
        assert_eq!(
            operation("PUT", true, &q(Some("partNumber=1&uploadId=x"))),
            "REST.PUT.PART"
        );
        assert_eq!(operation("POST", true, &q(Some("uploads"))), "REST.POST.UPLOADS");
        assert_eq!(operation("POST", true, &q(Some("uploadId=x"))), "REST.POST.UPLOAD");
        assert_eq!(
            operation("POST", false, &q(Some("delete"))),
            "REST.POST.MULTI_OBJECT_DELETE"
        );
        assert_eq!(operation("PUT", false, &q(Some("cors"))), "REST.PUT.CORS");
        assert_eq!(operation("GET", true, &q(Some("tagging"))), "REST.GET.OBJECT_TAGGING");
        assert_eq!(operation("OPTIONS", true, &q(None)), "REST.OPTIONS.PREFLIGHT");
        // Names are read decoded, as s3s reads them.
        assert_eq!(operation("GET", true, &q(Some("%61cl"))), "REST.GET.ACL");
    }

    #[test]
    fn line_format() {
        let e = Entry {
            bucket: "site".into(),
            time: 1_549_411_238,
            remote_ip: "192.0.2.3".into(),
            requester: Some("homefront".into()),
            request_id: "3E57427F3EXAMPLE".into(),
            operation: "REST.GET.OBJECT".into(),
            key: Some("photos/cat%20one.jpg".into()),
            request_uri: "GET /site/photos/cat%20one.jpg HTTP/1.1".into(),
            status: 200,
            bytes_sent: Some(2662992),
            object_size: Some(3462992),
            total_ms: 70,
            turn_around_ms: 10,
            user_agent: Some("aws-cli/2 \"x\"".into()),
            auth_type: Some("AuthHeader"),
            host: Some("127.0.0.1:9000".into()),
            ..Entry::default()
        };
        assert_eq!(
            format_line(&e),
            "homefront site [06/Feb/2019:00:00:38 +0000] 192.0.2.3 homefront 3E57427F3EXAMPLE REST.GET.OBJECT \
             photos/cat%20one.jpg \"GET /site/photos/cat%20one.jpg HTTP/1.1\" 200 - 2662992 3462992 70 10 - \
             \"aws-cli/2 \\\"x\\\"\" - - SigV4 - AuthHeader 127.0.0.1:9000 -"
        );
        let anon = Entry {
            status: 403,
            error_code: Some("AccessDenied".into()),
            ..e
        };
        assert!(format_line(&anon).contains(" 403 AccessDenied "));
    }
}
