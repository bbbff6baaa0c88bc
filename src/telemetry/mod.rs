//! Prometheus metrics (names prefixed `homefront_`) and the `/metrics` endpoint; edge
//! access logs in [`access_log`]; the writer thread both access logs use in [`log_writer`].
//!
//! All metrics live in the process-wide default registry, so modules register their own
//! (the TLS module counts handshakes) and one endpoint serves them all.

pub mod access_log;
pub mod log_writer;

use std::convert::Infallible;
use std::sync::LazyLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, Encoder, HistogramVec, IntCounterVec,
    IntGaugeVec, TextEncoder,
};

/// `homefront_requests_total{distribution, behavior, status_class, cache}`.
/// The edge's name: in `X-Cache: <result> from homefront` and the access log.
pub const EDGE_NAME: &str = "homefront";

pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_requests_total",
        "Viewer requests answered by the edge, by distribution, behavior (path pattern), status class and cache result.",
        &["distribution", "behavior", "status_class", "cache"]
    )
    .expect("metric registered once")
});

/// `homefront_response_bytes_total{distribution}`: body bytes sent to viewers.
pub static RESPONSE_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_response_bytes_total",
        "Response body bytes sent to viewers, by distribution.",
        &["distribution"]
    )
    .expect("metric registered once")
});

/// `homefront_origin_duration_seconds{origin}`: time from choosing the origin to the end of
/// the exchange with it.
pub static ORIGIN_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "homefront_origin_duration_seconds",
        "Time spent on requests to origins, from connecting to the end of the response, by origin.",
        &["origin"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric registered once")
});

/// `homefront_origin_failures_total{origin, upstream, reason}`: origin exchanges that failed
/// (`connect`, `timeout`, `status` for a group's failover statuses, `error` otherwise).
pub static ORIGIN_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_origin_failures_total",
        "Failed exchanges with origins, by origin, upstream and reason (connect, timeout, status, error).",
        &["origin", "upstream", "reason"]
    )
    .expect("metric registered once")
});

/// `homefront_origin_upstream_healthy{origin, upstream}`: 1 while an upstream passes its
/// health checks, 0 while it is marked down.
pub static ORIGIN_HEALTHY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "homefront_origin_upstream_healthy",
        "Whether an upstream of an http origin is healthy (1) or marked down (0).",
        &["origin", "upstream"]
    )
    .expect("metric registered once")
});

/// `homefront_origin_requests_total{origin, upstream}`: requests sent to origins.
pub static ORIGIN_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_origin_requests_total",
        "Requests sent to origins (each attempt), by origin and upstream.",
        &["origin", "upstream"]
    )
    .expect("metric registered once")
});

/// `homefront_cache_bytes_total{distribution, behavior, source}`: body bytes sent to viewers
/// from the cache (`cache`) or fetched from the origin (`origin`).
pub static CACHE_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_cache_bytes_total",
        "Response body bytes sent to viewers, by distribution, behavior and where they came from (cache or origin).",
        &["distribution", "behavior", "source"]
    )
    .expect("metric registered once")
});

/// `homefront_cache_stale_served_total{distribution, behavior, reason}`.
pub static CACHE_STALE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_cache_stale_served_total",
        "Stale cache entries served, by distribution, behavior and reason (revalidating or origin_error).",
        &["distribution", "behavior", "reason"]
    )
    .expect("metric registered once")
});

/// `homefront_cache_size_bytes{tier}`.
pub static CACHE_SIZE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "homefront_cache_size_bytes",
        "Bytes held by the edge cache, by tier (disk or memory).",
        &["tier"]
    )
    .expect("metric registered once")
});

/// `homefront_cache_entries{tier}`.
pub static CACHE_ENTRIES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "homefront_cache_entries",
        "Entries held by the edge cache, by tier (disk or memory).",
        &["tier"]
    )
    .expect("metric registered once")
});

/// `homefront_cache_evictions_total{tier}`.
pub static CACHE_EVICTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_cache_evictions_total",
        "Entries evicted from the edge cache to stay within its size limits, by tier.",
        &["tier"]
    )
    .expect("metric registered once")
});

/// `homefront_access_log_dropped_total`: access log lines dropped because the writer fell
/// behind (requests never wait for the log).
pub static ACCESS_LOG_DROPPED: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "homefront_access_log_dropped_total",
        "Access log lines dropped because the log writer fell behind."
    )
    .expect("metric registered once")
});

/// `homefront_edge_limited_total{reason}`: requests and connections refused or cut off by
/// the edge's `limits`.
pub static LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_edge_limited_total",
        "Viewer requests and connections refused or closed by the edge's limits, by reason.",
        &["reason"]
    )
    .expect("metric registered once")
});

/// Counts one request or connection stopped by a limit.
pub fn limited(reason: &str) {
    LIMITED.with_label_values(&[reason]).inc();
}

/// `homefront_cache_discarded_total{reason}`: cache entries found unreadable or corrupt and
/// discarded (served from the origin instead), and entries that could not be written.
pub static CACHE_DISCARDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_cache_discarded_total",
        "Edge cache entries discarded: found corrupt or unreadable, or failed to write (e.g. disk full).",
        &["reason"]
    )
    .expect("metric registered once")
});

/// `homefront_edge_hit_path_total`: cache hits answered by the edge's hit path
/// (`edge::hit`) instead of the full proxy; also counted in `homefront_requests_total`.
pub static HIT_PATH: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "homefront_edge_hit_path_total",
        "Cache hits answered by the edge's hit path instead of the full proxy (also counted in homefront_requests_total)."
    )
    .expect("metric registered once")
});

/// `homefront_edge_pass_path_total`: requests the cache does not keep, proxied to an HTTP
/// origin by the edge's pass path (`edge::pass`) instead of the full proxy; also counted in
/// `homefront_requests_total`.
pub static PASS_PATH: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "homefront_edge_pass_path_total",
        "Requests the cache does not keep, proxied to an HTTP origin by the edge's pass path instead of the full proxy (also counted in homefront_requests_total)."
    )
    .expect("metric registered once")
});

/// `homefront_build_info{version}` = 1.
pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "homefront_build_info",
        "Build information; the value is always 1.",
        &["version"]
    )
    .expect("metric registered once")
});

/// Registers the metrics that must be visible before the first request.
pub fn init() {
    BUILD_INFO.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    LazyLock::force(&REQUESTS);
    LazyLock::force(&RESPONSE_BYTES);
    LazyLock::force(&ORIGIN_DURATION);
    LazyLock::force(&ORIGIN_FAILURES);
    LazyLock::force(&ORIGIN_HEALTHY);
    LazyLock::force(&ORIGIN_REQUESTS);
    LazyLock::force(&CACHE_BYTES);
    LazyLock::force(&CACHE_STALE);
    LazyLock::force(&ACCESS_LOG_DROPPED);
    LazyLock::force(&HIT_PATH);
    LazyLock::force(&PASS_PATH);
    for reason in ["connections", "requests", "header_timeout"] {
        LIMITED.with_label_values(&[reason]).inc_by(0);
    }
    for reason in ["corrupt", "write_failed"] {
        CACHE_DISCARDED.with_label_values(&[reason]).inc_by(0);
    }
    for tier in ["disk", "memory"] {
        CACHE_EVICTIONS.with_label_values(&[tier]).inc_by(0);
        CACHE_SIZE.with_label_values(&[tier]);
        CACHE_ENTRIES.with_label_values(&[tier]);
    }
}

/// `2xx`, `3xx`, ... for a status code (`0` when no response was written).
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "none",
    }
}

/// The Prometheus text exposition of every registered metric.
pub fn render() -> Vec<u8> {
    let mut buf = Vec::with_capacity(8192);
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut buf);
    buf
}

/// Serves `GET /metrics` (and 404 for anything else) on `listener` until dropped.
pub async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                let resp = if req.uri().path() == "/metrics" {
                    Response::builder()
                        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                        .body(Full::new(Bytes::from(render())))
                } else {
                    Response::builder()
                        .status(404)
                        .header("content-type", "text/plain")
                        .body(Full::new(Bytes::from_static(b"metrics are at /metrics\n")))
                };
                Ok::<_, Infallible>(resp.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// `homefront_function_invocations_total{function, event}`: CloudFront Functions calls.
pub static FUNCTION_INVOCATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_function_invocations_total",
        "CloudFront Functions calls, by function and event type (viewer-request, viewer-response).",
        &["function", "event"]
    )
    .expect("metric registered once")
});

/// `homefront_function_errors_total{function, event, kind}`: failed calls, by CloudFront's
/// kind (FunctionExecutionError, FunctionThrottledError, FunctionValidationError).
pub static FUNCTION_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "homefront_function_errors_total",
        "CloudFront Functions calls that failed, by function, event type and kind (FunctionExecutionError, FunctionThrottledError, FunctionValidationError).",
        &["function", "event", "kind"]
    )
    .expect("metric registered once")
});

/// `homefront_function_compute_seconds{function}`: CPU time per call.
pub static FUNCTION_COMPUTE: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "homefront_function_compute_seconds",
        "CPU time of each CloudFront Functions call, by function.",
        &["function"],
        vec![0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005]
    )
    .expect("metric registered once")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_contains_our_names() {
        init();
        REQUESTS.with_label_values(&["d", "*", "2xx", "Miss"]).inc();
        let text = String::from_utf8(render()).unwrap();
        assert!(text.contains("homefront_build_info{version=\""));
        assert!(text.contains(
            "homefront_requests_total{behavior=\"*\",cache=\"Miss\",distribution=\"d\",status_class=\"2xx\"}"
        ));
    }

    #[test]
    fn classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(301), "3xx");
        assert_eq!(status_class(0), "none");
    }
}
