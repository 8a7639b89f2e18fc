//! The configured providers: construction (no network), lookup, the chooser list.

use std::sync::Arc;

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RedirectUrl, TokenUrl};
use openidconnect::IssuerUrl;
use url::Url;

use super::discovery::Discovery;
use super::error::LoginError;
use super::flight::Flights;
use super::reachability::Reachability;
use crate::identity::http_client::IdpHttpClient;
use crate::identity::providers::{
    ConfigError, Protocol, ProviderConfig, ResolvedProvider, resolve,
};
use crate::identity::redirect::safe_redirect;
use crate::identity::rest_api::ApiEndpoints;

/// Path of the callback under the public URL; register `PUBLIC_URL/oauth2/callback` at the IdP.
pub const CALLBACK_PATH: &str = "/oauth2/callback";
/// Where RP-initiated logout returns to unless `post_logout_redirect_uri` says otherwise: the
/// public root; register `PUBLIC_URL/` as a post-logout redirect URI at the IdP.
const DEFAULT_POST_LOGOUT_PATH: &str = "/";
/// How long a login may take between start and callback.
pub(super) const LOGIN_TTL_SECS: u64 = 600;
pub(super) const LOGIN_PURPOSE: &str = "login-state";

pub(super) type OAuth2Client =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// All configured providers, ready to serve the `/oauth2/*` endpoints.
#[derive(Clone)]
pub struct Providers {
    pub(super) inner: Arc<Inner>,
    pub(super) allowed_redirect_hosts: Arc<[String]>,
}

pub(super) struct Inner {
    pub(super) providers: Vec<Provider>,
    pub(super) http: IdpHttpClient,
    pub(super) public_url: Url,
    pub(super) secure: bool,
    pub(super) flights: Flights,
}

pub(super) struct Provider {
    pub(super) config: ResolvedProvider,
    pub(super) backend: Backend,
    /// The `post_logout_redirect_uri` sent with RP-initiated logout.
    pub(super) post_logout_redirect: Url,
}

pub(super) enum Backend {
    Oidc(Discovery),
    OAuth2 {
        client: Box<OAuth2Client>,
        api: Api,
        reachability: Reachability,
    },
}

pub(super) enum Api {
    Github(ApiEndpoints),
    Bitbucket(ApiEndpoints),
}

impl Api {
    pub(super) fn endpoints(&self) -> &ApiEndpoints {
        match self {
            Api::Github(endpoints) | Api::Bitbucket(endpoints) => endpoints,
        }
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("names", &self.list())
            .finish_non_exhaustive()
    }
}

impl Providers {
    /// Validates every entry (all problems reported at once); no network.
    pub fn new(configs: &[ProviderConfig], public_url: &Url) -> Result<Providers, ConfigError> {
        let mut problems = Vec::new();
        let mut resolved = Vec::new();
        for config in configs {
            match resolve(config) {
                Ok(provider) => {
                    if resolved
                        .iter()
                        .any(|p: &ResolvedProvider| p.name == provider.name)
                    {
                        problems.push(format!(
                            "providers: name {:?} is used twice; names must be unique",
                            provider.name
                        ));
                    }
                    resolved.push(provider);
                }
                Err(e) => problems.extend(e.problems),
            }
        }
        let redirect = public_url
            .join(CALLBACK_PATH)
            .map_err(|e| ConfigError::one(format!("public_url {public_url}: {e}")))?;
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let redirect_url = RedirectUrl::from_url(redirect);
        let mut providers = Vec::new();
        for config in resolved {
            match (
                backend(&config, &redirect_url),
                post_logout_redirect(&config, public_url),
            ) {
                (Ok(backend), Ok(post_logout_redirect)) => providers.push(Provider {
                    config,
                    backend,
                    post_logout_redirect,
                }),
                (backend, post_logout) => {
                    problems.extend(backend.err());
                    problems.extend(post_logout.err());
                }
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let http = IdpHttpClient::new().map_err(|e| ConfigError::one(e.to_string()))?;
        Ok(Providers {
            inner: Arc::new(Inner {
                providers,
                http,
                public_url: public_url.clone(),
                secure: public_url.scheme() == "https",
                flights: Flights::default(),
            }),
            allowed_redirect_hosts: Arc::from(Vec::new()),
        })
    }

    /// Hosts besides the public one that `rd` may point at (`host`, `host:port`, `.suffix`), as
    /// [`allowed_host_entry`](crate::identity::redirect::allowed_host_entry) normalises them.
    pub fn with_allowed_redirect_hosts(mut self, hosts: Vec<String>) -> Providers {
        self.allowed_redirect_hosts = Arc::from(hosts);
        self
    }

    /// `rd` if a login may send the browser there: a path on this host, or a URL on the public
    /// host or an allowed one. The one check for `/oauth2/start`, the login page and the
    /// password form.
    pub fn safe_redirect(&self, rd: &str) -> Option<String> {
        let public = &self.inner.public_url;
        let host = public.host_str().unwrap_or_default();
        let public_host = match public.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        safe_redirect(rd, &public_host, &self.allowed_redirect_hosts)
    }

    /// `(name, display_name)` in configuration order, for the chooser page.
    pub fn list(&self) -> Vec<(String, String)> {
        self.inner
            .providers
            .iter()
            .map(|p| (p.config.name.clone(), p.config.display_name.clone()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.providers.is_empty()
    }
}

/// `post_logout_redirect_uri` resolved against the public URL; the public root by default.
fn post_logout_redirect(config: &ResolvedProvider, public_url: &Url) -> Result<Url, String> {
    let text = config
        .post_logout_redirect_uri
        .as_deref()
        .unwrap_or(DEFAULT_POST_LOGOUT_PATH);
    match public_url.join(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        Ok(_) | Err(_) => Err(format!(
            "providers.{}.post_logout_redirect_uri {text:?}: give a path on public_url (e.g. /) \
             or an http(s) URL, and register it at the provider",
            config.name
        )),
    }
}

fn backend(config: &ResolvedProvider, redirect: &RedirectUrl) -> Result<Backend, String> {
    let oauth2 = |auth: &Url, token: &Url| {
        let mut client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(auth.clone()))
            .set_token_uri(TokenUrl::from_url(token.clone()))
            .set_redirect_uri(redirect.clone());
        if let Some(secret) = &config.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        Box::new(client)
    };
    match &config.protocol {
        Protocol::Oidc { issuer } => match IssuerUrl::new(issuer.clone()) {
            Ok(issuer) => Ok(Backend::Oidc(Discovery::new(
                issuer,
                &config.client_id,
                config.client_secret.as_deref(),
                redirect.clone(),
            ))),
            Err(e) => Err(format!("providers.{}.issuer {issuer:?}: {e}", config.name)),
        },
        Protocol::Github(e) => Ok(Backend::OAuth2 {
            client: oauth2(&e.auth_url, &e.token_url),
            api: Api::Github(e.clone()),
            reachability: Reachability::default(),
        }),
        Protocol::Bitbucket(e) => Ok(Backend::OAuth2 {
            client: oauth2(&e.auth_url, &e.token_url),
            api: Api::Bitbucket(e.clone()),
            reachability: Reachability::default(),
        }),
    }
}

impl Inner {
    pub(super) fn find(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.config.name == name)
    }

    pub(super) fn choose(&self, name: Option<&str>) -> Result<&Provider, LoginError> {
        match (name, self.providers.as_slice()) {
            (Some(name), _) => self
                .find(name)
                .ok_or_else(|| LoginError::UnknownProvider(name.to_owned())),
            (None, [only]) => Ok(only),
            (None, _) => Err(LoginError::NoProviderChosen),
        }
    }
}
