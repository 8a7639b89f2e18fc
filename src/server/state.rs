//! What every request shares: configuration and the long-lived pieces built from it at start.

use std::net::IpAddr;
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::headers::IdentityHeaderStripper;
use super::meters::Meters;
use super::websocket::WsRegistry;
use crate::capability::{KeyStore, Minter};
use crate::config::Config;
use crate::identity::basic::BasicAuth;
use crate::identity::headers::IdentityHeaderNames;
use crate::identity::oidc::Providers;
use crate::pages::Pages;
use crate::policy::PolicyStore;
use crate::session::SessionCodec;
use crate::telemetry::DecisionLog;

pub struct Shared {
    pub config: Config,
    pub policies: Arc<PolicyStore>,
    pub websockets: Arc<WsRegistry>,
    /// WebSocket bridges, waited for on shutdown.
    pub tasks: TaskTracker,
    pub strip: IdentityHeaderStripper,
    pub meters: Meters,
    pub sessions: SessionCodec,
    pub providers: Providers,
    pub basic: Option<Arc<BasicAuth>>,
    pub identity_headers: IdentityHeaderNames,
    pub keys: Arc<KeyStore>,
    pub minter: Minter,
    pub pages: Pages,
    pub decision_log: DecisionLog,
    /// Renders `/metrics` on the main listener when no separate `metrics_listen` is configured.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Shared {
    /// Cookies get `Secure` when users reach the gateway over https.
    pub fn secure_cookies(&self) -> bool {
        self.config.public_url.scheme() == "https"
    }

    /// Whether a request cookie is the gateway's own (session, its chunks, login state, CSRF):
    /// those never reach an upstream.
    pub fn is_gateway_cookie(&self, name: &[u8]) -> bool {
        let session = self.sessions.cookie_name().as_bytes();
        name == session
            || name
                .strip_prefix(session)
                .is_some_and(|rest| rest.starts_with(b"_"))
            || name == crate::identity::basic::CSRF_COOKIE.as_bytes()
            || name == crate::identity::basic::CSRF_COOKIE_SECURE.as_bytes()
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config
            .headers
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }
}
