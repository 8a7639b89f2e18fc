//! Lazy, cached OIDC discovery (metadata + JWKS), re-fetched periodically and on an unknown
//! `kid` with a cooldown. openidconnect never re-fetches keys by itself.
//!
//! Every fetch counts as contact with the provider, so `/oauth2/start` can tell a provider that
//! went down after discovery was cached ([`Discovery::check_reachable`]) instead of sending the
//! browser to a dead page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::CoreClient;
use openidconnect::{
    AuthType, ClientId, ClientSecret, EndSessionUrl, EndpointNotSet, EndpointSet, IssuerUrl,
    ProviderMetadataWithLogout, RedirectUrl,
};
use parking_lot::{Mutex, RwLock};
use url::Url;

use super::reachability::Reachability;
use crate::identity::http_client::IdpHttpClient;

/// The client type once discovery filled in the authorization and token endpoints.
pub(crate) type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
>;

/// Re-discover at least this often, so rotated keys and moved endpoints are picked up.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// At most one forced re-discovery (unknown `kid`) per provider per this long.
const KID_COOLDOWN: Duration = Duration::from_secs(30);
/// After a failed discovery, fail fast for this long instead of hammering a dead provider.
const FAILURE_BACKOFF: Duration = Duration::from_secs(2);

/// What discovery produced for one provider.
pub(crate) struct Discovered {
    pub(crate) client: OidcClient,
    pub(crate) userinfo: Option<Url>,
    pub(crate) end_session: Option<EndSessionUrl>,
    fetched: Instant,
}

/// One OIDC provider's discovery state.
pub(crate) struct Discovery {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    cache: RwLock<Option<Arc<Discovered>>>,
    fetching: tokio::sync::Mutex<()>,
    last_forced: Mutex<Option<Instant>>,
    last_failure: Mutex<Option<(Instant, String)>>,
    reachability: Reachability,
}

impl Discovery {
    /// `issuer` was validated as a URL by the provider factory.
    pub(crate) fn new(
        issuer: IssuerUrl,
        client_id: &str,
        client_secret: Option<&str>,
        redirect: RedirectUrl,
    ) -> Discovery {
        Discovery {
            issuer,
            client_id: ClientId::new(client_id.to_owned()),
            client_secret: client_secret.map(|s| ClientSecret::new(s.to_owned())),
            redirect,
            cache: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            last_forced: Mutex::new(None),
            last_failure: Mutex::new(None),
            reachability: Reachability::default(),
        }
    }

    /// The cached discovery, fetching it when missing or stale. A stale copy keeps serving when
    /// the provider is down; a missing one is an error (the login page answers 503).
    pub(crate) async fn get(&self, http: &IdpHttpClient) -> Result<Arc<Discovered>, String> {
        if let Some(fresh) = self.cached().filter(|d| d.fetched.elapsed() < MAX_AGE) {
            return Ok(fresh);
        }
        let _guard = self.fetching.lock().await;
        if let Some(fresh) = self.cached().filter(|d| d.fetched.elapsed() < MAX_AGE) {
            return Ok(fresh);
        }
        match self.fetch(http).await {
            Ok(discovered) => Ok(discovered),
            Err(reason) => self.cached().ok_or(reason),
        }
    }

    /// Re-fetches after an ID token named an unknown `kid`; `None` while in cooldown or when
    /// the provider cannot be reached.
    pub(crate) async fn refresh_for_unknown_key(
        &self,
        http: &IdpHttpClient,
    ) -> Option<Arc<Discovered>> {
        {
            let mut last = self.last_forced.lock();
            if last.is_some_and(|at| at.elapsed() < KID_COOLDOWN) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let _guard = self.fetching.lock().await;
        self.fetch(http).await.ok()
    }

    /// `Ok` when the provider answered lately; otherwise re-fetches discovery, within the probe
    /// timeout (see [`Reachability`]). Only `/oauth2/start` calls this: requests with a session
    /// never wait for the provider.
    pub(crate) async fn check_reachable(&self, http: &IdpHttpClient) -> Result<(), String> {
        let probe = async {
            let _guard = self.fetching.lock().await;
            self.fetch(http).await.map(drop)
        };
        self.reachability.check(self.issuer.as_str(), probe).await
    }

    fn cached(&self) -> Option<Arc<Discovered>> {
        self.cache.read().clone()
    }

    /// Fetches metadata and JWKS; the caller holds `fetching`.
    async fn fetch(&self, http: &IdpHttpClient) -> Result<Arc<Discovered>, String> {
        if let Some((at, reason)) = self.last_failure.lock().as_ref()
            && at.elapsed() < FAILURE_BACKOFF
        {
            return Err(reason.clone());
        }
        let result = self.fetch_uncached(http).await;
        match &result {
            Ok(discovered) => {
                *self.cache.write() = Some(discovered.clone());
                *self.last_failure.lock() = None;
                self.reachability.record(Ok(()));
                tracing::info!(issuer = %self.issuer.as_str(), "OIDC discovery refreshed");
            }
            Err(reason) => {
                tracing::warn!(issuer = %self.issuer.as_str(), %reason, "OIDC discovery failed");
                *self.last_failure.lock() = Some((Instant::now(), reason.clone()));
                self.reachability.record(Err(reason.clone()));
            }
        }
        result
    }

    async fn fetch_uncached(&self, http: &IdpHttpClient) -> Result<Arc<Discovered>, String> {
        let metadata = ProviderMetadataWithLogout::discover_async(self.issuer.clone(), http)
            .await
            .map_err(|e| discovery_reason(&e))?;
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| "discovery document has no token_endpoint".to_owned())?;
        let basic_supported =
            metadata
                .token_endpoint_auth_methods_supported()
                .is_none_or(|methods| {
                    methods.contains(&openidconnect::core::CoreClientAuthMethod::ClientSecretBasic)
                });
        let mut client = CoreClient::new(
            self.client_id.clone(),
            metadata.issuer().clone(),
            metadata.jwks().clone(),
        )
        .set_auth_uri(metadata.authorization_endpoint().clone())
        .set_token_uri(token_url)
        .set_redirect_uri(self.redirect.clone())
        .set_auth_type(if basic_supported {
            AuthType::BasicAuth
        } else {
            AuthType::RequestBody
        });
        if let Some(secret) = &self.client_secret {
            client = client.set_client_secret(secret.clone());
        }
        Ok(Arc::new(Discovered {
            client,
            userinfo: metadata.userinfo_endpoint().map(|u| u.url().clone()),
            end_session: metadata.additional_metadata().end_session_endpoint.clone(),
            fetched: Instant::now(),
        }))
    }
}

/// A log- and user-safe reason (no response bodies).
fn discovery_reason<E: std::error::Error + 'static>(
    error: &openidconnect::DiscoveryError<E>,
) -> String {
    use openidconnect::DiscoveryError as D;
    match error {
        D::Request(e) => format!("request failed: {e}"),
        D::Response(status, _, _) => format!("discovery answered HTTP {status}"),
        D::Parse(_) => "discovery document did not parse".into(),
        D::Validation(reason) => format!("discovery document invalid: {reason}"),
        D::UrlParse(e) => format!("bad discovery URL: {e}"),
        _ => "discovery failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::identity::oidc::reachability::{PROBE_TIMEOUT, PROVIDER_CHECK_INTERVAL};

    /// A provider that accepts connections and never answers; counts the connections.
    async fn silent_provider() -> (Discovery, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                open.push(stream);
            }
        });
        let discovery = Discovery::new(
            IssuerUrl::new(format!("http://127.0.0.1:{port}")).unwrap(),
            "client",
            None,
            RedirectUrl::new("http://127.0.0.1:1/oauth2/callback".into()).unwrap(),
        );
        (discovery, connections)
    }

    #[tokio::test]
    async fn silent_provider_is_unreachable_within_the_probe_timeout_and_a_burst_probes_once() {
        let (discovery, connections) = silent_provider().await;
        let http = IdpHttpClient::new().unwrap();
        let started = Instant::now();
        let burst = (0..8).map(|_| discovery.check_reachable(&http));
        let verdicts = futures_util::future::join_all(burst).await;
        assert!(verdicts.iter().all(Result::is_err), "{verdicts:?}");
        assert!(
            started.elapsed() < PROBE_TIMEOUT + Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
        let again = discovery.check_reachable(&http).await;
        assert!(again.is_err(), "the failed verdict is remembered");
        assert_eq!(connections.load(Ordering::SeqCst), 1, "one probe in all");
    }

    #[tokio::test]
    async fn recent_success_answers_without_a_probe_and_expires() {
        let (discovery, connections) = silent_provider().await;
        let http = IdpHttpClient::new().unwrap();
        discovery.reachability.record(Ok(()));
        assert_eq!(discovery.check_reachable(&http).await, Ok(()));
        assert_eq!(connections.load(Ordering::SeqCst), 0);

        let long_ago = Instant::now() - PROVIDER_CHECK_INTERVAL - Duration::from_secs(1);
        discovery.reachability.record_at(long_ago, Ok(()));
        assert!(discovery.check_reachable(&http).await.is_err());
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "a stale success probes"
        );
    }
}
