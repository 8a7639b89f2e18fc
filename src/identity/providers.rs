//! Provider presets: one `providers:` entry in gateway.yaml turned into endpoints and defaults.
//!
//! OIDC-compliant presets are data (an issuer URL, default scopes, a groups claim); GitHub and
//! Bitbucket speak plain OAuth2 plus their own APIs and live in `github.rs` / `bitbucket.rs`.
//! `resolve` is the one factory `match`; it ends in an "unknown provider kind" error.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::rest_api::ApiEndpoints;
use super::{bitbucket, github};

/// One entry of `providers:` in gateway.yaml.
///
/// ```yaml
/// providers:
///   - name: corp
///     kind: keycloak            # oidc | google | azure | okta | gitlab | auth0 | keycloak | github | bitbucket
///     url: https://sso.example.com
///     realm: staff
///     client_id: portcullis
///     client_secret: ${KEYCLOAK_SECRET}
///     groups_claim: realm_access.roles
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Used in `/oauth2/start?provider=NAME` and as `user.provider`.
    pub name: String,
    pub kind: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Replaces the preset's scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Dotted path of the claim holding groups, e.g. `groups` or `realm_access.roles`.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Added to the authorization request as-is (e.g. `prompt: select_account`).
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
    /// Shown on the chooser page; defaults to the name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Where the provider returns the browser after RP-initiated logout (`/oauth2/logout`): a
    /// path on `public_url` or an absolute http(s) URL; register exactly this at the provider.
    /// Defaults to the public root, `PUBLIC_URL/`.
    #[serde(default)]
    pub post_logout_redirect_uri: Option<String>,
    /// Hint only (Google `hd`); the policy decides who gets in.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// `oidc`: the issuer URL.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `azure`: the tenant id or domain.
    #[serde(default)]
    pub tenant: Option<String>,
    /// `okta`, `auth0`: the tenant domain (`example.okta.com`).
    #[serde(default)]
    pub domain: Option<String>,
    /// `okta`: the custom authorization server id (`default`); none means the org server.
    #[serde(default)]
    pub authorization_server: Option<String>,
    /// `gitlab`, `keycloak`, `github` (Enterprise): the base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// `keycloak`: the realm.
    #[serde(default)]
    pub realm: Option<String>,
    /// `github`, `bitbucket`: override single endpoints (tests, proxies).
    #[serde(default)]
    pub auth_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub api_url: Option<String>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Every problem found in `providers:`, reported together.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    pub(crate) fn one(problem: String) -> ConfigError {
        ConfigError {
            problems: vec![problem],
        }
    }
}

/// How the provider is spoken to once resolved.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Protocol {
    /// OpenID Connect with discovery at `issuer`, kept exactly as written: the ID token's `iss`
    /// must match it character for character (Google has no trailing slash, Auth0 has one).
    Oidc {
        issuer: String,
    },
    Github(ApiEndpoints),
    Bitbucket(ApiEndpoints),
}

/// A provider entry after validation and preset defaults.
#[derive(Clone)]
pub(crate) struct ResolvedProvider {
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) groups_claim: Option<String>,
    pub(crate) extra_params: Vec<(String, String)>,
    pub(crate) protocol: Protocol,
    /// As written; resolved against the public URL by the relying party.
    pub(crate) post_logout_redirect_uri: Option<String>,
}

const OIDC_SCOPES: &[&str] = &["openid", "email", "profile"];

/// The one factory: a config entry to a resolved provider, or every problem with it.
pub(crate) fn resolve(config: &ProviderConfig) -> Result<ResolvedProvider, ConfigError> {
    let name = &config.name;
    let mut problems = Vec::new();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(format!(
            "providers: name {name:?}: use letters, digits, '-' or '_'"
        ));
    }
    if config.client_id.is_empty() {
        problems.push(format!(
            "providers.{name}.client_id is empty; set the id the provider issued"
        ));
    }
    let client_secret = match (&config.client_secret, &config.client_secret_file) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "providers.{name}: set client_secret or client_secret_file, not both"
            ));
            None
        }
        (Some(secret), None) => Some(secret.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(e) => {
                problems.push(format!(
                    "providers.{name}.client_secret_file {}: {e}",
                    path.display()
                ));
                None
            }
        },
        (None, None) => None,
    };

    let before_kind = problems.len();
    let mut need = |field: &str, value: &Option<String>| -> String {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => v.trim_end_matches('/').to_owned(),
            _ => {
                problems.push(format!(
                    "providers.{name}: kind {} needs `{field}`",
                    config.kind
                ));
                String::new()
            }
        }
    };
    let mut groups_claim = None;
    let mut scopes: Vec<&str> = OIDC_SCOPES.to_vec();
    let mut extra_params: Vec<(String, String)> = Vec::new();
    let issuer = |text: String| Protocol::Oidc { issuer: text };
    let protocol = match config.kind.as_str() {
        "oidc" => Protocol::Oidc {
            issuer: config
                .issuer
                .clone()
                .unwrap_or_else(|| need("issuer", &config.issuer)),
        },
        "google" => {
            if let [domain] = config.email_domains.as_slice() {
                extra_params.push(("hd".into(), domain.clone()));
            }
            issuer("https://accounts.google.com".into())
        }
        "azure" => {
            groups_claim = Some("groups");
            scopes.push("offline_access");
            issuer(format!(
                "https://login.microsoftonline.com/{}/v2.0",
                need("tenant", &config.tenant)
            ))
        }
        "okta" => {
            groups_claim = Some("groups");
            scopes.push("offline_access");
            let domain = need("domain", &config.domain);
            match config.authorization_server.as_deref() {
                Some(server) => issuer(format!("https://{domain}/oauth2/{server}")),
                None => issuer(format!("https://{domain}")),
            }
        }
        "gitlab" => {
            groups_claim = Some("groups_direct");
            let url = config
                .url
                .clone()
                .unwrap_or_else(|| "https://gitlab.com".into());
            issuer(url.trim_end_matches('/').to_owned())
        }
        "auth0" => {
            scopes.push("offline_access");
            issuer(format!("https://{}/", need("domain", &config.domain)))
        }
        "keycloak" => {
            groups_claim = Some("groups");
            let url = need("url", &config.url);
            let realm = need("realm", &config.realm);
            issuer(format!("{url}/realms/{realm}"))
        }
        "github" => {
            scopes = github::SCOPES.to_vec();
            match github::endpoints(config) {
                Ok(endpoints) => Protocol::Github(endpoints),
                Err(problem) => {
                    problems.push(problem);
                    Protocol::Oidc {
                        issuer: String::new(),
                    }
                }
            }
        }
        "bitbucket" => {
            scopes = bitbucket::SCOPES.to_vec();
            match bitbucket::endpoints(config) {
                Ok(endpoints) => Protocol::Bitbucket(endpoints),
                Err(problem) => {
                    problems.push(problem);
                    Protocol::Oidc {
                        issuer: String::new(),
                    }
                }
            }
        }
        other => {
            problems.push(format!(
                "providers.{name}: unknown provider kind {other:?}; use one of oidc, google, azure, okta, gitlab, auth0, keycloak, github, bitbucket"
            ));
            Protocol::Oidc {
                issuer: String::new(),
            }
        }
    };
    if let Protocol::Oidc { issuer } = &protocol
        && problems.len() == before_kind
        && let Err(problem) = parse_url(name, "issuer", issuer)
    {
        problems.push(problem);
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    extra_params.extend(
        config
            .extra_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok(ResolvedProvider {
        name: name.clone(),
        display_name: config.display_name.clone().unwrap_or_else(|| name.clone()),
        client_id: config.client_id.clone(),
        client_secret,
        scopes: config
            .scopes
            .clone()
            .unwrap_or_else(|| scopes.iter().map(|s| s.to_string()).collect()),
        groups_claim: config
            .groups_claim
            .clone()
            .or(groups_claim.map(str::to_owned)),
        extra_params,
        protocol,
        post_logout_redirect_uri: config.post_logout_redirect_uri.clone(),
    })
}

/// Plain http is allowed only for loopback providers (tests, sidecars).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Parses a configured URL, with the field named in the problem.
pub(crate) fn parse_url(name: &str, field: &str, text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("providers.{name}.{field} {text:?}: {e}"))?;
    if url.scheme() != "https" && !is_loopback(&url) {
        return Err(format!("providers.{name}.{field} {text:?} must use https"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: &str, fields: &[(&str, &str)]) -> ProviderConfig {
        let mut map = serde_json::Map::new();
        map.insert("name".into(), "p".into());
        map.insert("kind".into(), kind.into());
        map.insert("client_id".into(), "cid".into());
        for (k, v) in fields {
            map.insert((*k).into(), (*v).into());
        }
        serde_json::from_value(serde_json::Value::Object(map)).unwrap()
    }

    fn issuer_of(kind: &str, fields: &[(&str, &str)]) -> String {
        match resolve(&config(kind, fields)).unwrap().protocol {
            Protocol::Oidc { issuer } => issuer,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oidc_presets_produce_their_issuers() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                "oidc",
                &[("issuer", "https://id.example.com/")],
                "https://id.example.com/",
            ),
            ("google", &[], "https://accounts.google.com"),
            (
                "azure",
                &[("tenant", "contoso.onmicrosoft.com")],
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0",
            ),
            (
                "okta",
                &[
                    ("domain", "corp.okta.com"),
                    ("authorization_server", "default"),
                ],
                "https://corp.okta.com/oauth2/default",
            ),
            (
                "okta",
                &[("domain", "corp.okta.com")],
                "https://corp.okta.com",
            ),
            ("gitlab", &[], "https://gitlab.com"),
            (
                "gitlab",
                &[("url", "https://git.example.com/")],
                "https://git.example.com",
            ),
            (
                "auth0",
                &[("domain", "corp.eu.auth0.com")],
                "https://corp.eu.auth0.com/",
            ),
            (
                "keycloak",
                &[("url", "https://sso.example.com/"), ("realm", "staff")],
                "https://sso.example.com/realms/staff",
            ),
        ];
        for (kind, fields, want) in cases {
            assert_eq!(issuer_of(kind, fields), *want, "{kind}");
        }
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    /// What one preset resolves to with no overrides: protocol and endpoints, default scopes,
    /// default groups claim.
    #[test]
    fn every_preset_produces_its_endpoints_scopes_and_groups_claim() {
        let oidc = |issuer: &str| Protocol::Oidc {
            issuer: issuer.into(),
        };
        const BASE: &[&str] = &["openid", "email", "profile"];
        const OFFLINE: &[&str] = &["openid", "email", "profile", "offline_access"];
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            Protocol,
            &'a [&'a str],
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "google",
                &[],
                oidc("https://accounts.google.com"),
                BASE,
                None,
            ),
            (
                "azure",
                &[("tenant", "contoso.onmicrosoft.com")],
                oidc("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"),
                OFFLINE,
                Some("groups"),
            ),
            (
                "okta",
                &[
                    ("domain", "corp.okta.com"),
                    ("authorization_server", "default"),
                ],
                oidc("https://corp.okta.com/oauth2/default"),
                OFFLINE,
                Some("groups"),
            ),
            (
                "gitlab",
                &[],
                oidc("https://gitlab.com"),
                BASE,
                Some("groups_direct"),
            ),
            (
                "gitlab",
                &[("url", "https://git.example.com/")],
                oidc("https://git.example.com"),
                BASE,
                Some("groups_direct"),
            ),
            (
                "auth0",
                &[("domain", "corp.eu.auth0.com")],
                oidc("https://corp.eu.auth0.com/"),
                OFFLINE,
                None,
            ),
            (
                "keycloak",
                &[("url", "https://sso.example.com/"), ("realm", "staff")],
                oidc("https://sso.example.com/realms/staff"),
                BASE,
                Some("groups"),
            ),
            (
                "github",
                &[],
                Protocol::Github(ApiEndpoints {
                    auth_url: url("https://github.com/login/oauth/authorize"),
                    token_url: url("https://github.com/login/oauth/access_token"),
                    api_url: url("https://api.github.com"),
                }),
                &["read:user", "user:email", "read:org"],
                None,
            ),
            (
                "bitbucket",
                &[],
                Protocol::Bitbucket(ApiEndpoints {
                    auth_url: url("https://bitbucket.org/site/oauth2/authorize"),
                    token_url: url("https://bitbucket.org/site/oauth2/access_token"),
                    api_url: url("https://api.bitbucket.org/2.0"),
                }),
                &["account", "email"],
                None,
            ),
        ];
        for (kind, fields, protocol, scopes, groups_claim) in cases {
            let resolved = resolve(&config(kind, fields)).unwrap();
            assert_eq!(resolved.protocol, protocol, "{kind} {fields:?}");
            assert_eq!(resolved.scopes, scopes, "{kind} scopes");
            assert_eq!(
                resolved.groups_claim.as_deref(),
                groups_claim,
                "{kind} groups claim"
            );
            assert_eq!(resolved.extra_params, [], "{kind} adds no parameters");
        }
    }

    #[test]
    fn configured_scopes_and_groups_claim_replace_the_presets() {
        let mut azure = config("azure", &[("tenant", "t"), ("groups_claim", "roles")]);
        azure.scopes = Some(vec!["openid".into(), "email".into()]);
        let resolved = resolve(&azure).unwrap();
        assert_eq!(resolved.scopes, ["openid", "email"]);
        assert_eq!(resolved.groups_claim.as_deref(), Some("roles"));
    }

    #[test]
    fn presets_set_scopes_groups_claim_and_params() {
        let google = resolve(&config("google", &[])).unwrap();
        assert_eq!(google.scopes, ["openid", "email", "profile"]);
        assert_eq!(google.groups_claim, None);
        let azure = resolve(&config("azure", &[("tenant", "t")])).unwrap();
        assert!(azure.scopes.contains(&"offline_access".to_owned()));
        assert_eq!(azure.groups_claim.as_deref(), Some("groups"));
        let keycloak = resolve(&config(
            "keycloak",
            &[
                ("url", "https://k"),
                ("realm", "r"),
                ("groups_claim", "realm_access.roles"),
            ],
        ))
        .unwrap();
        assert_eq!(keycloak.groups_claim.as_deref(), Some("realm_access.roles"));

        let mut with_hd = config("google", &[]);
        with_hd.email_domains = vec!["example.com".into()];
        with_hd
            .extra_params
            .insert("prompt".into(), "select_account".into());
        let resolved = resolve(&with_hd).unwrap();
        assert_eq!(
            resolved.extra_params,
            [
                ("hd".to_owned(), "example.com".to_owned()),
                ("prompt".to_owned(), "select_account".to_owned())
            ]
        );
        assert_eq!(resolved.display_name, "p");
    }

    #[test]
    fn missing_fields_are_all_reported() {
        let err = resolve(&config("keycloak", &[])).err().unwrap();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(
            err.to_string().contains("needs `url`") && err.to_string().contains("needs `realm`")
        );
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let err = resolve(&config("myspace", &[])).err().unwrap();
        assert!(
            err.to_string()
                .contains("unknown provider kind \"myspace\""),
            "{err}"
        );
    }

    #[test]
    fn plain_http_issuer_is_only_allowed_on_loopback() {
        assert!(resolve(&config("oidc", &[("issuer", "http://id.example.com")])).is_err());
        assert!(resolve(&config("oidc", &[("issuer", "http://127.0.0.1:9000")])).is_ok());
    }

    #[test]
    fn secret_and_secret_file_together_are_rejected() {
        let err = resolve(&config(
            "google",
            &[
                ("client_secret", "s"),
                ("client_secret_file", "/nonexistent"),
            ],
        ))
        .err()
        .unwrap();
        assert!(err.to_string().contains("not both"));
    }

    #[test]
    fn unknown_field_is_rejected_by_serde() {
        let value =
            serde_json::json!({"name": "p", "kind": "google", "client_id": "c", "tennant": "x"});
        assert!(serde_json::from_value::<ProviderConfig>(value).is_err());
    }
}
