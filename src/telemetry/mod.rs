//! Telemetry: Prometheus metrics through the `metrics` facade, `tracing` logs with a request id,
//! and the decision log.
//!
//! The server calls [`init_tracing`] and [`install_metrics`] once at startup, wraps each request
//! in [`request_span`] with the id from [`request_id()`], counts with the metric name constants
//! below, and writes each decision to a [`DecisionLog`].

mod decision_log;
mod logging;
mod metrics;
mod request_id;

pub use self::decision_log::{
    DecisionLog, DecisionLogConfig, DecisionLogError, DecisionOutcome, DecisionRecord,
};
pub use self::logging::{LogFormat, TracingError, init_tracing, request_span};
pub use self::metrics::{
    CAPABILITY_CACHE_HITS_TOTAL, CAPABILITY_MINTED_TOTAL, DECISION_BUCKETS,
    DECISION_DURATION_SECONDS, LOGINS_TOTAL, POLICY_GENERATION, POLICY_RELOADS_TOTAL,
    PROMETHEUS_CONTENT_TYPE, RATE_LIMITED_TOTAL, REQUESTS_TOTAL, TOKEN_REFRESHES_TOTAL,
    UPSTREAM_BUCKETS, UPSTREAM_CONNECTIONS_OPENED_TOTAL, UPSTREAM_DURATION_SECONDS,
    WEBSOCKETS_ACTIVE, WEBSOCKETS_CLOSED_TOTAL, describe_metrics, install_metrics, method_class,
};
pub use self::request_id::{
    MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER, RequestId, new_request_id, request_id,
};
pub use metrics_exporter_prometheus::PrometheusHandle;

#[cfg(test)]
pub(crate) mod test_support {
    use std::io;
    use std::sync::Arc;

    use parking_lot::Mutex;

    /// A `MakeWriter` capturing log output in memory, for tests that inspect log lines.
    #[derive(Clone, Default)]
    pub(crate) struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl LogBuffer {
        pub(crate) fn contents(&self) -> String {
            String::from_utf8_lossy(&self.0.lock()).into_owned()
        }
    }

    impl io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
        type Writer = LogBuffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }
}
