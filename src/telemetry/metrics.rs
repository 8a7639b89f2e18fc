//! Metric names, descriptions and the Prometheus recorder.
//!
//! Every metric the gateway emits is named here, so `/metrics` and the docs agree. Label values
//! are bounded: route and provider names from config, fixed outcome words, never paths or users.
//!
//! ```
//! use portcullis::telemetry::{self, REQUESTS_TOTAL};
//!
//! let handle = telemetry::install_metrics();
//! metrics::counter!(REQUESTS_TOTAL, "route" => "panel", "method_class" => "read",
//!     "outcome" => "allow", "status" => "200").increment(1);
//! assert!(handle.render().contains("portcullis_requests_total"));
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter `{route, method_class, outcome, status}`: requests by decision outcome
/// (`allow` | `login` | `deny` | `error`) and response status. `route` is `-` when no route
/// matched, and for requests refused without a decision on record (a path that does not
/// normalize, a failed `Authorization: Basic` header, the login form's 401 or 429): those count
/// as `deny` (4xx) or `error` (5xx). The gateway's own endpoints answering normally are not
/// counted.
pub const REQUESTS_TOTAL: &str = "portcullis_requests_total";
/// Histogram (seconds): time to decide one request (route match, session, policy).
pub const DECISION_DURATION_SECONDS: &str = "portcullis_decision_duration_seconds";
/// Histogram (seconds) `{route}`: upstream response time, headers received.
pub const UPSTREAM_DURATION_SECONDS: &str = "portcullis_upstream_duration_seconds";
/// Counter `{upstream}` (`host:port`): connections opened to the upstreams. Steady traffic
/// reuses pooled ones; a rate that follows the request rate means the pool closes connections
/// it should keep (`upstream.pool_max_idle_per_host`) or the upstream closes them.
pub const UPSTREAM_CONNECTIONS_OPENED_TOTAL: &str = "portcullis_upstream_connections_opened_total";
/// Counter `{result}` (`ok` | `error`): policy reloads.
pub const POLICY_RELOADS_TOTAL: &str = "portcullis_policy_reloads_total";
/// Gauge: generation number of the policy set serving now.
pub const POLICY_GENERATION: &str = "portcullis_policy_generation";
/// Gauge `{route}`: open WebSocket bridges.
pub const WEBSOCKETS_ACTIVE: &str = "portcullis_websockets_active";
/// Counter `{route, reason}` (`client` | `upstream` | `policy` | `shutdown` | `error`): closed
/// WebSockets; `policy` counts the ones a re-check after a policy swap closed.
pub const WEBSOCKETS_CLOSED_TOTAL: &str = "portcullis_websockets_closed_total";
/// Counter `{provider, result}` (`ok` | `invalid` | `rate_limited` | `unavailable` | `error`):
/// login attempts.
pub const LOGINS_TOTAL: &str = "portcullis_logins_total";
/// Counter `{result}`: OIDC token refreshes. `ok`; `ended` (the provider refused, the session
/// ended); `retry` (the provider was unreachable, the session is kept and refreshes later).
pub const TOKEN_REFRESHES_TOTAL: &str = "portcullis_token_refreshes_total";
/// Counter: capability tokens minted.
pub const CAPABILITY_MINTED_TOTAL: &str = "portcullis_capability_minted_total";
/// Counter: capability tokens served from the per-session cache.
pub const CAPABILITY_CACHE_HITS_TOTAL: &str = "portcullis_capability_cache_hits_total";
/// Counter `{kind}` (`user` | `ip`): login attempts refused by the failure rate limit.
pub const RATE_LIMITED_TOTAL: &str = "portcullis_rate_limited_total";
/// Counter `{outcome}` (`allow` | `login` | `deny` | `error`): decision log lines not written.
/// Allows are dropped while the writer is behind; any other outcome only when its request was
/// abandoned while waiting for the writer, or the writer stopped.
pub const DECISION_LOG_DROPPED_TOTAL: &str = "portcullis_decision_log_dropped_total";

/// Buckets of the decision histogram: decisions take microseconds, a slow one milliseconds.
pub const DECISION_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];
/// Buckets of the upstream histogram: typical web latencies up to a minute.
pub const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram data is drained into the exposition.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// `read` (GET, HEAD, OPTIONS), `write` (POST, PUT, PATCH, DELETE) or `other`: the bounded
/// `method_class` label.
pub fn method_class(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => "read",
        http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE => {
            "write"
        }
        _ => "other",
    }
}

/// Registers help text and units for every gateway metric with the installed recorder.
pub fn describe_metrics() {
    describe_counter!(
        REQUESTS_TOTAL,
        "Requests by route, method class, decision outcome and response status."
    );
    describe_histogram!(
        DECISION_DURATION_SECONDS,
        Unit::Seconds,
        "Time to decide one request."
    );
    describe_histogram!(
        UPSTREAM_DURATION_SECONDS,
        Unit::Seconds,
        "Upstream response time by route."
    );
    describe_counter!(
        UPSTREAM_CONNECTIONS_OPENED_TOTAL,
        "Connections opened to the upstreams, by upstream."
    );
    describe_counter!(POLICY_RELOADS_TOTAL, "Policy reloads by result.");
    describe_gauge!(
        POLICY_GENERATION,
        "Generation of the policy set currently serving."
    );
    describe_gauge!(WEBSOCKETS_ACTIVE, "Open WebSocket connections by route.");
    describe_counter!(
        WEBSOCKETS_CLOSED_TOTAL,
        "Closed WebSocket connections by route and reason."
    );
    describe_counter!(LOGINS_TOTAL, "Login attempts by provider and result.");
    describe_counter!(TOKEN_REFRESHES_TOTAL, "OIDC token refreshes by result.");
    describe_counter!(CAPABILITY_MINTED_TOTAL, "Capability tokens minted.");
    describe_counter!(
        CAPABILITY_CACHE_HITS_TOTAL,
        "Capability tokens served from cache."
    );
    describe_counter!(
        RATE_LIMITED_TOTAL,
        "Login attempts refused by the failure rate limit, by key kind."
    );
    describe_counter!(
        DECISION_LOG_DROPPED_TOTAL,
        "Decision log lines not written, by outcome: allows while the writer is behind."
    );
}

fn builder() -> PrometheusBuilder {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in [
        (DECISION_DURATION_SECONDS, DECISION_BUCKETS),
        (UPSTREAM_DURATION_SECONDS, UPSTREAM_BUCKETS),
    ] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.into()), buckets)
            .expect("bucket lists are non-empty constants");
    }
    builder
}

/// Installs the Prometheus recorder as the process-wide `metrics` recorder (once; later calls
/// return the same handle), describes all metrics and starts a background upkeep thread.
/// Serve `handle.render()` at `/metrics` with content type [`PROMETHEUS_CONTENT_TYPE`].
///
/// If another recorder was installed first, the returned handle renders a private recorder
/// (only the descriptions) and an error is logged.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            if let Err(err) = metrics::set_global_recorder(recorder) {
                tracing::error!(error = %err, "a metrics recorder was already installed; /metrics will be empty");
            }
            describe_metrics();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks each line against the text exposition grammar (comments, samples).
    fn assert_valid_exposition(text: &str) {
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let keyword = parts.next().unwrap();
                assert!(matches!(keyword, "HELP" | "TYPE"), "bad comment: {line}");
                assert!(
                    parts
                        .next()
                        .is_some_and(|name| name.starts_with("portcullis_"))
                );
                if keyword == "TYPE" {
                    let kind = parts.next().unwrap();
                    assert!(
                        matches!(kind, "counter" | "gauge" | "histogram" | "summary"),
                        "{line}"
                    );
                }
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect(line);
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "{line}");
                let labels = &series[name_end + 1..series.len() - 1];
                for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once("=\"").expect(line);
                    assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    assert!(!value.trim_end_matches('"').contains('"'), "{line}");
                }
            }
        }
    }

    #[test]
    fn handle_renders_valid_prometheus_text_after_incrementing() {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_metrics();
            metrics::counter!(REQUESTS_TOTAL, "route" => "panel", "method_class" => "read",
                "outcome" => "deny", "status" => "403")
            .increment(2);
            metrics::histogram!(DECISION_DURATION_SECONDS).record(0.000_3);
            metrics::histogram!(UPSTREAM_DURATION_SECONDS, "route" => "panel").record(0.2);
            metrics::gauge!(POLICY_GENERATION).set(7.0);
            metrics::counter!(RATE_LIMITED_TOTAL, "kind" => "ip").increment(1);
        });
        handle.run_upkeep();
        let text = handle.render();
        assert_valid_exposition(&text);
        assert!(text.contains(
            r#"portcullis_requests_total{route="panel",method_class="read",outcome="deny",status="403"} 2"#
        ), "{text}");
        assert!(text.contains("# TYPE portcullis_decision_duration_seconds histogram"));
        assert!(text.contains(r#"portcullis_decision_duration_seconds_bucket{le="0.0005"} 1"#));
        assert!(
            text.contains(
                r#"portcullis_upstream_duration_seconds_bucket{route="panel",le="0.25"} 1"#
            )
        );
        assert!(text.contains("portcullis_policy_generation 7"));
        assert!(text.contains(r#"portcullis_rate_limited_total{kind="ip"} 1"#));
    }

    #[test]
    fn install_metrics_is_idempotent() {
        let first = install_metrics();
        let second = install_metrics();
        metrics::counter!(CAPABILITY_MINTED_TOTAL).increment(1);
        assert!(
            second
                .render()
                .contains("portcullis_capability_minted_total")
        );
        assert_valid_exposition(&first.render());
    }

    #[test]
    fn method_classes_are_bounded() {
        assert_eq!(method_class(&http::Method::GET), "read");
        assert_eq!(method_class(&http::Method::DELETE), "write");
        assert_eq!(
            method_class(&http::Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }
}
