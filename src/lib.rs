//! homefront: CloudFront + S3 for a home server or a small team, in one binary.
//!
//! The request's way through the system, the layering of these modules and the codebase's
//! habits are described in `ARCHITECTURE.md`; each stage is a module with a pure decision
//! core and a thin I/O shell.

pub mod admin;
pub mod cache;
pub mod config;
pub mod edge;
pub mod functions;
pub mod keys;
pub mod origin;
pub mod policy;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod util;
