//! The edge: the pingora proxy and the pure decisions it applies per request.

pub mod behavior;
pub mod canonical;
pub mod compress;
pub mod conn;
pub mod distribution;
pub mod errors;
pub mod hit;
pub mod limits;
pub mod pass;
pub mod pool;
pub mod proxy;
pub mod variance;
pub mod viewer;
