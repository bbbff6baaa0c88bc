//! The edge: the pingora proxy and the pure decisions it applies per request.

pub mod behavior;
pub mod cache_policy;
pub mod canonical;
pub mod compress;
pub mod conn;
pub mod distribution;
pub mod errors;
pub mod headers_policy;
pub mod hit;
pub mod ip;
pub mod limits;
pub mod pass;
pub mod pool;
pub mod proxy;
pub mod signed;
pub mod sigv4;
pub mod viewer;
