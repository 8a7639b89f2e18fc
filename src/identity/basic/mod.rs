//! Basic auth: a hot-reloaded credentials file of argon2id hashes, an optional demo master
//! password, optional PAM, a CSRF-protected login form and failed-login rate limits.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use portcullis::identity::basic::{BasicAuth, BasicAuthConfig};
//!
//! let config = BasicAuthConfig {
//!     credentials_file: Some("users.yaml".into()),
//!     ..BasicAuthConfig::default()
//! };
//! let basic = BasicAuth::load(&config, Vec::new())?;
//! let _watch = basic.watch()?; // keep alive: reloads users.yaml on save
//! let user = basic
//!     .authenticate("alice", "correct horse", "192.0.2.1".parse()?)
//!     .await?;
//! assert_eq!(user.provider, "basic");
//! # Ok(()) }
//! ```
//!
//! Each attempt costs exactly one password check, whoever the user: a user of the file is
//! checked against their hash, another name against the master password (if set) or PAM (if
//! configured), and otherwise against a dummy hash with the file's parameters, so timing does not
//! tell which usernames exist. Checks run in `spawn_blocking` behind a semaphore
//! (`max_concurrent_hashes`); argon2 compares in constant time. Passwords and failed usernames
//! (people type passwords into the username field) are never logged.
//!
//! This module counts `portcullis_logins_total{provider="basic"}` and
//! `portcullis_rate_limited_total`; the server should not count basic logins again.

mod config;
mod credentials;
mod csrf;
#[cfg(feature = "pam")]
mod pam;
mod ratelimit;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use argon2::password_hash::{PasswordVerifier, phc::PasswordHash};
use argon2::{Argon2, Params};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

pub use self::config::{BasicAuthConfig, PamConfig, RateLimitConfig};
pub use self::credentials::{CredentialIssue, CredentialsError};
pub use self::csrf::{
    CSRF_COOKIE, CSRF_COOKIE_SECURE, CSRF_FIELD, CSRF_KEY_PURPOSE, CSRF_TTL, CsrfError, CsrfToken,
};
pub use self::ratelimit::{Clock, SystemClock};

use self::credentials::Credentials;
use self::csrf::Csrf;
use self::ratelimit::RateLimiter;
use crate::identity::Identity;
use crate::telemetry::{LOGINS_TOTAL, RATE_LIMITED_TOTAL};
use crate::watch::{DirWatch, watch_dir};

/// `Identity::provider` of basic-auth users.
pub const PROVIDER: &str = "basic";

const MAX_USERNAME_LEN: usize = 128;
/// Longest wait for a free hashing slot before answering 503.
const HASH_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(250);

/// Why a login attempt failed. [`AuthError::status`] maps it to HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password (never says which).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failures for this username or client; try again after `retry_after`.
    #[error("too many failed attempts; try again in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// The gateway could not check the password now (overloaded, PAM failure).
    #[error("sign-in is unavailable right now")]
    Unavailable,
}

impl AuthError {
    /// 401, 429 (send `Retry-After: retry_after_secs()`) or 503.
    pub fn status(&self) -> http::StatusCode {
        match self {
            AuthError::InvalidCredentials => http::StatusCode::UNAUTHORIZED,
            AuthError::RateLimited { .. } => http::StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whole seconds for a `Retry-After` header (at least 1), when rate limited.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::RateLimited { retry_after } => {
                let whole = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Some(whole.max(1))
            }
            _ => None,
        }
    }

    /// The `result` label of `portcullis_logins_total`.
    pub fn metric_result(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials => "invalid",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::Unavailable => "unavailable",
        }
    }
}

/// Why basic auth could not be set up or reloaded.
#[derive(Debug, thiserror::Error)]
pub enum BasicError {
    #[error("basic_auth: {0}")]
    Config(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot hash: {0}")]
    Hash(String),
}

/// Why `portcullis hash-password` could not hash.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password is empty")]
    Empty,
    #[error("argon2 failed: {0}")]
    Argon2(String),
}

/// Hashes a password for the credentials file: argon2id, default parameters (19 MiB, t=2, p=1),
/// random salt, PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    credentials::hash_with(password.as_bytes(), Params::default())
        .map_err(|err| HashError::Argon2(err.to_string()))
}

/// A loaded credentials file and the dummy hash unknown usernames are checked against.
struct Loaded {
    credentials: Credentials,
    dummy_hash: String,
}

/// What one attempt is checked against.
enum Check {
    Hash {
        phc: String,
        identity: Identity,
    },
    Dummy {
        phc: String,
    },
    #[cfg(feature = "pam")]
    Pam {
        service: String,
        username: String,
    },
}

/// Basic-auth logins; share it as `Arc<BasicAuth>`.
pub struct BasicAuth {
    credentials_file: Option<PathBuf>,
    allow_header: bool,
    loaded: ArcSwap<Loaded>,
    /// SHA-256 of the file content last seen (good or bad), so unrelated changes in the
    /// directory neither reload nor re-log.
    last_seen: Mutex<Option<Vec<u8>>>,
    master_hash: Option<String>,
    #[cfg_attr(not(feature = "pam"), allow(dead_code))]
    pam_service: Option<String>,
    params: Params,
    limiter: RateLimiter,
    hashes: Arc<Semaphore>,
    csrf: Csrf,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("credentials_file", &self.credentials_file)
            .field("users", &self.loaded.load().credentials.users.len())
            .field("master_password", &self.master_hash.is_some())
            .field("pam_service", &self.pam_service)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Reads the credentials file and prepares the login checks. Refuses a config with no way
    /// to log in, a `pam` section without the `pam` feature, and any invalid credentials entry.
    /// `csrf_keys` sign the login form (the first) and verify it (all): derive them from the
    /// session secrets ([`CSRF_KEY_PURPOSE`]) so replicas accept each other's forms; with none,
    /// a random key for this process.
    pub fn load(
        config: &BasicAuthConfig,
        csrf_keys: Vec<[u8; 32]>,
    ) -> Result<Arc<BasicAuth>, BasicError> {
        BasicAuth::load_with(config, Arc::new(SystemClock), Params::default(), csrf_keys)
    }

    /// [`load`](Self::load) with a custom clock (tests) and argon2 parameters for the
    /// in-memory master-password hash and the dummy hash when the file has no users.
    pub fn load_with(
        config: &BasicAuthConfig,
        clock: Arc<dyn Clock>,
        params: Params,
        csrf_keys: Vec<[u8; 32]>,
    ) -> Result<Arc<BasicAuth>, BasicError> {
        config.rate_limit.validate().map_err(BasicError::Config)?;
        if config.credentials_file.is_none()
            && config.master_password.is_none()
            && config.pam.is_none()
        {
            return Err(BasicError::Config(
                "set credentials_file, master_password or pam (otherwise nobody can log in)".into(),
            ));
        }
        if config.pam.is_some() && !cfg!(feature = "pam") {
            return Err(BasicError::Config(
                "`pam` needs portcullis built with `--features pam`".into(),
            ));
        }
        if config.max_concurrent_hashes == Some(0) {
            return Err(BasicError::Config(
                "max_concurrent_hashes must be at least 1".into(),
            ));
        }
        let (credentials, digest) = match &config.credentials_file {
            Some(path) => {
                let (text, digest) = read(path)?;
                (Credentials::parse(path, &text)?, Some(digest))
            }
            None => (Credentials::default(), None),
        };
        let master_hash = match &config.master_password {
            Some(master) if master.is_empty() => {
                return Err(BasicError::Config(
                    "master_password is empty (is its environment variable set?)".into(),
                ));
            }
            Some(master) => {
                tracing::warn!(
                    "basic_auth.master_password is set: any username not in the credentials file \
                     logs in with it; use this only for demos"
                );
                let params = credentials.typical_params().unwrap_or(params.clone());
                Some(
                    credentials::hash_with(master.as_bytes(), params)
                        .map_err(|err| BasicError::Hash(err.to_string()))?,
                )
            }
            None => None,
        };
        let loaded = prepare(credentials, &params)?;
        let permits = config.max_concurrent_hashes.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        tracing::info!(
            users = loaded.credentials.users.len(),
            file = ?config.credentials_file,
            "basic auth loaded"
        );
        Ok(Arc::new(BasicAuth {
            credentials_file: config.credentials_file.clone(),
            allow_header: config.allow_header,
            loaded: ArcSwap::from_pointee(loaded),
            last_seen: Mutex::new(digest),
            master_hash,
            pam_service: config.pam.as_ref().map(|pam| pam.service.clone()),
            params,
            limiter: RateLimiter::new(&config.rate_limit, clock),
            hashes: Arc::new(Semaphore::new(permits)),
            csrf: Csrf::new(csrf_keys),
        }))
    }

    /// Whether API clients may send `Authorization: Basic` (`basic_auth.allow_header`).
    pub fn allow_header(&self) -> bool {
        self.allow_header
    }

    /// Re-reads the credentials file. `Ok(true)` when new users are serving, `Ok(false)` when
    /// the content did not change; on error the last good file keeps serving.
    pub fn reload(&self) -> Result<bool, BasicError> {
        let Some(path) = &self.credentials_file else {
            return Ok(false);
        };
        let (text, digest) = read(path)?;
        {
            let mut last = self.last_seen.lock();
            if last.as_deref() == Some(digest.as_slice()) {
                return Ok(false);
            }
            *last = Some(digest);
        }
        let loaded = prepare(Credentials::parse(path, &text)?, &self.params)?;
        let users = loaded.credentials.users.len();
        self.loaded.store(Arc::new(loaded));
        tracing::info!(users, file = %path.display(), "credentials file reloaded");
        Ok(true)
    }

    /// Watches the credentials file's directory and reloads on change; a broken edit is logged
    /// and the last good file keeps serving. `None` without a credentials file. Keep the
    /// returned watch alive.
    pub fn watch(self: &Arc<Self>) -> notify::Result<Option<DirWatch>> {
        let Some(path) = &self.credentials_file else {
            return Ok(None);
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let this: Weak<BasicAuth> = Arc::downgrade(self);
        watch_dir(&dir, RELOAD_DEBOUNCE, move || {
            let Some(basic) = this.upgrade() else { return };
            if let Err(err) = basic.reload() {
                tracing::error!(
                    error = %err,
                    "credentials file not reloaded; the last good version keeps serving"
                );
            }
        })
        .map(Some)
    }

    /// Checks one login. Refused without a password check while the username or client is rate
    /// limited; otherwise exactly one check runs (see the module docs).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        client_ip: IpAddr,
    ) -> Result<Identity, AuthError> {
        let result = self.attempt(username, password, client_ip).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(err) => err.metric_result(),
        };
        metrics::counter!(LOGINS_TOTAL, "provider" => PROVIDER, "result" => label).increment(1);
        result
    }

    async fn attempt(
        &self,
        username: &str,
        password: &str,
        client_ip: IpAddr,
    ) -> Result<Identity, AuthError> {
        if let Err((kind, retry_after)) = self.limiter.check(username, client_ip) {
            metrics::counter!(RATE_LIMITED_TOTAL, "kind" => kind.label()).increment(1);
            tracing::warn!(
                kind = kind.label(),
                %client_ip,
                retry_after_secs = retry_after.as_secs(),
                "basic login refused: too many failures"
            );
            return Err(AuthError::RateLimited { retry_after });
        }
        let check = self.plan(username);
        let permit = tokio::time::timeout(HASH_QUEUE_TIMEOUT, self.hashes.clone().acquire_owned())
            .await
            .map_err(|_| {
                tracing::warn!("basic login: no free hashing slot; answering 503");
                AuthError::Unavailable
            })?
            .map_err(|_| AuthError::Unavailable)?;
        let password = password.to_owned();
        let verdict = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run_check(check, &password)
        })
        .await
        .map_err(|_| AuthError::Unavailable)??;
        match verdict {
            Some(identity) => {
                self.limiter.record_success(username);
                tracing::info!(subject = %identity.subject, %client_ip, "basic login succeeded");
                Ok(identity)
            }
            None => {
                self.limiter.record_failure(username, client_ip);
                tracing::info!(%client_ip, "basic login failed: invalid username or password");
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    fn plan(&self, username: &str) -> Check {
        let loaded = self.loaded.load();
        let dummy = || Check::Dummy {
            phc: loaded.dummy_hash.clone(),
        };
        if check_username(username).is_err() {
            return dummy();
        }
        if let Some(user) = loaded.credentials.users.get(username) {
            return Check::Hash {
                phc: user.hash.clone(),
                identity: user.identity(username),
            };
        }
        #[cfg(feature = "pam")]
        if let Some(service) = &self.pam_service {
            return Check::Pam {
                service: service.clone(),
                username: username.to_owned(),
            };
        }
        if let Some(master) = &self.master_hash {
            return Check::Hash {
                phc: master.clone(),
                identity: bare_identity(username),
            };
        }
        dummy()
    }

    /// A CSRF token pair for the login page: send `set_cookie` as a `Set-Cookie` header and put
    /// `form_token` in `LoginPage::csrf_token`. `secure`: the page is served over HTTPS.
    pub fn csrf_token(&self, request_headers: &http::HeaderMap, secure: bool) -> CsrfToken {
        let cookies = csrf::cookie_values(request_headers);
        self.csrf.issue(&cookies, secure, unix_now())
    }

    /// Checks a login POST: the request's CSRF cookie against the form's `csrf_token` field.
    /// Run it before [`authenticate`](Self::authenticate); on error answer 403 and re-render the
    /// form ("the form expired, please try again").
    pub fn check_csrf(
        &self,
        request_headers: &http::HeaderMap,
        form_token: Option<&str>,
    ) -> Result<(), CsrfError> {
        let cookies = csrf::cookie_values(request_headers);
        self.csrf.check(&cookies, form_token, unix_now())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read(path: &Path) -> Result<(String, Vec<u8>), CredentialsError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let digest = Sha256::digest(text.as_bytes()).to_vec();
    Ok((text, digest))
}

fn prepare(credentials: Credentials, fallback: &Params) -> Result<Loaded, BasicError> {
    let params = credentials
        .typical_params()
        .unwrap_or_else(|| fallback.clone());
    let dummy_password: [u8; 32] = rand::random();
    let dummy_hash = credentials::hash_with(&dummy_password, params)
        .map_err(|err| BasicError::Hash(err.to_string()))?;
    Ok(Loaded {
        credentials,
        dummy_hash,
    })
}

fn run_check(check: Check, password: &str) -> Result<Option<Identity>, AuthError> {
    match check {
        Check::Hash { phc, identity } => Ok(verify(&phc, password).then_some(identity)),
        Check::Dummy { phc } => {
            verify(&phc, password);
            Ok(None)
        }
        #[cfg(feature = "pam")]
        Check::Pam { service, username } => {
            match pam::authenticate(&service, &username, password) {
                Ok(true) => Ok(Some(bare_identity(&username))),
                Ok(false) => Ok(None),
                Err(err) => {
                    tracing::error!(service = %service, error = %err, "PAM could not check a login");
                    Err(AuthError::Unavailable)
                }
            }
        }
    }
}

/// One argon2 verification; the output comparison is constant-time.
fn verify(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The identity of a user known only by name (master password, PAM).
fn bare_identity(username: &str) -> Identity {
    Identity {
        subject: username.to_owned(),
        preferred_username: Some(username.to_owned()),
        provider: PROVIDER.to_owned(),
        ..Identity::default()
    }
}

/// Usernames are 1–128 characters without control characters or surrounding spaces.
pub(crate) fn check_username(username: &str) -> Result<(), &'static str> {
    if username.is_empty() || username.chars().count() > MAX_USERNAME_LEN {
        return Err("must be 1 to 128 characters long");
    }
    if username.chars().any(char::is_control) || username.trim() != username {
        return Err("must not contain control characters or surrounding spaces");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
