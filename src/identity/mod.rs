//! Who is asking: the [`Identity`] every login method produces and every policy decides on.

pub mod basic;
pub mod bitbucket;
pub mod github;
pub mod headers;
pub mod http_client;
pub mod oidc;
pub mod providers;
pub mod redirect;
pub mod rest_api;

use serde::{Deserialize, Serialize};

/// A logged-in user, as established by an identity provider or basic auth.
///
/// The same value is sealed into the session cookie, seen by CEL as `user`, turned into
/// identity headers and written into the capability token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Stable subject id at the provider (`sub`), or the basic-auth username.
    pub subject: String,
    pub email: Option<String>,
    /// Domain rules only ever match a verified email.
    #[serde(default)]
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Name of the configured provider that logged the user in (`basic` for basic auth).
    pub provider: String,
    /// Remaining provider claims, visible to CEL as `user.claims`.
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl Identity {
    /// Lower-cased domain of the email address, verified or not (policy checks `email_verified`).
    pub fn domain(&self) -> Option<String> {
        let email = self.email.as_deref()?;
        let (_, domain) = email.rsplit_once('@')?;
        (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_lowercased_and_taken_after_the_last_at() {
        let user = Identity {
            email: Some("Odd@Name@Example.COM".into()),
            ..Identity::default()
        };
        assert_eq!(user.domain().as_deref(), Some("example.com"));
    }

    #[test]
    fn missing_or_empty_domain_is_none() {
        let mut user = Identity::default();
        assert_eq!(user.domain(), None);
        user.email = Some("nobody@".into());
        assert_eq!(user.domain(), None);
    }
}
