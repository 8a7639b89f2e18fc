//! The OAuth2/OIDC relying party: `/oauth2/start`, `/oauth2/callback`, refresh and logout as
//! framework-free functions the server calls.
//!
//! ```text
//! start    ?provider=NAME&rd=/path → 302 to the provider, state+nonce+PKCE sealed in a cookie
//! callback ?state&code             → check state, exchange code, verify ID token, userinfo,
//!                                    groups → Session + Set-Cookie, then the server redirects to rd
//! refresh  (access token near expiry) → one refresh per session, groups re-read
//! logout   → the provider's end_session URL (RP-initiated logout), if it has one
//! ```
//!
//! Nothing touches the network at construction: discovery is lazy, cached and retried, so a
//! provider that is down makes login answer 503 while existing sessions keep working.

mod discovery;
mod error;
mod flight;
mod verify;

pub use error::{IdTokenProblem, LoginError, RefreshError};

use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    TokenResponse as _, TokenUrl,
};
use openidconnect::core::{CoreAuthenticationFlow, CoreIdToken};
use openidconnect::{IssuerUrl, LogoutRequest, Nonce, PostLogoutRedirectUrl, TokenResponse as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use url::Url;

use super::http_client::{ApiError, IdpHttpClient};
use super::providers::{ConfigError, Protocol, ProviderConfig, ResolvedProvider, resolve};
use super::redirect::safe_redirect;
use super::{Identity, bitbucket, github};
use crate::session::{ProviderTokens, Session, SessionCodec, now_secs};
use discovery::{Discovered, Discovery};
use flight::Flights;

/// Path of the callback under the public URL; register `PUBLIC_URL/oauth2/callback` at the IdP.
pub const CALLBACK_PATH: &str = "/oauth2/callback";
/// How long a login may take between start and callback.
const LOGIN_TTL_SECS: u64 = 600;
const LOGIN_PURPOSE: &str = "login-state";

type OAuth2Client =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// All configured providers, ready to serve the `/oauth2/*` endpoints.
#[derive(Clone)]
pub struct Providers {
    inner: Arc<Inner>,
    allowed_redirect_hosts: Arc<[String]>,
}

struct Inner {
    providers: Vec<Provider>,
    http: IdpHttpClient,
    public_url: Url,
    secure: bool,
    flights: Flights,
}

struct Provider {
    config: ResolvedProvider,
    backend: Backend,
}

enum Backend {
    Oidc(Discovery),
    OAuth2 { client: Box<OAuth2Client>, api: Api },
}

enum Api {
    Github(github::GithubEndpoints),
    Bitbucket(bitbucket::BitbucketEndpoints),
}

/// What the login cookie carries from start to callback.
#[derive(Serialize, Deserialize)]
struct LoginState {
    provider: String,
    state: String,
    nonce: Option<String>,
    pkce_verifier: String,
    rd: String,
    issued_at: u64,
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
            match backend(&config, &redirect_url) {
                Ok(backend) => providers.push(Provider { config, backend }),
                Err(problem) => problems.push(problem),
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

    /// Hosts besides the public one that `rd` may point at (`host`, `host:port`, `.suffix`).
    pub fn with_allowed_redirect_hosts(mut self, hosts: Vec<String>) -> Providers {
        self.allowed_redirect_hosts = Arc::from(hosts);
        self
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

    /// `/oauth2/start?provider=NAME&rd=PATH`: 302 to the provider's authorization endpoint.
    pub async fn start(
        &self,
        parts: &Parts,
        codec: &SessionCodec,
    ) -> Result<Response<Bytes>, LoginError> {
        let query = query(parts);
        let provider = self.inner.choose(query_get(&query, "provider"))?;
        let public_host = self.inner.public_url.host_str().unwrap_or_default();
        let public_host = match self.inner.public_url.port() {
            Some(port) => format!("{public_host}:{port}"),
            None => public_host.to_owned(),
        };
        let rd = query_get(&query, "rd")
            .and_then(|rd| safe_redirect(rd, &public_host, &self.allowed_redirect_hosts))
            .unwrap_or_else(|| "/".into());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let scopes = provider
            .config
            .scopes
            .iter()
            .filter(|s| *s != "openid")
            .map(|s| Scope::new(s.clone()));
        let (url, state, nonce) = match &provider.backend {
            Backend::Oidc(discovery) => {
                let discovered = self.inner.discovered(provider, discovery).await?;
                let mut request = discovered
                    .client
                    .authorize_url(
                        CoreAuthenticationFlow::AuthorizationCode,
                        CsrfToken::new_random,
                        Nonce::new_random,
                    )
                    .add_scopes(scopes)
                    .set_pkce_challenge(challenge);
                for (key, value) in &provider.config.extra_params {
                    request = request.add_extra_param(key, value);
                }
                let (url, state, nonce) = request.url();
                (url, state, Some(nonce.secret().clone()))
            }
            Backend::OAuth2 { client, .. } => {
                let mut request = client
                    .authorize_url(CsrfToken::new_random)
                    .add_scopes(scopes)
                    .set_pkce_challenge(challenge);
                for (key, value) in &provider.config.extra_params {
                    request = request.add_extra_param(key, value);
                }
                let (url, state) = request.url();
                (url, state, None)
            }
        };
        let login = LoginState {
            provider: provider.config.name.clone(),
            state: state.secret().clone(),
            nonce,
            pkce_verifier: verifier.secret().clone(),
            rd,
            issued_at: now_secs(),
        };
        let cookie = codec.seal_cookie(
            LOGIN_PURPOSE,
            &login_cookie(codec),
            &login,
            self.inner.secure,
            LOGIN_TTL_SECS,
        )?;
        let location =
            HeaderValue::from_str(url.as_str()).map_err(|_| LoginError::ProviderProtocol {
                provider: provider.config.name.clone(),
                reason: "authorization URL is not a valid header".into(),
            })?;
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = StatusCode::FOUND;
        response.headers_mut().insert(LOCATION, location);
        response.headers_mut().insert(SET_COOKIE, cookie);
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }

    /// `/oauth2/callback`: the new session, the safe `rd` to redirect to, and the `Set-Cookie`
    /// values (session cookies plus clearing the login cookie).
    pub async fn callback(
        &self,
        parts: &Parts,
        codec: &SessionCodec,
    ) -> Result<(Session, String, Vec<HeaderValue>), LoginError> {
        let query = query(parts);
        let cookie_name = login_cookie(codec);
        let login: LoginState = codec
            .open_cookie(LOGIN_PURPOSE, &cookie_name, &parts.headers)
            .filter(|l: &LoginState| now_secs().saturating_sub(l.issued_at) <= LOGIN_TTL_SECS)
            .ok_or(LoginError::StateMissing)?;
        let state = query_get(&query, "state").ok_or(LoginError::StateMismatch)?;
        if !bool::from(state.as_bytes().ct_eq(login.state.as_bytes())) {
            return Err(LoginError::StateMismatch);
        }
        if let Some(error) = query_get(&query, "error") {
            return Err(LoginError::ProviderDenied(oauth_error_code(error)));
        }
        let code = query_get(&query, "code")
            .filter(|c| !c.is_empty())
            .ok_or(LoginError::MissingCode)?;
        let provider = self
            .inner
            .find(&login.provider)
            .ok_or_else(|| LoginError::UnknownProvider(login.provider.clone()))?;
        let (identity, tokens) = self.inner.login(provider, code, &login).await?;
        tracing::info!(provider = %provider.config.name, subject = %identity.subject, "login succeeded");
        let session = codec.new_session(identity, Some(tokens));
        let mut cookies = codec.seal(&session, self.inner.secure, &parts.headers)?;
        cookies.push(SessionCodec::expire_cookie(&cookie_name));
        Ok((session, login.rd, cookies))
    }

    /// Refreshes the session's tokens and re-reads its identity (groups); one refresh per
    /// session at a time. On error see [`RefreshError::ends_session`].
    pub async fn refresh(&self, session: &Session) -> Result<Session, RefreshError> {
        let refresh_token = session
            .tokens
            .as_ref()
            .and_then(|t| t.refresh_token.clone())
            .ok_or(RefreshError::NoRefreshToken)?;
        let inner = self.inner.clone();
        let current = session.clone();
        let token = refresh_token.clone();
        let result = self
            .inner
            .flights
            .run(session.id, &refresh_token, async move {
                inner.refresh_now(current, token).await
            })
            .await;
        if let Err(error) = &result {
            tracing::info!(provider = %session.identity.provider, %error, "session refresh failed");
        }
        result
    }

    /// The provider's RP-initiated logout URL (with `id_token_hint`, `client_id` and
    /// `post_logout_redirect_uri`, resolved against the public URL), or `None` when the
    /// provider has no `end_session_endpoint` (show the local logout page).
    pub async fn logout(
        &self,
        session: &Session,
        post_logout_redirect: Option<&str>,
    ) -> Option<String> {
        let provider = self.inner.find(&session.identity.provider)?;
        let Backend::Oidc(discovery) = &provider.backend else {
            return None;
        };
        let discovered = discovery.get(&self.inner.http).await.ok()?;
        let endpoint = discovered.end_session.clone()?;
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(provider.config.client_id.clone()));
        if let Some(id_token) = session.tokens.as_ref().and_then(|t| t.id_token.as_deref())
            && let Ok(id_token) = CoreIdToken::from_str(id_token)
        {
            request = request.set_id_token_hint(&id_token);
        }
        if let Some(target) = post_logout_redirect.and_then(|p| self.inner.public_url.join(p).ok())
        {
            request = request.set_post_logout_redirect_uri(PostLogoutRedirectUrl::from_url(target));
        }
        Some(request.http_get_url().to_string())
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
        }),
        Protocol::Bitbucket(e) => Ok(Backend::OAuth2 {
            client: oauth2(&e.auth_url, &e.token_url),
            api: Api::Bitbucket(e.clone()),
        }),
    }
}

impl Inner {
    fn find(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.config.name == name)
    }

    fn choose(&self, name: Option<&str>) -> Result<&Provider, LoginError> {
        match (name, self.providers.as_slice()) {
            (Some(name), _) => self
                .find(name)
                .ok_or_else(|| LoginError::UnknownProvider(name.to_owned())),
            (None, [only]) => Ok(only),
            (None, _) => Err(LoginError::NoProviderChosen),
        }
    }

    async fn discovered(
        &self,
        provider: &Provider,
        discovery: &Discovery,
    ) -> Result<Arc<Discovered>, LoginError> {
        discovery
            .get(&self.http)
            .await
            .map_err(|reason| LoginError::ProviderUnavailable {
                provider: provider.config.name.clone(),
                reason,
            })
    }

    /// Code exchange and identity for either protocol.
    async fn login(
        &self,
        provider: &Provider,
        code: &str,
        login: &LoginState,
    ) -> Result<(Identity, ProviderTokens), LoginError> {
        let name = &provider.config.name;
        let code = AuthorizationCode::new(code.to_owned());
        let verifier = PkceCodeVerifier::new(login.pkce_verifier.clone());
        match &provider.backend {
            Backend::Oidc(discovery) => {
                let discovered = self.discovered(provider, discovery).await?;
                let response = discovered
                    .client
                    .exchange_code(code)
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| login_token_error(name, &e))?;
                let id_token = response
                    .id_token()
                    .ok_or(LoginError::InvalidIdToken(IdTokenProblem::Missing))?;
                let nonce = Nonce::new(login.nonce.clone().unwrap_or_default());
                let mut claims = self
                    .verify(discovery, discovered.clone(), id_token, Some(&nonce))
                    .await
                    .map_err(LoginError::InvalidIdToken)?;
                let access_token = response.access_token().secret();
                if let Some(userinfo) = &discovered.userinfo {
                    let info = self
                        .userinfo(userinfo, access_token, &claims)
                        .await
                        .map_err(|e| match e {
                            UserinfoError::Unreachable(reason) => LoginError::ProviderUnavailable {
                                provider: name.clone(),
                                reason,
                            },
                            UserinfoError::Protocol(reason) => LoginError::ProviderProtocol {
                                provider: name.clone(),
                                reason,
                            },
                        })?;
                    verify::merge_userinfo(&mut claims, info);
                }
                let identity = verify::identity_from_claims(
                    claims,
                    name,
                    provider.config.groups_claim.as_deref(),
                )
                .ok_or(LoginError::InvalidIdToken(IdTokenProblem::Malformed))?;
                let tokens = ProviderTokens {
                    access_token: access_token.clone(),
                    refresh_token: response.refresh_token().map(|t| t.secret().clone()),
                    id_token: Some(id_token.to_string()),
                    access_expires_at: response.expires_in().map(|d| now_secs() + d.as_secs()),
                };
                Ok((identity, tokens))
            }
            Backend::OAuth2 { client, api } => {
                let response = client
                    .exchange_code(code)
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| login_token_error(name, &e))?;
                let access_token = response.access_token().secret();
                let identity =
                    self.api_identity(api, name, access_token)
                        .await
                        .map_err(|e| match e {
                            ApiError::Unreachable(_) => LoginError::ProviderUnavailable {
                                provider: name.clone(),
                                reason: e.to_string(),
                            },
                            _ => LoginError::ProviderProtocol {
                                provider: name.clone(),
                                reason: e.to_string(),
                            },
                        })?;
                let tokens = ProviderTokens {
                    access_token: access_token.clone(),
                    refresh_token: response.refresh_token().map(|t| t.secret().clone()),
                    id_token: None,
                    access_expires_at: response.expires_in().map(|d| now_secs() + d.as_secs()),
                };
                Ok((identity, tokens))
            }
        }
    }

    async fn api_identity(
        &self,
        api: &Api,
        name: &str,
        access_token: &str,
    ) -> Result<Identity, ApiError> {
        match api {
            Api::Github(e) => github::fetch_identity(&self.http, e, name, access_token).await,
            Api::Bitbucket(e) => bitbucket::fetch_identity(&self.http, e, name, access_token).await,
        }
    }

    /// Verifies an ID token; on an unknown `kid`, re-discovers (with cooldown) and tries again.
    async fn verify(
        &self,
        discovery: &Discovery,
        discovered: Arc<Discovered>,
        id_token: &CoreIdToken,
        nonce: Option<&Nonce>,
    ) -> Result<Map<String, Value>, IdTokenProblem> {
        let now = now_secs() as i64;
        match verify::verify_id_token(&discovered.client, id_token, nonce, now) {
            Err(IdTokenProblem::UnknownKey) => {
                match discovery.refresh_for_unknown_key(&self.http).await {
                    Some(fresh) => verify::verify_id_token(&fresh.client, id_token, nonce, now),
                    None => Err(IdTokenProblem::UnknownKey),
                }
            }
            other => other,
        }
    }

    /// Userinfo claims; their `sub` must equal the ID token's.
    async fn userinfo(
        &self,
        endpoint: &Url,
        access_token: &str,
        claims: &Map<String, Value>,
    ) -> Result<Map<String, Value>, UserinfoError> {
        let (info, _): (Map<String, Value>, _) = self
            .http
            .get_json(endpoint, access_token, "application/json")
            .await
            .map_err(|e| match e {
                ApiError::Unreachable(_) => UserinfoError::Unreachable(e.to_string()),
                _ => UserinfoError::Protocol(e.to_string()),
            })?;
        if info.get("sub") != claims.get("sub") {
            return Err(UserinfoError::Protocol(
                "userinfo names another subject".into(),
            ));
        }
        Ok(info)
    }

    /// The refresh itself; runs on its own task under [`Flights`].
    async fn refresh_now(
        &self,
        session: Session,
        refresh_token: String,
    ) -> Result<Session, RefreshError> {
        let provider_name = session.identity.provider.clone();
        let provider = self
            .find(&provider_name)
            .ok_or_else(|| RefreshError::UnknownProvider(provider_name.clone()))?;
        let unavailable = |reason: String| RefreshError::Unavailable {
            provider: provider_name.clone(),
            reason,
        };
        let protocol = |reason: String| RefreshError::ProviderProtocol {
            provider: provider_name.clone(),
            reason,
        };
        let old = session.tokens.clone();
        let token = RefreshToken::new(refresh_token.clone());
        let (identity, tokens) = match &provider.backend {
            Backend::Oidc(discovery) => {
                let discovered = discovery.get(&self.http).await.map_err(unavailable)?;
                let response = discovered
                    .client
                    .exchange_refresh_token(&token)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| refresh_token_error(&provider_name, &e))?;
                let new_id_token = response.id_token();
                let mut claims = match new_id_token {
                    Some(id_token) => {
                        let claims = self
                            .verify(discovery, discovered.clone(), id_token, None)
                            .await
                            .map_err(RefreshError::InvalidIdToken)?;
                        if claims.get("sub").and_then(Value::as_str)
                            != Some(session.identity.subject.as_str())
                        {
                            return Err(RefreshError::InvalidIdToken(
                                IdTokenProblem::SubjectChanged,
                            ));
                        }
                        claims
                    }
                    None => old
                        .as_ref()
                        .and_then(|t| t.id_token.as_deref())
                        .and_then(verify::payload)
                        .unwrap_or_else(|| {
                            Map::from_iter([(
                                "sub".into(),
                                session.identity.subject.clone().into(),
                            )])
                        }),
                };
                let access_token = response.access_token().secret();
                if let Some(userinfo) = &discovered.userinfo {
                    let info = self
                        .userinfo(userinfo, access_token, &claims)
                        .await
                        .map_err(|e| match e {
                            UserinfoError::Unreachable(reason) => unavailable(reason),
                            UserinfoError::Protocol(reason) => protocol(reason),
                        })?;
                    verify::merge_userinfo(&mut claims, info);
                }
                let identity = verify::identity_from_claims(
                    claims,
                    &provider_name,
                    provider.config.groups_claim.as_deref(),
                )
                .ok_or(RefreshError::InvalidIdToken(IdTokenProblem::Malformed))?;
                let tokens = ProviderTokens {
                    access_token: access_token.clone(),
                    refresh_token: Some(
                        response
                            .refresh_token()
                            .map(|t| t.secret().clone())
                            .unwrap_or(refresh_token),
                    ),
                    id_token: new_id_token
                        .map(|t| t.to_string())
                        .or_else(|| old.and_then(|t| t.id_token)),
                    access_expires_at: response.expires_in().map(|d| now_secs() + d.as_secs()),
                };
                (identity, tokens)
            }
            Backend::OAuth2 { client, api } => {
                let response = client
                    .exchange_refresh_token(&token)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| refresh_token_error(&provider_name, &e))?;
                let access_token = response.access_token().secret();
                let identity = self
                    .api_identity(api, &provider_name, access_token)
                    .await
                    .map_err(|e| match e {
                        ApiError::Unreachable(_) => unavailable(e.to_string()),
                        _ => protocol(e.to_string()),
                    })?;
                if identity.subject != session.identity.subject {
                    return Err(RefreshError::InvalidIdToken(IdTokenProblem::SubjectChanged));
                }
                let tokens = ProviderTokens {
                    access_token: access_token.clone(),
                    refresh_token: Some(
                        response
                            .refresh_token()
                            .map(|t| t.secret().clone())
                            .unwrap_or(refresh_token),
                    ),
                    id_token: None,
                    access_expires_at: response.expires_in().map(|d| now_secs() + d.as_secs()),
                };
                (identity, tokens)
            }
        };
        Ok(Session {
            id: session.id,
            identity,
            expires_at: session.expires_at,
            tokens: Some(tokens),
        })
    }
}

enum UserinfoError {
    Unreachable(String),
    Protocol(String),
}

fn login_cookie(codec: &SessionCodec) -> String {
    format!("{}_login", codec.cookie_name())
}

type TokenError<RE> =
    RequestTokenError<RE, oauth2::StandardErrorResponse<oauth2::basic::BasicErrorResponseType>>;

fn login_token_error<RE: std::error::Error + 'static>(
    provider: &str,
    error: &TokenError<RE>,
) -> LoginError {
    match error {
        RequestTokenError::ServerResponse(_) => LoginError::CodeRejected(provider.to_owned()),
        RequestTokenError::Request(e) => LoginError::ProviderUnavailable {
            provider: provider.to_owned(),
            reason: e.to_string(),
        },
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
            LoginError::ProviderProtocol {
                provider: provider.to_owned(),
                reason: "token response did not parse".into(),
            }
        }
    }
}

fn refresh_token_error<RE: std::error::Error + 'static>(
    provider: &str,
    error: &TokenError<RE>,
) -> RefreshError {
    match error {
        RequestTokenError::ServerResponse(_) => RefreshError::Rejected(provider.to_owned()),
        RequestTokenError::Request(e) => RefreshError::Unavailable {
            provider: provider.to_owned(),
            reason: e.to_string(),
        },
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
            RefreshError::ProviderProtocol {
                provider: provider.to_owned(),
                reason: "token response did not parse".into(),
            }
        }
    }
}

/// Keeps an OAuth2 `error` code only if it is a plain token (never echo arbitrary text).
fn oauth_error_code(error: &str) -> String {
    if !error.is_empty()
        && error.len() <= 64
        && error
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        error.to_owned()
    } else {
        "unknown_error".into()
    }
}

fn query(parts: &Parts) -> Vec<(String, String)> {
    url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn query_get<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
