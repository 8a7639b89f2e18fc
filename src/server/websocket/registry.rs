//! Every live bridge, with what it was decided on, so it can be decided again after a reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::identity::Identity;
use crate::policy::{Outcome, PolicySet, RequestInfo};
use crate::telemetry;

/// An order to end a bridge with a close code (1008 policy, 1001 going away) and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseOrder {
    pub code: u16,
    pub reason: String,
    /// The `reason` label of `portcullis_websockets_closed_total`.
    pub label: &'static str,
}

impl CloseOrder {
    /// The session the bridge was opened with ended (logout or expiry): 1008.
    pub fn session_ended(reason: &str) -> CloseOrder {
        CloseOrder {
            code: 1008,
            reason: reason.to_string(),
            label: "session",
        }
    }
}

struct LiveSocket {
    route: Arc<str>,
    identity: Option<Identity>,
    /// The id of the session cookie the upgrade came with; `None` for guests and
    /// `Authorization: Basic`.
    session: Option<[u8; 16]>,
    request: RequestInfo,
    closer: watch::Sender<Option<CloseOrder>>,
}

/// The live WebSocket bridges of this gateway.
#[derive(Default)]
pub struct WsRegistry {
    next_id: AtomicU64,
    /// Boxed: the table keeps spare slots, and a slot should cost a pointer, not a socket.
    live: Mutex<HashMap<u64, Box<LiveSocket>>>,
}

impl std::fmt::Debug for WsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsRegistry")
            .field("live", &self.len())
            .finish()
    }
}

/// A bridge's place in the registry; dropping it deregisters the bridge.
pub struct Registration {
    id: u64,
    route: Arc<str>,
    registry: Arc<WsRegistry>,
    pub close_orders: watch::Receiver<Option<CloseOrder>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.live.lock().remove(&self.id);
        metrics::gauge!(telemetry::WEBSOCKETS_ACTIVE, "route" => self.route.to_string())
            .decrement(1.0);
    }
}

impl WsRegistry {
    pub fn register(
        self: &Arc<Self>,
        route: Arc<str>,
        identity: Option<Identity>,
        session: Option<[u8; 16]>,
        mut request: RequestInfo,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (closer, close_orders) = watch::channel(None);
        request.headers = detached(&request.headers);
        let socket = Box::new(LiveSocket {
            route: route.clone(),
            identity,
            session,
            request,
            closer,
        });
        self.live.lock().insert(id, socket);
        metrics::gauge!(telemetry::WEBSOCKETS_ACTIVE, "route" => route.to_string()).increment(1.0);
        Registration {
            id,
            route,
            registry: self.clone(),
            close_orders,
        }
    }

    pub fn len(&self) -> usize {
        self.live.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides every live bridge again against `set`; those no longer allowed get a 1008 close.
    /// Returns how many were ordered closed.
    pub fn recheck(&self, set: &PolicySet) -> usize {
        let live = self.live.lock();
        live.values()
            .filter(|socket| close_if_revoked(socket, set))
            .count()
    }

    /// Decides one new bridge again against `set`, the set serving now. An upgrade is decided
    /// before its upstream connects and is registered after: a swap in between ran its re-check
    /// without this bridge, so the bridge must be checked here. Returns whether it was ordered
    /// closed.
    pub fn recheck_one(&self, registration: &Registration, set: &PolicySet) -> bool {
        let live = self.live.lock();
        live.get(&registration.id)
            .is_some_and(|socket| close_if_revoked(socket, set))
    }

    /// Orders every bridge closed (shutdown: 1001).
    pub fn close_all(&self, code: u16, reason: &str) {
        for socket in self.live.lock().values() {
            let _ = socket.closer.send(Some(CloseOrder {
                code,
                reason: reason.to_string(),
                label: "shutdown",
            }));
        }
    }

    /// Orders the bridges opened with session `id` closed (the user logged out, the provider
    /// ended the session): 1008 with `reason`. Returns how many.
    pub fn close_session(&self, id: &[u8; 16], reason: &str) -> usize {
        let live = self.live.lock();
        live.values()
            .filter(|socket| socket.session.as_ref() == Some(id))
            .filter(|socket| {
                let order = CloseOrder::session_ended(reason);
                socket.closer.send(Some(order)).is_ok()
            })
            .count()
    }
}

/// Orders `socket` closed with 1008 unless `set` still allows it on the same route.
fn close_if_revoked(socket: &LiveSocket, set: &PolicySet) -> bool {
    let decision = set.decide(socket.identity.as_ref(), &socket.request);
    let still_allowed = decision.outcome == Outcome::Allow
        && decision
            .route
            .as_ref()
            .is_some_and(|route| route.name == socket.route && route.websocket);
    if still_allowed {
        return false;
    }
    let order = CloseOrder {
        code: 1008,
        reason: truncate_reason(&format!("access revoked: {}", decision.reason)),
        label: "policy",
    };
    let sent = socket.closer.send(Some(order)).is_ok();
    if sent {
        tracing::info!(route = %socket.route, reason = %decision.reason, "closing WebSocket after policy change");
    }
    sent
}

/// A copy of `headers` whose values share one small buffer. hyper's header values are slices
/// of the connection's whole read buffer (16 KiB): kept for the life of a bridge, they would
/// keep that buffer alive with it.
fn detached(headers: &HeaderMap) -> HeaderMap {
    let total = headers.values().map(|value| value.len()).sum();
    let mut buffer = Vec::with_capacity(total);
    for value in headers.values() {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = Bytes::from(buffer);
    let mut copy = HeaderMap::with_capacity(headers.len());
    let mut start = 0;
    for (name, value) in headers {
        let end = start + value.len();
        let mut shared = HeaderValue::from_maybe_shared(buffer.slice(start..end))
            .expect("bytes of a valid header value are valid");
        shared.set_sensitive(value.is_sensitive());
        copy.append(name.clone(), shared);
        start = end;
    }
    copy
}

/// A close frame's reason must fit in 123 bytes.
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_headers_keep_every_value_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("apps.example.com"));
        headers.append("x-team", HeaderValue::from_static("a"));
        headers.append("x-team", HeaderValue::from_static("b"));
        headers.insert("cookie", HeaderValue::from_static("s=1"));
        let copy = detached(&headers);
        assert_eq!(copy, headers);
        let teams: Vec<_> = copy.get_all("x-team").iter().collect();
        assert_eq!(teams, ["a", "b"]);
    }

    fn policy(emails: &str) -> PolicySet {
        let text = format!(
            "routes:\n  - name: app\n    match: {{ path: /app/** }}\n    upstream: builtin:whoami\n    websocket: true\n    rules:\n      - name: listed\n        allow: {{ emails: [{emails}] }}\n"
        );
        PolicySet::compile(&[crate::policy::PolicySource {
            path: "app.yaml".into(),
            text,
        }])
        .unwrap()
    }

    fn upgrade() -> RequestInfo {
        RequestInfo {
            method: http::Method::GET,
            scheme: crate::policy::Scheme::Http,
            host: "127.0.0.1".into(),
            path: "/app/ws".into(),
            query: None,
            headers: HeaderMap::new(),
            websocket: true,
            ip: "127.0.0.1".parse().unwrap(),
        }
    }

    #[test]
    fn a_bridge_registered_after_a_swap_is_decided_on_the_new_set() {
        let registry = Arc::new(WsRegistry::default());
        let alice = Identity {
            subject: "alice".into(),
            email: Some("alice@example.com".into()),
            email_verified: true,
            provider: "basic".into(),
            ..Identity::default()
        };
        let registration = registry.register("app".into(), Some(alice), None, upgrade());
        let mut orders = registration.close_orders.clone();

        assert!(!registry.recheck_one(&registration, &policy("alice@example.com")));
        assert_eq!(*orders.borrow_and_update(), None);

        assert!(registry.recheck_one(&registration, &policy("bob@example.com")));
        let order = orders.borrow_and_update().clone().expect("a close order");
        assert_eq!(order.code, 1008);
        assert!(
            order.reason.starts_with("access revoked"),
            "{}",
            order.reason
        );
    }

    #[test]
    fn a_logout_closes_the_bridges_of_its_session_only() {
        let registry = Arc::new(WsRegistry::default());
        let (mine, other) = ([1; 16], [2; 16]);
        let first = registry.register("app".into(), None, Some(mine), upgrade());
        let second = registry.register("app".into(), None, Some(mine), upgrade());
        let others = registry.register("app".into(), None, Some(other), upgrade());
        let guest = registry.register("app".into(), None, None, upgrade());

        assert_eq!(registry.close_session(&mine, "logged out"), 2);
        for registration in [&first, &second] {
            let order = registration.close_orders.borrow().clone();
            assert_eq!(order, Some(CloseOrder::session_ended("logged out")));
        }
        for registration in [&others, &guest] {
            assert_eq!(*registration.close_orders.borrow(), None);
        }
        drop((first, second));
        assert_eq!(
            registry.close_session(&mine, "logged out"),
            0,
            "gone with their bridges"
        );
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary_within_123_bytes() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
