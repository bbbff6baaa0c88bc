//! The edge: the pingora proxy and the pure decisions it applies per request.

pub mod account;
pub mod admit;
pub mod answer;
pub mod behavior;
pub mod canonical;
pub mod compress;
pub mod conn;
pub mod ctx;
pub mod distribution;
pub mod error_pages;
pub mod errors;
pub mod fill;
pub mod functions;
pub mod hit;
pub mod limits;
pub mod pass;
pub mod pool;
pub mod proxy;
pub mod proxy_protocol;
pub mod route;
pub mod shape;
pub mod state;
pub mod stream;
pub mod upstream;
pub mod variance;
pub mod viewer;
