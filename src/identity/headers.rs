//! Identity headers for the upstream app: who the gateway let through.
//!
//! ```
//! use portcullis::identity::{Identity, headers::{identity_headers, IdentityHeaderNames}};
//!
//! let user = Identity { subject: "42".into(), email: Some("a@example.com".into()), groups: vec!["x".into(), "y".into()], ..Identity::default() };
//! let headers = identity_headers(&user, &IdentityHeaderNames::default());
//! assert!(headers.iter().any(|(n, v)| n == "x-auth-request-groups" && v == "x,y"));
//! ```

use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::Identity;

/// Names of the identity headers (`identity_headers:` in gateway.yaml).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeaderNames {
    pub user: HeaderNameConfig,
    pub email: HeaderNameConfig,
    pub groups: HeaderNameConfig,
    pub preferred_username: HeaderNameConfig,
}

/// A header name checked when the config is read.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
pub struct HeaderNameConfig(pub HeaderName);

impl TryFrom<String> for HeaderNameConfig {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        HeaderName::try_from(value.as_str())
            .map(HeaderNameConfig)
            .map_err(|_| format!("{value:?} is not a valid HTTP header name"))
    }
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        let name = |s: &'static str| HeaderNameConfig(HeaderName::from_static(s));
        IdentityHeaderNames {
            user: name("x-auth-request-user"),
            email: name("x-auth-request-email"),
            groups: name("x-auth-request-groups"),
            preferred_username: name("x-auth-request-preferred-username"),
        }
    }
}

impl IdentityHeaderNames {
    /// Every configured name, for stripping client-sent copies before the guard runs.
    pub fn all(&self) -> [&HeaderName; 4] {
        [
            &self.user.0,
            &self.email.0,
            &self.groups.0,
            &self.preferred_username.0,
        ]
    }
}

/// The headers to add to an allowed request. Values that cannot be a header value (control
/// characters) are left out rather than mangled; groups are comma-joined.
pub fn identity_headers(
    identity: &Identity,
    names: &IdentityHeaderNames,
) -> Vec<(HeaderName, HeaderValue)> {
    let groups = (!identity.groups.is_empty()).then(|| identity.groups.join(","));
    let values = [
        (&names.user.0, Some(identity.subject.as_str())),
        (&names.email.0, identity.email.as_deref()),
        (&names.groups.0, groups.as_deref()),
        (
            &names.preferred_username.0,
            identity.preferred_username.as_deref(),
        ),
    ];
    values
        .into_iter()
        .filter_map(|(name, value)| Some((name.clone(), HeaderValue::from_str(value?).ok()?)))
        .collect()
}

/// A session's identity headers, built on its first allowed request and reused after: the
/// identity in a session never changes, and the names are fixed when the gateway starts.
/// Not part of the session's value (a copy starts empty, and equality ignores it).
#[derive(Default)]
pub struct CachedIdentityHeaders(OnceLock<Vec<(HeaderName, HeaderValue)>>);

impl CachedIdentityHeaders {
    pub fn get(
        &self,
        identity: &Identity,
        names: &IdentityHeaderNames,
    ) -> &[(HeaderName, HeaderValue)] {
        self.0.get_or_init(|| identity_headers(identity, names))
    }
}

impl Clone for CachedIdentityHeaders {
    fn clone(&self) -> Self {
        CachedIdentityHeaders::default()
    }
}

impl PartialEq for CachedIdentityHeaders {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for CachedIdentityHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CachedIdentityHeaders")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_carry_user_email_groups_and_username() {
        let user = Identity {
            subject: "sub-1".into(),
            email: Some("a@example.com".into()),
            preferred_username: Some("alice".into()),
            groups: vec!["g1".into(), "g2".into()],
            ..Identity::default()
        };
        let got: Vec<(String, String)> = identity_headers(&user, &IdentityHeaderNames::default())
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("x-auth-request-user", "sub-1"),
                ("x-auth-request-email", "a@example.com"),
                ("x-auth-request-groups", "g1,g2"),
                ("x-auth-request-preferred-username", "alice"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn missing_values_and_control_characters_are_left_out() {
        let user = Identity {
            subject: "bad\nvalue".into(),
            ..Identity::default()
        };
        assert!(identity_headers(&user, &IdentityHeaderNames::default()).is_empty());
    }

    #[test]
    fn invalid_configured_name_is_rejected() {
        assert!(HeaderNameConfig::try_from("bad name".to_owned()).is_err());
    }
}
