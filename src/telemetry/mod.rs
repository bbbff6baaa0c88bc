//! Prometheus metrics and the /metrics endpoint.
