//! Login and refresh errors, mapped to HTTP next to the type. Messages are safe to show a user:
//! they never contain tokens, codes or provider response bodies.

use http::StatusCode;

/// Why an ID token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTokenProblem {
    /// The token response carried no ID token.
    Missing,
    /// Not a JWT, or its payload is not a JSON object.
    Malformed,
    /// Signed with a key id the provider's JWKS does not list, even after re-fetching it.
    UnknownKey,
    Signature,
    Issuer,
    Audience,
    AuthorizedParty,
    Expired,
    IssuedInFuture,
    Nonce,
    /// A refreshed ID token names another subject.
    SubjectChanged,
    Other,
}

/// Why `/oauth2/start` or `/oauth2/callback` failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Several providers and none named: the server shows the chooser page.
    #[error("no provider chosen")]
    NoProviderChosen,
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    #[error("provider {provider} is unavailable: {reason}")]
    ProviderUnavailable { provider: String, reason: String },
    #[error("login state cookie missing or expired")]
    StateMissing,
    #[error("login state does not match")]
    StateMismatch,
    #[error("the provider returned no authorization code")]
    MissingCode,
    /// The provider sent the user back with an OAuth2 error code (e.g. `access_denied`).
    #[error("provider refused the login: {0}")]
    ProviderDenied(String),
    /// The token endpoint refused the code (expired, replayed, wrong PKCE verifier).
    #[error("authorization code rejected by {0}")]
    CodeRejected(String),
    #[error("ID token refused: {0:?}")]
    InvalidIdToken(IdTokenProblem),
    /// The provider answered something we cannot use (wrong shape, wrong subject in userinfo).
    #[error("unexpected answer from provider {provider}: {reason}")]
    ProviderProtocol { provider: String, reason: String },
    #[error("could not write the session: {0}")]
    Session(#[from] crate::session::SessionError),
}

impl LoginError {
    /// The status the server answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            LoginError::NoProviderChosen
            | LoginError::StateMissing
            | LoginError::StateMismatch
            | LoginError::MissingCode
            | LoginError::CodeRejected(_) => StatusCode::BAD_REQUEST,
            LoginError::UnknownProvider(_) => StatusCode::NOT_FOUND,
            LoginError::ProviderDenied(_) => StatusCode::FORBIDDEN,
            LoginError::InvalidIdToken(_) => StatusCode::UNAUTHORIZED,
            LoginError::ProviderUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            LoginError::ProviderProtocol { .. } => StatusCode::BAD_GATEWAY,
            LoginError::Session(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A sentence for the error page.
    pub fn user_message(&self) -> &'static str {
        match self {
            LoginError::NoProviderChosen => "Choose how to sign in.",
            LoginError::UnknownProvider(_) => "This sign-in method is not configured.",
            LoginError::ProviderUnavailable { .. } => {
                "The identity provider cannot be reached right now. Please try again in a moment."
            }
            LoginError::StateMissing | LoginError::StateMismatch | LoginError::CodeRejected(_) => {
                "This sign-in attempt expired or was already used. Please sign in again."
            }
            LoginError::MissingCode | LoginError::ProviderProtocol { .. } => {
                "The identity provider sent an unexpected answer. Please sign in again."
            }
            LoginError::ProviderDenied(_) => "The identity provider did not let you sign in.",
            LoginError::InvalidIdToken(_) => {
                "The identity provider's answer could not be verified."
            }
            LoginError::Session(_) => "Your session could not be saved.",
        }
    }
}

/// Why a session could not be refreshed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("session has no refresh token")]
    NoRefreshToken,
    #[error("session names unknown provider {0:?}")]
    UnknownProvider(String),
    /// The provider refused the refresh token (revoked, rotated away, expired).
    #[error("refresh token rejected by {0}")]
    Rejected(String),
    #[error("provider {provider} is unavailable: {reason}")]
    Unavailable { provider: String, reason: String },
    #[error("refreshed ID token refused: {0:?}")]
    InvalidIdToken(IdTokenProblem),
    #[error("unexpected answer from provider {provider}: {reason}")]
    ProviderProtocol { provider: String, reason: String },
}

impl RefreshError {
    /// Whether the session must end (login again). A provider that is merely unreachable
    /// leaves the session alive until its own expiry; the next request retries.
    pub fn ends_session(&self) -> bool {
        !matches!(self, RefreshError::Unavailable { .. })
    }
}
