//! The raw YAML schema: what a user may write, key for key (`deny_unknown_fields`
//! everywhere). Validation and compilation into [`super::model`] happen in `compile.rs`.

use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<String>,
    pub listen: Option<RawListen>,
    pub metrics: Option<RawMetrics>,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub origins: Ordered<RawOrigin>,
    #[serde(default)]
    pub distributions: Vec<RawDistribution>,
    #[serde(default)]
    pub buckets: Ordered<RawBucket>,
    pub origin_server: Option<RawOriginServer>,
    /// Key groups for signed URLs and cookies: name → public keys.
    #[serde(default)]
    pub key_groups: Ordered<Vec<RawPublicKey>>,
    /// Proxies whose X-Forwarded-For is believed (CIDRs), e.g. a load balancer in front.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The edge cache's size limits.
    pub cache: Option<RawCacheStore>,
    /// The admin API (invalidations).
    pub admin: Option<RawAdmin>,
    /// Live reload options.
    pub reload: Option<RawReload>,
    /// What the edge accepts from viewers: request sizes, timeouts, per-client limits.
    pub limits: Option<RawLimits>,
    /// CloudFront Functions by name, for behaviors' `function_associations`.
    #[serde(default)]
    pub functions: Ordered<RawFunction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    /// The JavaScript file (relative to the config file).
    pub file: String,
    /// `cloudfront-js-2.0` (default) or `cloudfront-js-1.0`.
    pub runtime: Option<String>,
    /// A KeyValueStore: a JSON file in CloudFront's import format.
    pub kvs: Option<String>,
    /// CPU time per call before the call is stopped (default 1ms).
    pub compute_budget: Option<String>,
    /// Memory the function may allocate (default 2MiB).
    pub memory: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunctionAssociations {
    pub viewer_request: Option<String>,
    pub viewer_response: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Request line and headers together, in bytes (e.g. `20KiB`).
    pub max_header_size: Option<String>,
    /// The request target (path and query), in bytes.
    pub max_url_length: Option<String>,
    /// Number of request header fields.
    pub max_headers: Option<usize>,
    /// Request body, in bytes (e.g. `5GiB`).
    pub max_body_size: Option<String>,
    /// Time a request header may take once its first byte has arrived.
    pub header_timeout: Option<String>,
    /// Time a connection may wait for its next request.
    pub idle_timeout: Option<String>,
    /// Time the edge waits for the next piece of a request body.
    pub body_timeout: Option<String>,
    /// Limits per client IP address.
    pub per_client: Option<RawPerClient>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerClient {
    /// Open connections at once (0: no limit).
    pub max_connections: Option<u32>,
    /// Sustained requests per second (0: no limit).
    pub requests_per_second: Option<u32>,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: Option<u32>,
    /// Clients (IP addresses or CIDR ranges) the per-client limits never apply to.
    pub exempt: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    /// Reload when the config file changes, as on SIGHUP (off by default).
    #[serde(default)]
    pub watch: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheStore {
    /// Bytes on disk under `data_dir/cache` (e.g. `10GiB`).
    pub disk_size: Option<String>,
    /// Bytes of small hot objects kept in memory (e.g. `256MiB`).
    pub memory_size: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: String,
    /// File holding the bearer token; generated when missing and inside `data_dir`.
    pub token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCachePolicy {
    /// `cloudfront` (default): CloudFront's rules; `rfc9111`: RFC 9111's where they differ
    /// (`no-cache` stored and revalidated before each use, heuristic freshness from
    /// Last-Modified instead of `default_ttl`, no error caching without the origin's word).
    pub freshness: Option<String>,
    pub min_ttl: Option<String>,
    pub default_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub query_strings: Option<RawKeyList>,
    pub cookies: Option<RawKeyList>,
    pub headers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawErrorResponse {
    pub error_code: u16,
    /// Served instead of the origin's error body, fetched through the behavior matching it.
    pub response_page_path: Option<String>,
    /// Status sent with that page (default: the original error code).
    pub response_code: Option<u16>,
    pub error_caching_min_ttl: Option<String>,
}

/// `none`, `all`, a list of names (whitelist), or `{ all_except: [names] }`.
#[derive(Debug)]
pub enum RawKeyList {
    Word(String),
    List(Vec<String>),
    AllExcept(Vec<String>),
}

impl<'de> Deserialize<'de> for RawKeyList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawKeyList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("none, all, a list of names, or { all_except: [names] }")
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawKeyList::Word(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawKeyList::Word(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawKeyList::Word(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(RawKeyList::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k != "all_except" {
                        return Err(serde::de::Error::unknown_field(&k, &["all_except"]));
                    }
                    out = Some(map.next_value::<Vec<String>>()?);
                }
                out.map(RawKeyList::AllExcept)
                    .ok_or_else(|| serde::de::Error::missing_field("all_except"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublicKey {
    pub id: String,
    /// PEM file: RSA 2048+ or ECDSA P-256.
    pub public_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub http: Option<String>,
    pub https: Option<String>,
    /// The listeners (`http`, `https`) where every connection starts with a PROXY protocol
    /// header (v1 or v2) from a proxy in `trusted_proxies` (a router, HAProxy, a tunnel).
    #[serde(default)]
    pub proxy_protocol: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    /// Certificates obtained and renewed automatically over ACME.
    pub acme: Option<RawAcme>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    /// The CA's directory URL (Let's Encrypt, or a test CA such as Pebble).
    pub directory: String,
    /// Names on the certificate; the edge must be reachable under them on port 80 (http-01)
    /// or 443 (tls-alpn-01).
    pub domains: Vec<String>,
    pub email: Option<String>,
    /// PEM file of a CA to trust for the directory's HTTPS (test CAs only).
    pub ca_file: Option<String>,
    /// `http-01` (default) | `tls-alpn-01`.
    pub challenge: Option<String>,
    /// Renew this long before expiry (default 30d).
    pub renew_before: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub domains: Vec<String>,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    /// A bucket of the built-in store.
    pub bucket: Option<String>,
    /// A bucket of an S3-compatible service elsewhere (MinIO, Ceph RGW, Garage, AWS S3).
    pub s3: Option<RawS3Origin>,
    /// `round-robin` (default) | `least-connections` | `consistent-hash`, for several `http`
    /// upstreams.
    pub balance: Option<String>,
    /// Active health checks of `http` upstreams.
    pub health_check: Option<RawHealthCheck>,
    /// Establishing a connection (TCP, and TLS for `https://` upstreams): 1s..10s, default
    /// 10s.
    pub connect_timeout: Option<String>,
    /// The longest wait for the origin: from the request sent to the answer's first byte,
    /// and between two reads of its body (or writes of the request's). No limit on the
    /// whole exchange. 1s..60s (`http` origins: up to 24h), default 30s.
    pub response_timeout: Option<String>,
    /// 1..3, default 3.
    pub connection_attempts: Option<u8>,
    /// An origin group: `{ primary: NAME, secondary: NAME, failover_on: [500, 502, 503, 504] }`.
    pub group: Option<RawOriginGroup>,
    /// How requests to a bucket or s3 origin are signed: `always` (default), `never`,
    /// `no-override` (a viewer's own Authorization goes through unchanged), as CloudFront's
    /// origin access control.
    pub signing: Option<String>,
    /// One upstream: `127.0.0.1:3000`, `http://host:port` or `https://host:port`.
    pub http: Option<OneOrMany>,
    /// TLS server name for `https://` upstreams (default: the upstream's host).
    pub sni: Option<String>,
    pub origin_path: Option<String>,
    #[serde(default)]
    pub custom_headers: Ordered<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// `GET` this path (2xx/3xx is healthy); absent: a TCP connect.
    pub path: Option<String>,
    /// Default 5s.
    pub interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOriginGroup {
    pub primary: String,
    pub secondary: String,
    /// Statuses of the primary that send the request to the secondary (default 500, 502,
    /// 503, 504).
    pub failover_on: Option<Vec<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3Origin {
    /// `https://s3.us-east-1.amazonaws.com`, `http://minio.lan:9000`, ...
    pub endpoint: String,
    pub bucket: String,
    /// Default `us-east-1`.
    pub region: Option<String>,
    /// `path` (default: `endpoint/bucket/key`) | `virtual` (`bucket.endpoint/key`).
    pub style: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key_file: Option<String>,
    pub secret_access_key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDistribution {
    pub name: Option<String>,
    pub domains: Vec<String>,
    pub default_root_object: Option<String>,
    pub behaviors: Vec<RawBehavior>,
    /// Error caching minimum TTL per status code (CloudFront's custom error responses).
    #[serde(default)]
    pub custom_error_responses: Vec<RawErrorResponse>,
    /// Access log format: `cloudfront` (standard log format) or `json`; absent = off.
    pub access_log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBehavior {
    pub path_pattern: String,
    pub origin: String,
    #[serde(default)]
    pub viewer_protocol_policy: RawViewerProtocolPolicy,
    pub allowed_methods: Option<Vec<String>>,
    /// Signed URLs or cookies from these key groups are required.
    pub trusted_key_groups: Option<Vec<String>>,
    /// TTLs and the cache key.
    pub cache: Option<RawCachePolicy>,
    /// CORS, security and custom headers on responses.
    pub response_headers: Option<RawHeadersPolicy>,
    /// What reaches the origin without entering the cache key.
    pub origin_request: Option<RawOriginRequest>,
    /// Compress responses at the edge (gzip, br, zstd) when the viewer accepts it; default true.
    pub compress: Option<bool>,
    /// CloudFront Functions run on this behavior's viewer requests and responses.
    pub function_associations: Option<RawFunctionAssociations>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOriginRequest {
    /// `cors-s3origin` | `all-viewer`: CloudFront's managed policies; the fields below
    /// override what they set.
    pub preset: Option<String>,
    pub query_strings: Option<RawKeyList>,
    pub cookies: Option<RawKeyList>,
    /// Viewer headers forwarded without entering the key (default: Origin and the two
    /// preflight headers, as CORS-S3Origin).
    pub headers: Option<RawKeyList>,
    /// Sent as `Origin` when the viewer sent none, so the origin always answers with CORS
    /// headers.
    pub origin: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeadersPolicy {
    pub cors: Option<RawCorsPolicy>,
    pub security: Option<RawSecurityHeaders>,
    #[serde(default)]
    pub add: Ordered<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCorsPolicy {
    pub allow_origins: Vec<String>,
    pub allow_methods: Option<Vec<String>>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age: Option<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    pub origin_override: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurityHeaders {
    pub hsts: Option<RawHsts>,
    #[serde(default)]
    pub content_type_options: bool,
    pub frame_options: Option<String>,
    pub referrer_policy: Option<String>,
    pub csp: Option<String>,
    /// Replace the origin's values (default true).
    #[serde(rename = "override")]
    pub override_origin: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHsts {
    pub max_age: String,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub enum RawViewerProtocolPolicy {
    #[default]
    #[serde(rename = "allow-all")]
    AllowAll,
    #[serde(rename = "redirect-to-https")]
    RedirectToHttps,
    #[serde(rename = "https-only")]
    HttpsOnly,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBucket {
    /// CORS rules, as PutBucketCors takes them; applied at start.
    pub cors: Option<Vec<RawCorsRule>>,
    /// Server access logs in S3's format under `data_dir/logs/buckets/<bucket>/`.
    #[serde(default)]
    pub access_log: bool,
    /// `enabled` | `suspended`, applied at start; absent: what PutBucketVersioning set.
    pub versioning: Option<RawVersioning>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawVersioning {
    Enabled,
    Suspended,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOriginServer {
    pub listen: Option<String>,
    pub credentials: Vec<RawCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    pub access_key_id: String,
    pub secret_access_key_file: Option<String>,
    pub secret_access_key_env: Option<String>,
}

/// A mapping whose keys the user chooses, kept in file order.
#[derive(Debug)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, T>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A single string or a list of strings.
#[derive(Debug)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address or a list of addresses")
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}
