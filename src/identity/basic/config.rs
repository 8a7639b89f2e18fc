//! `basic_auth:` in gateway.yaml.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `basic_auth:` in gateway.yaml.
///
/// ```yaml
/// basic_auth:
///   credentials_file: /etc/portcullis/users.yaml   # hot-reloaded
///   # master_password: ${DEMO_PASSWORD}          # demos only: any username, logs a warning
///   allow_header: true                              # `Authorization: Basic` on routes without `basic_header:`
///   max_concurrent_hashes: 2                        # default: number of CPUs
///   rate_limit:
///     max_failures: 5          # failures per window per username …
///     max_failures_per_ip: 5   # … and per client IP (IPv6 by /64)
///     window_seconds: 60
///     max_backoff_seconds: 900
///   # pam: { service: portcullis }                 # with the `pam` cargo feature
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// YAML file of users with argon2id hashes; see [`super::BasicAuth`].
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Demo mode: this password logs in any username not in the credentials file. Comes from an
    /// env var (`${ENV}` expanded by the config loader); never logged.
    #[serde(default)]
    pub master_password: Option<String>,
    /// Accept `Authorization: Basic` headers (API clients) on routes that do not set
    /// `basic_header:` themselves; a route's `basic_header: true | false` overrides this.
    #[serde(default)]
    pub allow_header: bool,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Password hashes computed at once; more attempts wait. Default: available CPUs.
    #[serde(default)]
    pub max_concurrent_hashes: Option<usize>,
    /// Authenticate system accounts through PAM (cargo feature `pam`).
    #[serde(default)]
    pub pam: Option<PamConfig>,
}

impl fmt::Debug for BasicAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuthConfig")
            .field("credentials_file", &self.credentials_file)
            .field(
                "master_password",
                &self.master_password.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_header", &self.allow_header)
            .field("rate_limit", &self.rate_limit)
            .field("max_concurrent_hashes", &self.max_concurrent_hashes)
            .field("pam", &self.pam)
            .finish()
    }
}

/// Failed-login limits.
///
/// After `max_failures` failures within `window_seconds` for one username (or
/// `max_failures_per_ip` for one client IP; IPv6 counted per /64), further attempts for that key
/// are refused with 429 for one window; each further lockout doubles the wait, up to
/// `max_backoff_seconds`. A key with no failure for `max_backoff_seconds` starts over. A
/// successful login clears its username's count (not its IP's).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default = "default_failures")]
    pub max_failures: u32,
    #[serde(default = "default_failures")]
    pub max_failures_per_ip: u32,
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_seconds: u64,
}

fn default_failures() -> u32 {
    5
}

fn default_window() -> u64 {
    60
}

fn default_max_backoff() -> u64 {
    900
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_failures: default_failures(),
            max_failures_per_ip: default_failures(),
            window_seconds: default_window(),
            max_backoff_seconds: default_max_backoff(),
        }
    }
}

impl RateLimitConfig {
    pub(crate) fn window(&self) -> Duration {
        Duration::from_secs(self.window_seconds)
    }

    pub(crate) fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.max_backoff_seconds)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_failures == 0 || self.max_failures_per_ip == 0 {
            return Err(
                "basic_auth.rate_limit: max_failures and max_failures_per_ip must be at least 1"
                    .into(),
            );
        }
        if self.window_seconds == 0 {
            return Err("basic_auth.rate_limit.window_seconds must be at least 1".into());
        }
        if self.max_backoff_seconds < self.window_seconds {
            return Err(
                "basic_auth.rate_limit.max_backoff_seconds must be at least window_seconds".into(),
            );
        }
        Ok(())
    }
}

/// `basic_auth.pam`: the PAM service (a file in /etc/pam.d) that checks system accounts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PamConfig {
    pub service: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_password_is_redacted_in_debug() {
        let config = BasicAuthConfig {
            master_password: Some("hunter2-master".into()),
            ..BasicAuthConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2-master"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn section_parses_with_defaults_and_refuses_unknown_keys() {
        let config: BasicAuthConfig =
            serde_saphyr::from_str("credentials_file: users.yaml\nallow_header: true\n").unwrap();
        assert_eq!(config.rate_limit, RateLimitConfig::default());
        assert!(config.allow_header);
        assert!(serde_saphyr::from_str::<BasicAuthConfig>("users_file: x\n").is_err());
    }
}
