//! The edge: the pingora proxy and the pure decisions it applies per request.

pub mod behavior;
