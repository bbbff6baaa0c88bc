//! The integration tests: one binary, one module per area. Each test starts the real
//! `homefront` binary on loopback ports (see `common`) and speaks to it as a client does.
//! Run one area with `cargo test --test it <area>::`, e.g. `cargo test --test it cache::`.

#[path = "../common/mod.rs"]
mod common;

mod acme;
mod aws_cli;
mod browser;
mod bucket_store;
mod bucket_versions;
mod cache;
mod cache_hits;
mod cli;
mod compat;
mod compress;
mod cors;
mod durability;
mod edge;
mod examples;
mod faults;
mod front_proxy;
mod functions;
mod http2;
mod http_cache;
mod limits;
mod origin_cli;
mod origin_request;
mod origins;
mod pass;
mod presign;
mod quickstart;
mod readme;
mod reload;
mod remote_s3;
mod s3_api;
mod security;
mod signed;
mod smuggling;
mod store_security;
mod third_party;
