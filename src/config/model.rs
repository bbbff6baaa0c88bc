//! The compiled, immutable form of the configuration. Everything the edge and the bucket
//! store read per request lives here, already validated and precompiled (path patterns,
//! header names, socket addresses), so no request ever parses config text.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

use crate::policy::path_pattern::PathPattern;

/// One generation of the running configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where this generation came from: a file path, or `<embedded default>`.
    pub source: String,
    /// Root of everything homefront writes: buckets, certificates, secrets, cache.
    pub data_dir: PathBuf,
    pub listen: Listen,
    /// Prometheus text endpoint (`/metrics`); `None` turns it off.
    pub metrics_listen: Option<SocketAddr>,
    pub tls: Tls,
    /// Origins by name, in file order.
    pub origins: Vec<Arc<Origin>>,
    pub distributions: Vec<Distribution>,
    /// Buckets of the built-in store declared in YAML (created at start when missing).
    pub buckets: BTreeMap<String, BucketConfig>,
    /// The built-in bucket store listener; `None` when no bucket store runs in this process.
    pub origin_server: Option<OriginServer>,
    /// Peers whose X-Forwarded-For names the client (for signed-URL IP conditions).
    pub trusted_proxies: Vec<crate::policy::ip::Cidr>,
    /// Size limits of the edge cache under `data_dir/cache`.
    pub cache: CacheStoreConfig,
    /// The admin API listener (invalidations); `None` turns it off.
    pub admin: Option<AdminConfig>,
    /// Reload when the config file changes (`reload.watch`).
    pub watch_config: bool,
    /// What the edge accepts from viewers (`limits`).
    pub limits: Limits,
    /// CloudFront Functions by name (`functions`), compiled.
    pub functions: BTreeMap<String, crate::functions::Function>,
}

/// Request size limits, timeouts and per-client limits at the edge (`limits`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_header_size: usize,
    pub max_url_length: usize,
    pub max_headers: usize,
    pub max_body_size: u64,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub per_client: PerClientLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // CloudFront's limits for viewer requests.
            max_header_size: 20_480,
            max_url_length: 8_192,
            max_headers: 100,
            // S3's largest single PUT.
            max_body_size: 5 << 30,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            per_client: PerClientLimits::default(),
        }
    }
}

/// Limits per client IP address; 0 means no limit.
#[derive(Debug, Clone, PartialEq)]
pub struct PerClientLimits {
    pub max_connections: u32,
    pub requests_per_second: u32,
    pub burst: u32,
    /// Clients the limits never apply to (loopback by default).
    pub exempt: Vec<crate::policy::ip::Cidr>,
}

impl Default for PerClientLimits {
    fn default() -> Self {
        PerClientLimits {
            max_connections: 256,
            requests_per_second: 1000,
            burst: 2000,
            exempt: ["127.0.0.0/8", "::1"]
                .iter()
                .filter_map(|c| crate::policy::ip::Cidr::parse(c))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStoreConfig {
    pub disk_size: u64,
    pub memory_size: u64,
}

impl Default for CacheStoreConfig {
    fn default() -> Self {
        CacheStoreConfig {
            disk_size: 10 << 30,
            memory_size: 256 << 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Holds the bearer token; `serve` generates it when missing.
    pub token_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// Which listeners expect a PROXY protocol header on every connection.
    pub proxy_protocol: ProxyProtocolOn,
}

/// The listeners that expect a PROXY protocol header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyProtocolOn {
    pub http: bool,
    pub https: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// Certificates chosen by SNI. Empty: a self-signed certificate for `localhost` is
    /// generated under `data_dir/tls/` and kept across restarts.
    pub certificates: Vec<CertificateSpec>,
    /// `tls.acme`: a certificate obtained and renewed automatically.
    pub acme: Option<AcmeConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    pub directory: String,
    /// Lower-cased; the first names the files.
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub challenge: AcmeChallenge,
    pub renew_before: std::time::Duration,
    /// `data_dir/acme`: the account, and the certificate and key.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    Http01,
    TlsAlpn01,
}

impl AcmeConfig {
    /// The obtained certificate and key, as the certificate store loads them.
    pub fn spec(&self) -> CertificateSpec {
        CertificateSpec {
            domains: self.domains.clone(),
            cert: self.dir.join(format!("{}.pem", self.domains[0])),
            key: self.dir.join(format!("{}.key", self.domains[0])),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CertificateSpec {
    /// Exact names (`cdn.example.com`) or one leading wildcard label (`*.example.com`),
    /// lower-cased.
    pub domains: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Origin {
    pub name: String,
    pub kind: OriginKind,
    /// How requests to S3-style origins (bucket, s3) are signed.
    pub signing: Signing,
    /// Prefix added before the viewer path (`/build`); empty or starts with `/`, no trailing `/`.
    pub origin_path: String,
    /// Headers added to every request to this origin.
    pub custom_headers: Vec<(HeaderName, HeaderValue)>,
    /// Connect and response timeouts, connection attempts.
    pub timeouts: OriginTimeouts,
}

/// CloudFront's origin timeouts: connect 1–10 s (default 10), response 1–60 s (default 30),
/// 1–3 connection attempts (default 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginTimeouts {
    pub connect: std::time::Duration,
    pub response: std::time::Duration,
    pub attempts: u8,
}

impl Default for OriginTimeouts {
    fn default() -> Self {
        OriginTimeouts {
            connect: std::time::Duration::from_secs(10),
            response: std::time::Duration::from_secs(30),
            attempts: 3,
        }
    }
}

/// One server of an `http` origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub address: SocketAddr,
    pub tls: bool,
    pub sni: String,
}

/// How an `http` origin with several upstreams spreads requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConnections,
    /// By the request path (ketama): one object keeps going to one upstream.
    ConsistentHash,
}

/// Active health checks of an `http` origin's upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// `GET path` must answer 2xx/3xx; `None`: a TCP connect is enough.
    pub path: Option<String>,
    pub interval: std::time::Duration,
}

#[derive(Debug, Clone)]
pub enum OriginKind {
    /// A bucket of the built-in store, reached over plain HTTP at `origin_server.listen`,
    /// each request signed with SigV4 using the first `origin_server` credential.
    Bucket { bucket: String },
    /// HTTP(S) servers (TLS offload for app servers), spread by `balance`.
    Http {
        upstreams: Vec<Upstream>,
        balance: Balance,
        health_check: Option<HealthCheckSpec>,
    },
    /// An origin group: requests go to `primary`; GET/HEAD/OPTIONS fail over to `secondary`
    /// when the primary cannot be reached, times out, or answers one of `failover_on`.
    Group {
        primary: Arc<Origin>,
        secondary: Arc<Origin>,
        failover_on: Vec<u16>,
    },
    /// A bucket of an S3-compatible service, signed with SigV4 by the edge.
    S3 {
        address: SocketAddr,
        tls: bool,
        sni: String,
        /// The Host header sent and signed: the endpoint's, or `bucket.` + it (virtual style).
        host: String,
        bucket: String,
        virtual_host: bool,
        region: String,
        /// `None`: nothing to sign with (requests go unsigned, for public buckets).
        credential: Option<Credential>,
    },
}

/// CloudFront's origin access control signing behaviors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    Always,
    Never,
    /// Sign unless the viewer sent its own Authorization, which then goes through.
    NoOverride,
}

#[derive(Debug, Clone)]
pub struct Distribution {
    /// `distributions[i].name`, default `d<i>`; used in metrics labels and logs.
    pub name: String,
    /// Lower-cased alternate domain names; `*.example.com` wildcards; `*` alone is a catch-all.
    pub domains: Vec<String>,
    /// Served for `/` only, e.g. `index.html` (no leading slash).
    pub default_root_object: Option<String>,
    /// In file order; the last one is always the default `*` behavior.
    pub behaviors: Vec<Behavior>,
    /// CloudFront's custom error responses, by origin status code.
    pub error_responses: Vec<ErrorResponse>,
    /// Access log format, `None` = no access log.
    pub access_log: Option<AccessLogFormat>,
}

/// A distribution's access log format (`distributions[].access_log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// CloudFront's standard log format, tab-separated.
    CloudFront,
    /// JSON lines with the same fields.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub error_code: u16,
    /// A path of this distribution served in place of the origin's error body.
    pub page_path: Option<String>,
    /// Status sent with the page; `None` keeps the origin's.
    pub response_code: Option<u16>,
    pub caching_min_ttl: std::time::Duration,
}

impl Distribution {
    /// How long an error response without its own freshness is cached (CloudFront: 10 s).
    pub fn error_ttl(&self, status: u16) -> std::time::Duration {
        self.error_response(status)
            .map(|e| e.caching_min_ttl)
            .unwrap_or(std::time::Duration::from_secs(10))
    }

    pub fn error_response(&self, status: u16) -> Option<&ErrorResponse> {
        self.error_responses.iter().find(|e| e.error_code == status)
    }
}

#[derive(Debug, Clone)]
pub struct Behavior {
    /// The pattern as written in the file (for logs and metric labels).
    pub path_pattern_text: String,
    pub path_pattern: PathPattern,
    pub origin: Arc<Origin>,
    pub viewer_protocol_policy: ViewerProtocolPolicy,
    /// One of CloudFront's three sets: {GET,HEAD} | {GET,HEAD,OPTIONS} | all seven.
    pub allowed_methods: Vec<Method>,
    /// Keys whose signed URLs or cookies grant access; `None`: the behavior is public.
    pub trusted_keys: Option<Arc<crate::policy::signed::TrustedKeys>>,
    /// TTLs and cache key (`behaviors[].cache`).
    pub cache: Arc<crate::policy::cache_policy::CachePolicy>,
    /// `behaviors[].response_headers`; `None`: responses pass as the origin sent them.
    pub headers: Option<Arc<crate::policy::headers_policy::HeadersPolicy>>,
    /// `origin_request.origin`: the Origin sent to the origin when the viewer sent none.
    pub inject_origin: Option<HeaderValue>,
    /// `compress`: gzip/br/zstd at the edge for viewers that accept it.
    pub compress: bool,
    /// `function_associations`: the CloudFront Functions run on viewer requests and responses.
    pub functions: FunctionAssociations,
}

/// The functions a behavior runs (`function_associations`).
#[derive(Debug, Clone, Default)]
pub struct FunctionAssociations {
    pub viewer_request: Option<crate::functions::Function>,
    pub viewer_response: Option<crate::functions::Function>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerProtocolPolicy {
    AllowAll,
    RedirectToHttps,
    HttpsOnly,
}

#[derive(Debug, Clone, Default)]
pub struct BucketConfig {
    /// CORS rules from YAML; they replace the stored rules at start. `None`: whatever
    /// PutBucketCors stored is kept.
    pub cors: Option<Vec<crate::policy::cors::CorsRule>>,
    /// Write S3-format server access logs under `data_dir/logs/buckets/<bucket>/`.
    pub access_log: bool,
    /// Versioning state set at start; `None`: whatever PutBucketVersioning stored is kept.
    pub versioning: Option<crate::policy::bucket::Versioning>,
}

#[derive(Debug, Clone)]
pub struct OriginServer {
    pub listen: SocketAddr,
    pub credentials: Vec<Credential>,
}

#[derive(Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in debug output.
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}
