//! PLACEHOLDER until the policy engine lands: one guest route to the built-in demo upstream.
use std::borrow::Cow;
use std::sync::Arc;

use super::RequestInfo;
use crate::identity::Identity;

/// Allow, ask the user to log in, or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Login,
    Deny,
}

/// Where a route sends allowed requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// `builtin:whoami`: an in-process demo app that echoes what it received.
    Whoami,
    /// `http://host:port` or `https://host:port`: scheme and authority only.
    Http(http::Uri),
}

/// A compiled route: what the server needs to forward an allowed request.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub upstream: Upstream,
    /// Whether WebSocket upgrades may be bridged on this route.
    pub websocket: bool,
    /// Allowed `Origin` values for WebSocket upgrades; empty means same host only.
    pub allowed_origins: Vec<String>,
}

/// The outcome of one decision and why: feeds the log line, metrics, the error page and `explain`.
#[derive(Clone, Debug)]
pub struct Decision {
    pub outcome: Outcome,
    pub route: Option<Arc<Route>>,
    pub rule: Option<Arc<str>>,
    pub reason: Cow<'static, str>,
    pub grants: Arc<[String]>,
}

/// An immutable, compiled set of policies.
#[derive(Debug)]
pub struct PolicySet {
    route: Arc<Route>,
}

impl PolicySet {
    pub fn demo() -> Self {
        PolicySet {
            route: Arc::new(Route {
                name: "demo".into(),
                upstream: Upstream::Whoami,
                websocket: true,
                allowed_origins: Vec::new(),
            }),
        }
    }

    pub fn decide(&self, _user: Option<&Identity>, _request: &RequestInfo) -> Decision {
        Decision {
            outcome: Outcome::Allow,
            route: Some(self.route.clone()),
            rule: Some("guest".into()),
            reason: "placeholder".into(),
            grants: Arc::from(Vec::new()),
        }
    }
}
