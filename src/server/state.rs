//! What every request shares: configuration and the long-lived pieces built from it at start.

use std::net::IpAddr;
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::headers::IdentityHeaderStripper;
use super::proxy::UpstreamClient;
use super::websocket::WsRegistry;
use crate::config::Config;
use crate::pages::Pages;
use crate::policy::PolicyStore;
use crate::telemetry::DecisionLog;

pub struct Shared {
    pub config: Config,
    pub policies: Arc<PolicyStore>,
    pub upstream: UpstreamClient,
    pub websockets: Arc<WsRegistry>,
    /// WebSocket bridges, waited for on shutdown.
    pub tasks: TaskTracker,
    pub strip: IdentityHeaderStripper,
    pub pages: Pages,
    pub decision_log: DecisionLog,
    /// Renders `/metrics` on the main listener when no separate `metrics_listen` is configured.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Shared {
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config
            .headers
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }
}
