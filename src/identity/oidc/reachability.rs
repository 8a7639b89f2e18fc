//! Whether a provider answered lately, so `/oauth2/start` can answer 503 for a provider that is
//! down instead of sending the browser to a dead page.
//!
//! A verdict is remembered: a success for [`PROVIDER_CHECK_INTERVAL`], a failure for
//! [`UNREACHABLE_FOR`]. Past that the next login probes the provider, and concurrent logins
//! share that one probe, so a burst during an outage costs one request.

use std::future::Future;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A provider that answered this recently counts as up for `/oauth2/start`; past that, the
/// next login probes it first.
pub const PROVIDER_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// A failed probe answers for this long: logins during an outage cost one probe per window,
/// and a provider that comes back is noticed quickly.
const UNREACHABLE_FOR: Duration = Duration::from_secs(5);
/// How long a login waits for the probe before calling the provider unavailable.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(crate) struct Reachability {
    /// The last verdict, and when it was reached.
    contact: Mutex<Option<(Instant, Result<(), String>)>>,
    probing: tokio::sync::Mutex<()>,
}

impl Reachability {
    /// Remembers the outcome of any exchange with the provider.
    pub(crate) fn record(&self, verdict: Result<(), String>) {
        self.record_at(Instant::now(), verdict);
    }

    /// [`record`](Self::record) with the time it happened.
    pub(crate) fn record_at(&self, at: Instant, verdict: Result<(), String>) {
        *self.contact.lock() = Some((at, verdict));
    }

    /// The last verdict while it still holds.
    fn recent(&self) -> Option<Result<(), String>> {
        let contact = self.contact.lock();
        let (at, verdict) = contact.as_ref()?;
        let holds_for = if verdict.is_ok() {
            PROVIDER_CHECK_INTERVAL
        } else {
            UNREACHABLE_FOR
        };
        (at.elapsed() < holds_for).then(|| verdict.clone())
    }

    /// The recent verdict, or else the verdict of `probe` (which records its own outcome), given
    /// at most [`PROBE_TIMEOUT`]. `provider` names it in the log.
    pub(crate) async fn check(
        &self,
        provider: &str,
        probe: impl Future<Output = Result<(), String>>,
    ) -> Result<(), String> {
        if let Some(verdict) = self.recent() {
            return verdict;
        }
        let probed = async {
            let _probing = self.probing.lock().await;
            // Another login may have probed while this one waited.
            match self.recent() {
                Some(verdict) => verdict,
                None => probe.await,
            }
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probed).await {
            Ok(verdict) => verdict,
            Err(_) => {
                let reason = format!("no answer within {} s", PROBE_TIMEOUT.as_secs());
                tracing::warn!(%provider, %reason, "identity provider probe failed");
                self.record(Err(reason.clone()));
                Err(reason)
            }
        }
    }
}
