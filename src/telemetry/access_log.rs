//! Edge access logs, opt-in per distribution (`distributions[].access_log: cloudfront |
//! json`): CloudFront's standard log format (tab-separated, `#Version` and `#Fields` headers,
//! CloudFront's field names in CloudFront's order) or JSON lines with the same fields, one
//! file per distribution per hour (UTC) under `data_dir/logs/distributions/<name>/`.
//!
//! Requests never wait for the disk: records go through a bounded queue to the log's writer
//! thread ([`super::log_writer`]); when it falls behind, they are dropped and counted
//! (`homefront_access_log_dropped_total`).

use std::path::PathBuf;

use super::log_writer::{hourly_file_name, LogLine, LogWriter};

pub use crate::config::model::AccessLogFormat as Format;

/// CloudFront's standard log fields, in order.
pub const FIELDS: [&str; 33] = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
];

/// One request, as the log records it. `None` / empty fields are written as `-`.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub distribution: String,
    /// Seconds and milliseconds since the epoch.
    pub time: u64,
    pub sc_bytes: u64,
    pub c_ip: String,
    pub c_port: u16,
    pub method: String,
    /// The distribution's name stands in for CloudFront's `d111111abcdef8.cloudfront.net`.
    pub host: String,
    pub uri_stem: String,
    pub status: u16,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub query: Option<String>,
    pub cookie: Option<String>,
    /// Hit, RefreshHit, Miss, Error, Redirect.
    pub result: String,
    pub request_id: String,
    pub host_header: Option<String>,
    pub protocol: &'static str,
    pub cs_bytes: u64,
    pub time_taken: f64,
    pub forwarded_for: Option<String>,
    pub ssl_protocol: Option<String>,
    pub ssl_cipher: Option<String>,
    pub protocol_version: String,
    pub time_to_first_byte: Option<f64>,
    pub content_type: Option<String>,
    pub content_len: Option<u64>,
    pub range: Option<(u64, u64)>,
}

/// CloudFront URL-encodes spaces and other unsafe bytes in header fields.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_graphic() && b != b'%' && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn field(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => encode(s),
        _ => "-".into(),
    }
}

/// (`2019-12-04`, `21:02:31`) in UTC.
fn date_time(secs: u64) -> (String, String) {
    let (y, m, d) = crate::util::civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    (
        format!("{y}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
    )
}

/// The values of [`FIELDS`] for one record.
pub fn values(r: &Record) -> Vec<String> {
    let (date, time) = date_time(r.time);
    let secs = |v: f64| format!("{v:.3}");
    vec![
        date,
        time,
        super::EDGE_NAME.to_string(),
        r.sc_bytes.to_string(),
        field(Some(&r.c_ip)),
        r.method.clone(),
        field(Some(&r.host)),
        field(Some(&r.uri_stem)),
        r.status.to_string(),
        field(r.referer.as_deref()),
        field(r.user_agent.as_deref()),
        field(r.query.as_deref()),
        field(r.cookie.as_deref()),
        r.result.clone(),
        r.request_id.clone(),
        field(r.host_header.as_deref()),
        r.protocol.to_string(),
        r.cs_bytes.to_string(),
        secs(r.time_taken),
        field(r.forwarded_for.as_deref()),
        field(r.ssl_protocol.as_deref()),
        field(r.ssl_cipher.as_deref()),
        r.result.clone(),
        r.protocol_version.clone(),
        "-".into(),
        "-".into(),
        r.c_port.to_string(),
        r.time_to_first_byte.map(secs).unwrap_or_else(|| "-".into()),
        r.result.clone(),
        field(r.content_type.as_deref()),
        r.content_len.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        r.range.map(|(s, _)| s.to_string()).unwrap_or_else(|| "-".into()),
        r.range.map(|(_, e)| e.to_string()).unwrap_or_else(|| "-".into()),
    ]
}

/// One line (without newline) in `format`.
pub fn line(format: Format, r: &Record) -> String {
    let v = values(r);
    match format {
        Format::CloudFront => v.join("\t"),
        Format::Json => {
            let map: serde_json::Map<String, serde_json::Value> = FIELDS
                .iter()
                .zip(v)
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                .collect();
            serde_json::Value::Object(map).to_string()
        }
    }
}

/// The header of a new CloudFront-format file.
pub fn header() -> String {
    format!("#Version: 1.0\n#Fields: {}\n", FIELDS.join(" "))
}

/// Records waiting for the writer at most; more are dropped (and counted).
const QUEUE: usize = 65_536;

/// One record, in its distribution's format: what the writer thread writes.
struct Line(Format, Record);

impl LogLine for Line {
    fn folder(&self) -> &str {
        &self.1.distribution
    }

    fn file_name(&self) -> String {
        let ext = match self.0 {
            Format::CloudFront => "log",
            Format::Json => "jsonl",
        };
        hourly_file_name(self.1.time, ext)
    }

    fn header(&self) -> Option<String> {
        (self.0 == Format::CloudFront).then(header)
    }

    fn line(&self) -> String {
        line(self.0, &self.1)
    }
}

/// Hands records to the writer thread ([`LogWriter`]).
pub struct AccessLogger {
    writer: LogWriter<Line>,
}

impl AccessLogger {
    /// Starts the writer thread for logs under `dir`.
    pub fn start(dir: PathBuf) -> AccessLogger {
        AccessLogger {
            writer: LogWriter::start("homefront access log", dir, "distribution", QUEUE),
        }
    }

    /// Never blocks: a full queue drops the record and counts it.
    pub fn log(&self, format: Format, record: Record) {
        if !self.writer.log(Line(format, record)) {
            super::ACCESS_LOG_DROPPED.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            distribution: "main".into(),
            time: 1_575_493_351,
            sc_bytes: 392,
            c_ip: "192.0.2.100".into(),
            c_port: 61234,
            method: "GET".into(),
            host: "main".into(),
            uri_stem: "/index.html".into(),
            status: 200,
            user_agent: Some("Mozilla/5.0 (Windows NT 10.0)".into()),
            result: "Hit".into(),
            request_id: "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==".into(),
            host_header: Some("cdn.example.com".into()),
            protocol: "https",
            cs_bytes: 23,
            time_taken: 0.001,
            ssl_protocol: Some("TLSv1.3".into()),
            ssl_cipher: Some("TLS_AES_128_GCM_SHA256".into()),
            protocol_version: "HTTP/2.0".into(),
            time_to_first_byte: Some(0.001),
            content_type: Some("text/html".into()),
            content_len: Some(78),
            ..Record::default()
        }
    }

    #[test]
    fn cloudfront_lines_have_every_field_in_order() {
        let l = line(Format::CloudFront, &record());
        let v: Vec<&str> = l.split('\t').collect();
        assert_eq!(v.len(), FIELDS.len());
        assert_eq!(&v[..4], ["2019-12-04", "21:02:31", "homefront", "392"]);
        assert_eq!(v[10], "Mozilla/5.0%20(Windows%20NT%2010.0)");
        assert_eq!(v[11], "-");
        assert_eq!(v[13], "Hit");
        assert_eq!(v[18], "0.001");
        assert_eq!(v[23], "HTTP/2.0");
        assert_eq!(v[26], "61234");
        assert_eq!(v[31], "-");
        assert!(header().starts_with("#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip"));
    }

    #[test]
    fn json_lines_use_the_same_names() {
        let v: serde_json::Value = serde_json::from_str(&line(Format::Json, &record())).unwrap();
        assert_eq!(v["cs-uri-stem"], "/index.html");
        assert_eq!(v["x-edge-result-type"], "Hit");
        assert_eq!(v.as_object().unwrap().len(), FIELDS.len());
    }
}
