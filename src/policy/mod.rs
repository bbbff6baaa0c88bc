//! Policy: the pure rules the configuration compiles into and the edge and the bucket store
//! apply (path patterns, cache and headers policies, signed URLs and trusted keys, SigV4,
//! CIDR ranges, percent-encoding, bucket CORS rules and names). Below `config`: nothing here
//! reads the configuration, a request's connection or the disk.

pub mod bucket;
pub mod cache_policy;
pub mod cors;
pub mod forwarded;
pub mod headers_policy;
pub mod hop_by_hop;
pub mod ip;
pub mod path_pattern;
pub mod percent;
pub mod signed;
pub mod sigv4;
