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

/// Names of the identity headers, and whether the access token goes upstream too
/// (`identity_headers:` in gateway.yaml).
///
/// ```yaml
/// identity_headers:
///   pass_access_token: true                    # off by default
///   access_token: X-Auth-Request-Access-Token  # the default name
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeaderNames {
    pub user: HeaderNameConfig,
    pub email: HeaderNameConfig,
    pub groups: HeaderNameConfig,
    pub preferred_username: HeaderNameConfig,
    /// Where an OIDC/OAuth2 session's current access token goes when `pass_access_token` is on.
    pub access_token: HeaderNameConfig,
    /// Passes the session's access token upstream (oauth2-proxy's `pass_access_token`).
    pub pass_access_token: bool,
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
            access_token: name("x-auth-request-access-token"),
            pass_access_token: false,
        }
    }
}

impl IdentityHeaderNames {
    /// Every configured name, for stripping client-sent copies before the guard runs. The
    /// access-token name is among them whether or not the token is passed: a client never
    /// sends it.
    pub fn all(&self) -> [&HeaderName; 5] {
        [
            &self.user.0,
            &self.email.0,
            &self.groups.0,
            &self.preferred_username.0,
            &self.access_token.0,
        ]
    }
}

/// The headers to add to an allowed request. Values that cannot be a header value (control
/// characters) are left out rather than mangled; groups are comma-joined. Non-ASCII text (a
/// name like `José`, a group like `Développeurs`) goes as its UTF-8 bytes, as other proxies
/// send it, rather than losing the whole header.
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
        .filter_map(|(name, value)| {
            Some((
                name.clone(),
                HeaderValue::from_bytes(value?.as_bytes()).ok()?,
            ))
        })
        .collect()
}

/// The access-token header for an allowed request: only when `pass_access_token` is on and the
/// session holds a token (basic-auth sessions have none). The value is marked sensitive, so it
/// is never indexed by HPACK nor printed by `Debug`.
pub fn access_token_header(
    access_token: Option<&str>,
    names: &IdentityHeaderNames,
) -> Option<(HeaderName, HeaderValue)> {
    if !names.pass_access_token {
        return None;
    }
    let mut value = HeaderValue::from_str(access_token.filter(|t| !t.is_empty())?).ok()?;
    value.set_sensitive(true);
    Some((names.access_token.0.clone(), value))
}

/// A session's upstream headers (identity, and the access token when passed), built on its
/// first allowed request and reused after: a session's identity and tokens never change (a
/// refresh makes a new session), and the names are fixed when the gateway starts.
/// Not part of the session's value (a copy starts empty, and equality ignores it).
#[derive(Default)]
pub struct CachedIdentityHeaders(OnceLock<Vec<(HeaderName, HeaderValue)>>);

impl CachedIdentityHeaders {
    pub fn get(
        &self,
        identity: &Identity,
        access_token: Option<&str>,
        names: &IdentityHeaderNames,
    ) -> &[(HeaderName, HeaderValue)] {
        self.0.get_or_init(|| {
            let mut headers = identity_headers(identity, names);
            headers.extend(access_token_header(access_token, names));
            headers
        })
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
    fn non_ascii_values_go_as_utf8_bytes() {
        let user = Identity {
            subject: "josé".into(),
            groups: vec!["Développeurs".into(), "ops".into()],
            ..Identity::default()
        };
        let headers = identity_headers(&user, &IdentityHeaderNames::default());
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| std::str::from_utf8(v.as_bytes()).unwrap())
        };
        assert_eq!(value("x-auth-request-user"), Some("josé"));
        assert_eq!(value("x-auth-request-groups"), Some("Développeurs,ops"));
    }

    #[test]
    fn access_token_is_passed_only_when_switched_on_and_present() {
        let user = Identity {
            subject: "sub-1".into(),
            ..Identity::default()
        };
        let on = IdentityHeaderNames {
            pass_access_token: true,
            ..IdentityHeaderNames::default()
        };
        let cases = [
            ("off", IdentityHeaderNames::default(), Some("tok"), None),
            ("on", on.clone(), Some("tok"), Some("tok")),
            ("no token (basic auth)", on.clone(), None, None),
            ("empty token", on.clone(), Some(""), None),
            ("unsendable token", on.clone(), Some("a\nb"), None),
        ];
        for (name, names, token, want) in cases {
            let headers = CachedIdentityHeaders::default()
                .get(&user, token, &names)
                .to_vec();
            let got = headers
                .iter()
                .find(|(n, _)| n == "x-auth-request-access-token")
                .map(|(_, v)| v.to_str().unwrap().to_owned());
            assert_eq!(got.as_deref(), want, "{name}");
            assert!(headers.iter().any(|(n, _)| n == "x-auth-request-user"));
        }
        let (_, value) = access_token_header(Some("tok"), &on).unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("tok"));
    }

    #[test]
    fn access_token_name_is_configurable_and_always_stripped() {
        let names: IdentityHeaderNames =
            serde_saphyr::from_str("access_token: X-Access-Token\n").unwrap();
        assert!(!names.pass_access_token, "off by default");
        assert!(names.all().iter().any(|n| *n == "x-access-token"));
    }

    #[test]
    fn invalid_configured_name_is_rejected() {
        assert!(HeaderNameConfig::try_from("bad name".to_owned()).is_err());
    }
}
