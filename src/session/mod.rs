//! Sealed session cookies: who is logged in, carried by the browser, readable only by the gateway.
//!
//! A [`Session`] is serialised, sealed with XChaCha20-Poly1305 under a key derived by
//! HKDF-SHA256 from the configured secret, and written as one cookie or, past ~4 KB, as numbered
//! chunks. The first secret seals; every configured secret opens (rotation). A tampered,
//! truncated, foreign or expired cookie opens to `None`, which the guard treats as "no session".
//!
//! ```
//! use portcullis::session::{Session, SessionCodec, SessionConfig};
//! use portcullis::identity::Identity;
//!
//! let config = SessionConfig { secrets: vec!["0123456789abcdef0123456789abcdef".into()], ..SessionConfig::default() };
//! let codec = SessionCodec::new(&config).unwrap();
//! let session = codec.new_session(Identity { subject: "alice".into(), ..Identity::default() }, None);
//! let set_cookies = codec.seal(&session, true, &http::HeaderMap::new()).unwrap();
//!
//! let mut request = http::HeaderMap::new();
//! for value in &set_cookies {
//!     let pair = value.to_str().unwrap().split(';').next().unwrap().to_owned();
//!     request.append(http::header::COOKIE, pair.parse().unwrap());
//! }
//! assert_eq!(codec.open(&request).unwrap().identity.subject, "alice");
//! ```

mod config;
mod cookies;
mod opened;
mod seal;

pub use config::SessionConfig;
pub(crate) use cookies::pairs as cookie_pairs;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::identity::Identity;
use crate::identity::headers::CachedIdentityHeaders;
use cookies::{CookieAttrs, Jar};
use opened::OpenedSessions;
use seal::Sealer;

/// HKDF `info` for session cookies; other sealed values use their own purpose.
const SESSION_PURPOSE: &str = "session";

/// A logged-in browser session, sealed into the cookie.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Random id; the capability cache and the refresh single-flight are keyed by it.
    pub id: [u8; 16],
    pub identity: Identity,
    /// Unix seconds after which the cookie no longer opens.
    pub expires_at: u64,
    /// Tokens from an OAuth2/OIDC login; `None` for basic auth.
    pub tokens: Option<ProviderTokens>,
    /// The identity's upstream headers, kept while the session is in memory.
    #[serde(skip)]
    pub identity_headers: CachedIdentityHeaders,
}

impl Session {
    /// How long until the cookie no longer opens (zero once it has expired).
    pub fn remaining(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.expires_at.saturating_sub(now_secs()))
    }
}

/// Tokens the provider issued; kept only inside the sealed cookie.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// Unix seconds; `None` when the provider did not say.
    pub access_expires_at: Option<u64>,
}

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderTokens")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .field("access_expires_at", &self.access_expires_at)
            .finish()
    }
}

/// Why a session could not be configured or sealed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session.secret_file {path}: {source}; point it at a readable file holding the secret")]
    SecretFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "session secret #{index} is {len} bytes; use at least 32 random bytes (e.g. `openssl rand -base64 48`)"
    )]
    WeakSecret { index: usize, len: usize },
    #[error(
        "session.cookie_name {0:?} is not a valid cookie name; use letters, digits, '_' or '-'"
    )]
    CookieName(String),
    #[error(
        "the session is {bytes} bytes sealed, more than the {max} bytes browsers keep in cookies; \
         map fewer groups or claims (groups_claim) for this provider"
    )]
    TooLarge { bytes: usize, max: usize },
    #[error("could not seal the session: {0}")]
    Seal(&'static str),
}

/// Seals, opens and clears session cookies (and other short-lived sealed cookies).
#[derive(Clone)]
pub struct SessionCodec {
    sealer: Sealer,
    /// Shared by clones of the codec.
    opened: std::sync::Arc<OpenedSessions>,
    cookie_name: String,
    ttl_secs: u64,
    refresh_margin_secs: u64,
}

impl std::fmt::Debug for SessionCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCodec")
            .field("cookie_name", &self.cookie_name)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl SessionCodec {
    /// Derives the keys; with no secret configured, generates an ephemeral one and warns.
    pub fn new(config: &SessionConfig) -> Result<SessionCodec, SessionError> {
        if !cookies::valid_name(&config.cookie_name) {
            return Err(SessionError::CookieName(config.cookie_name.clone()));
        }
        let mut secrets: Vec<Vec<u8>> = config
            .secrets
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if let Some(path) = &config.secret_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| SessionError::SecretFile {
                    path: path.display().to_string(),
                    source,
                })?;
            secrets.push(text.trim().as_bytes().to_vec());
        }
        for (index, secret) in secrets.iter().enumerate() {
            if secret.len() < 32 {
                return Err(SessionError::WeakSecret {
                    index,
                    len: secret.len(),
                });
            }
        }
        if secrets.is_empty() {
            tracing::warn!(
                "no session secret configured: using an ephemeral one, sessions end when the gateway restarts"
            );
            let mut secret = vec![0u8; 32];
            rand::fill(&mut secret[..]);
            secrets.push(secret);
        }
        Ok(SessionCodec {
            sealer: Sealer::new(&secrets),
            opened: std::sync::Arc::default(),
            cookie_name: config.cookie_name.clone(),
            ttl_secs: config.ttl.as_secs(),
            refresh_margin_secs: config.refresh_margin.as_secs(),
        })
    }

    /// Name of the session cookie (chunks are `NAME_0`, `NAME_1`, ...).
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// A fresh session with a random id, expiring after the configured ttl.
    pub fn new_session(&self, identity: Identity, tokens: Option<ProviderTokens>) -> Session {
        let mut id = [0u8; 16];
        rand::fill(&mut id);
        Session {
            id,
            identity,
            expires_at: now_secs() + self.ttl_secs,
            tokens,
            identity_headers: CachedIdentityHeaders::default(),
        }
    }

    /// Whether the access token is within the refresh margin of expiry and can be refreshed.
    pub fn needs_refresh(&self, session: &Session) -> bool {
        let Some(tokens) = &session.tokens else {
            return false;
        };
        match (tokens.refresh_token.as_ref(), tokens.access_expires_at) {
            (Some(_), Some(at)) => now_secs() + self.refresh_margin_secs >= at,
            _ => false,
        }
    }

    /// The session in the request's cookies, if one opens and has not expired. Shared: a
    /// session opened before is handed out again without a copy.
    pub fn open(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        let jar = Jar::from_headers(headers);
        let sealed = jar.assemble(&self.cookie_name)?;
        let now = now_secs();
        if let Some(session) = self.opened.get(&sealed) {
            return (session.expires_at > now).then_some(session);
        }
        let session: Session = self.open_value(SESSION_PURPOSE, &self.cookie_name, &sealed)?;
        if session.expires_at <= now {
            return None;
        }
        let session = Arc::new(session);
        self.opened.remember(&sealed, &session);
        Some(session)
    }

    /// `Set-Cookie` values writing the session, chunked past ~4 KB, clearing stale chunks.
    pub fn seal(
        &self,
        session: &Session,
        secure: bool,
        request_headers: &HeaderMap,
    ) -> Result<Vec<HeaderValue>, SessionError> {
        let sealed = self.seal_value(SESSION_PURPOSE, &self.cookie_name, session)?;
        let max = cookies::CHUNK_LEN * cookies::MAX_CHUNKS;
        if sealed.len() > max {
            return Err(SessionError::TooLarge {
                bytes: sealed.len(),
                max,
            });
        }
        let max_age = session.expires_at.saturating_sub(now_secs());
        let attrs = CookieAttrs {
            secure,
            max_age: Some(max_age),
        };
        let jar = Jar::from_headers(request_headers);
        Ok(cookies::write_chunked(
            &self.cookie_name,
            &sealed,
            &attrs,
            &jar,
        ))
    }

    /// `Set-Cookie` values removing the session cookie and every chunk the request carries.
    pub fn clear(&self, request_headers: &HeaderMap) -> Vec<HeaderValue> {
        let jar = Jar::from_headers(request_headers);
        cookies::clear_all(&self.cookie_name, &jar)
    }

    /// Keys for `purpose` (say, signing the login form's CSRF token) derived from every session
    /// secret, the sealing one first: replicas that share the secret derive the same keys.
    pub fn derived_keys(&self, purpose: &str) -> Vec<[u8; 32]> {
        self.sealer.keys(purpose)
    }

    /// Seals any value for `purpose` (a distinct key) bound to the cookie `name`.
    pub(crate) fn seal_value<T: Serialize>(
        &self,
        purpose: &str,
        name: &str,
        value: &T,
    ) -> Result<String, SessionError> {
        let plain =
            serde_json::to_vec(value).map_err(|_| SessionError::Seal("serialisation failed"))?;
        self.sealer.seal(purpose, name.as_bytes(), &plain)
    }

    /// Opens a value sealed by [`seal_value`](Self::seal_value) with the same purpose and name.
    pub(crate) fn open_value<T: DeserializeOwned>(
        &self,
        purpose: &str,
        name: &str,
        sealed: &[u8],
    ) -> Option<T> {
        let plain = self.sealer.open(purpose, name.as_bytes(), sealed)?;
        serde_json::from_slice(&plain).ok()
    }

    /// A single short-lived sealed cookie (not chunked), e.g. the login state.
    pub(crate) fn seal_cookie<T: Serialize>(
        &self,
        purpose: &str,
        name: &str,
        value: &T,
        secure: bool,
        max_age: u64,
    ) -> Result<HeaderValue, SessionError> {
        let sealed = self.seal_value(purpose, name, value)?;
        cookies::set_cookie(
            name,
            &sealed,
            &CookieAttrs {
                secure,
                max_age: Some(max_age),
            },
        )
        .ok_or(SessionError::Seal("cookie value not representable"))
    }

    /// Opens a cookie written by [`seal_cookie`](Self::seal_cookie).
    pub(crate) fn open_cookie<T: DeserializeOwned>(
        &self,
        purpose: &str,
        name: &str,
        headers: &HeaderMap,
    ) -> Option<T> {
        let jar = Jar::from_headers(headers);
        let sealed = jar.get(name)?;
        self.open_value(purpose, name, sealed)
    }

    /// A `Set-Cookie` value deleting one cookie.
    pub(crate) fn expire_cookie(name: &str) -> HeaderValue {
        cookies::expire(name)
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
