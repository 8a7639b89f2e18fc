//! The protocol work behind the handlers: code exchange, ID-token verification with key
//! rotation, userinfo, provider APIs, refresh.

use std::sync::Arc;

use oauth2::{
    AuthorizationCode, PkceCodeVerifier, RefreshToken, RequestTokenError, TokenResponse as _,
};
use openidconnect::core::CoreIdToken;
use openidconnect::{Nonce, TokenResponse as _};
use serde_json::{Map, Value};
use url::Url;

use super::discovery::{Discovered, Discovery};
use super::error::{IdTokenProblem, LoginError, RefreshError};
use super::handlers::LoginState;
use super::reachability::Reachability;
use super::relying_party::{Api, Backend, Inner, Provider};
use super::verify;
use crate::identity::http_client::ApiError;
use crate::identity::{Identity, bitbucket, github};
use crate::session::{ProviderTokens, Session, now_secs};

impl Inner {
    pub(super) async fn discovered(
        &self,
        provider: &Provider,
        discovery: &Discovery,
    ) -> Result<Arc<Discovered>, LoginError> {
        discovery
            .get(&self.http)
            .await
            .map_err(|reason| unavailable_for_login(provider, reason))
    }

    /// Like [`discovered`](Self::discovered), but first makes sure the provider is up (probing
    /// it when it has not answered lately), so a login is not sent to a dead provider on the
    /// strength of a cached discovery document.
    pub(super) async fn discovered_reachable(
        &self,
        provider: &Provider,
        discovery: &Discovery,
    ) -> Result<Arc<Discovered>, LoginError> {
        discovery
            .check_reachable(&self.http)
            .await
            .map_err(|reason| unavailable_for_login(provider, reason))?;
        self.discovered(provider, discovery).await
    }

    /// For `/oauth2/start` with a GitHub or Bitbucket provider: it counts as up when its token
    /// endpoint answers at all (any HTTP status), as the login cannot finish without it.
    pub(super) async fn check_oauth2_reachable(
        &self,
        provider: &Provider,
        api: &Api,
        reachability: &Reachability,
    ) -> Result<(), LoginError> {
        let name = &provider.config.name;
        let probe = async {
            let token_url = api.endpoints().token_url.as_str();
            let verdict = match self.http.reqwest().get(token_url).send().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let reason = format!("request failed: {e}");
                    tracing::warn!(provider = %name, %reason, "identity provider probe failed");
                    Err(reason)
                }
            };
            reachability.record(verdict.clone());
            verdict
        };
        reachability
            .check(name, probe)
            .await
            .map_err(|reason| unavailable_for_login(provider, reason))
    }

    /// Code exchange and identity for either protocol.
    pub(super) async fn login(
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
            Backend::OAuth2 {
                client,
                api,
                reachability,
            } => {
                let response = client
                    .exchange_code(code)
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| login_token_error(name, &e))?;
                reachability.record(Ok(()));
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

    /// The refresh itself; runs on its own task under [`Flights`](super::flight::Flights).
    pub(super) async fn refresh_now(
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
            Backend::OAuth2 { client, api, .. } => {
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
            identity_headers: Default::default(),
        })
    }
}

enum UserinfoError {
    Unreachable(String),
    Protocol(String),
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

fn unavailable_for_login(provider: &Provider, reason: String) -> LoginError {
    LoginError::ProviderUnavailable {
        provider: provider.config.name.clone(),
        reason,
    }
}
