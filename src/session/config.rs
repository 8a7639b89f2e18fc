//! `session:` in gateway.yaml.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `session:` in gateway.yaml.
///
/// ```yaml
/// session:
///   cookie_name: _portcullis
///   secrets: ["${SESSION_SECRET}", "${OLD_SESSION_SECRET}"]   # first seals, all open
///   ttl: 12h
///   refresh_margin: 60s
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Cookie name; chunks are `NAME_0`, `NAME_1`, ...
    pub cookie_name: String,
    /// Secrets (already `${ENV}`-expanded), at least 32 bytes each. The first seals; all open.
    pub secrets: Vec<String>,
    /// A file holding one more secret (trimmed), opened after `secrets`; it seals when `secrets`
    /// is empty.
    pub secret_file: Option<PathBuf>,
    /// How long a login lasts: `45s`, `30m`, `12h`, `7d` or plain seconds.
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    /// Refresh the access token this long before it expires.
    #[serde(deserialize_with = "duration")]
    pub refresh_margin: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie_name: "_portcullis".into(),
            secrets: Vec::new(),
            secret_file: None,
            ttl: Duration::from_secs(12 * 3600),
            refresh_margin: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("cookie_name", &self.cookie_name)
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("secret_file", &self.secret_file)
            .field("ttl", &self.ttl)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

/// Parses `90`, `90s`, `15m`, `12h` or `7d`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(factor).map(Duration::from_secs)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
        Raw::Text(text) => parse_duration(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: use a number with s, m, h or d (e.g. 12h)"
            ))
        }),
    }
}
