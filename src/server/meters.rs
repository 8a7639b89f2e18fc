//! Metric handles for the request path, looked up once per label set instead of building keys
//! and label strings on every request. Label values stay bounded: route names, method classes,
//! outcomes and status codes.

use foldhash::HashMap;
use std::sync::Arc;

use metrics::{Counter, Histogram};
use parking_lot::RwLock;

use crate::telemetry;

#[derive(Clone, PartialEq, Eq, Hash)]
struct RequestLabels {
    route: Option<Arc<str>>,
    method_class: &'static str,
    outcome: &'static str,
    status: u16,
}

pub struct Meters {
    decision: Histogram,
    requests: RwLock<HashMap<RequestLabels, Counter>>,
    upstream: RwLock<HashMap<Arc<str>, Histogram>>,
}

impl Default for Meters {
    fn default() -> Self {
        Meters {
            decision: metrics::histogram!(telemetry::DECISION_DURATION_SECONDS),
            requests: RwLock::default(),
            upstream: RwLock::default(),
        }
    }
}

impl Meters {
    pub fn decision(&self) -> &Histogram {
        &self.decision
    }

    pub fn request(
        &self,
        route: Option<&Arc<str>>,
        method_class: &'static str,
        outcome: &'static str,
        status: u16,
    ) {
        let labels = RequestLabels {
            route: route.cloned(),
            method_class,
            outcome,
            status,
        };
        if let Some(counter) = self.requests.read().get(&labels) {
            counter.increment(1);
            return;
        }
        let counter = metrics::counter!(
            telemetry::REQUESTS_TOTAL,
            "route" => labels.route.as_deref().unwrap_or("-").to_string(),
            "method_class" => method_class,
            "outcome" => outcome,
            "status" => status.to_string(),
        );
        counter.increment(1);
        self.requests.write().insert(labels, counter);
    }

    /// Records one upstream wait for `route`, through a handle looked up once per route.
    pub fn record_upstream(&self, route: &Arc<str>, seconds: f64) {
        if let Some(histogram) = self.upstream.read().get(route) {
            histogram.record(seconds);
            return;
        }
        let histogram =
            metrics::histogram!(telemetry::UPSTREAM_DURATION_SECONDS, "route" => route.to_string());
        histogram.record(seconds);
        self.upstream.write().insert(route.clone(), histogram);
    }
}
