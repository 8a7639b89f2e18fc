//! The `/oauth2/*` handlers: start, callback, refresh, logout.

use std::str::FromStr;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use oauth2::{ClientId, CsrfToken, PkceCodeChallenge, Scope};
use openidconnect::core::{CoreAuthenticationFlow, CoreIdToken};
use openidconnect::{LogoutRequest, Nonce, PostLogoutRedirectUrl};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::error::{LoginError, RefreshError};
use super::relying_party::{Backend, LOGIN_PURPOSE, LOGIN_TTL_SECS, Providers};
use crate::session::{Session, SessionCodec, now_secs};

/// What the login cookie carries from start to callback.
#[derive(Serialize, Deserialize)]
pub(super) struct LoginState {
    pub(super) provider: String,
    pub(super) state: String,
    pub(super) nonce: Option<String>,
    pub(super) pkce_verifier: String,
    pub(super) rd: String,
    pub(super) issued_at: u64,
}

impl Providers {
    /// `/oauth2/start?provider=NAME&rd=PATH`: 302 to the provider's authorization endpoint.
    ///
    /// A provider that has not answered within [`PROVIDER_CHECK_INTERVAL`] is probed first (an
    /// OIDC provider's discovery, a GitHub or Bitbucket token endpoint); if it is down this is
    /// [`LoginError::ProviderUnavailable`] (503), not a redirect.
    ///
    /// [`PROVIDER_CHECK_INTERVAL`]: super::PROVIDER_CHECK_INTERVAL
    pub async fn start(
        &self,
        parts: &Parts,
        codec: &SessionCodec,
    ) -> Result<Response<Bytes>, LoginError> {
        let query = query(parts);
        let provider = self.inner.choose(query_get(&query, "provider"))?;
        let rd = query_get(&query, "rd")
            .and_then(|rd| self.safe_redirect(rd))
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
                let discovered = self.inner.discovered_reachable(provider, discovery).await?;
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
            Backend::OAuth2 {
                client,
                api,
                reachability,
            } => {
                self.inner
                    .check_oauth2_reachable(provider, api, reachability)
                    .await?;
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

    /// The provider's RP-initiated logout URL (with `id_token_hint`, `client_id` and the
    /// provider's `post_logout_redirect_uri`, by default `PUBLIC_URL/`), or `None` when the
    /// provider has no `end_session_endpoint` (show the local logout page).
    pub async fn logout(&self, session: &Session) -> Option<String> {
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
        let target = PostLogoutRedirectUrl::from_url(provider.post_logout_redirect.clone());
        request = request.set_post_logout_redirect_uri(target);
        Some(request.http_get_url().to_string())
    }
}

fn login_cookie(codec: &SessionCodec) -> String {
    format!("{}_login", codec.cookie_name())
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
