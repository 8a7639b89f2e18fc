//! Bitbucket Cloud: OAuth2 login plus the 2.0 API for the confirmed primary email and
//! workspaces (as groups).

use serde::Deserialize;
use url::Url;

use super::Identity;
use super::http_client::{ApiError, IdpHttpClient, api_url, same_origin};
use super::providers::{ProviderConfig, parse_url};

pub(crate) const SCOPES: &[&str] = &["account", "email"];

const ACCEPT: &str = "application/json";

/// Most pages followed per list.
const MAX_PAGES: usize = 10;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BitbucketEndpoints {
    pub(crate) auth_url: Url,
    pub(crate) token_url: Url,
    pub(crate) api_url: Url,
}

impl BitbucketEndpoints {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<BitbucketEndpoints, String> {
        let pick = |field: &str, over: &Option<String>, default: &str| {
            parse_url(&config.name, field, over.as_deref().unwrap_or(default))
        };
        Ok(BitbucketEndpoints {
            auth_url: pick(
                "auth_url",
                &config.auth_url,
                "https://bitbucket.org/site/oauth2/authorize",
            )?,
            token_url: pick(
                "token_url",
                &config.token_url,
                "https://bitbucket.org/site/oauth2/access_token",
            )?,
            api_url: pick("api_url", &config.api_url, "https://api.bitbucket.org/2.0")?,
        })
    }
}

#[derive(Deserialize)]
struct User {
    uuid: String,
    username: Option<String>,
    display_name: Option<String>,
    account_id: Option<String>,
}

#[derive(Deserialize)]
struct Page<T> {
    values: Vec<T>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    is_primary: bool,
    is_confirmed: bool,
}

#[derive(Deserialize)]
struct WorkspaceAccess {
    workspace: Workspace,
}

#[derive(Deserialize)]
struct Workspace {
    slug: String,
}

/// The user behind `access_token`; groups are the slugs of their workspaces.
pub(crate) async fn fetch_identity(
    client: &IdpHttpClient,
    endpoints: &BitbucketEndpoints,
    provider: &str,
    access_token: &str,
) -> Result<Identity, ApiError> {
    let api = &endpoints.api_url;
    let (user, _): (User, _) = client
        .get_json(&api_url(api, "user"), access_token, ACCEPT)
        .await?;
    let emails: Vec<Email> = paged(client, api, "user/emails", access_token).await?;
    let workspaces: Vec<WorkspaceAccess> =
        paged(client, api, "user/permissions/workspaces", access_token).await?;

    let primary = emails.iter().find(|e| e.is_primary);
    let mut groups: Vec<String> = workspaces.into_iter().map(|w| w.workspace.slug).collect();
    groups.sort();
    groups.dedup();
    let mut claims = serde_json::Map::new();
    if let Some(account_id) = user.account_id {
        claims.insert("account_id".into(), account_id.into());
    }
    Ok(Identity {
        subject: user.uuid,
        email: primary.map(|e| e.email.clone()),
        email_verified: primary.is_some_and(|e| e.is_confirmed),
        name: user.display_name,
        preferred_username: user.username,
        groups,
        provider: provider.to_owned(),
        claims,
    })
}

/// Follows the `next` field of Bitbucket's paged responses on the API's origin.
async fn paged<T: serde::de::DeserializeOwned>(
    client: &IdpHttpClient,
    api: &Url,
    path: &str,
    token: &str,
) -> Result<Vec<T>, ApiError> {
    let mut url = api_url(api, path);
    url.query_pairs_mut().append_pair("pagelen", "100");
    let mut all = Vec::new();
    for _ in 0..MAX_PAGES {
        let (page, _): (Page<T>, _) = client.get_json(&url, token, ACCEPT).await?;
        all.extend(page.values);
        match page.next {
            Some(next) => url = same_origin(api, &next)?,
            None => break,
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(fields: serde_json::Value) -> Result<BitbucketEndpoints, String> {
        let mut value = serde_json::json!({"name": "bb", "kind": "bitbucket", "client_id": "c"});
        value
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        BitbucketEndpoints::from_config(&serde_json::from_value(value).unwrap())
    }

    #[test]
    fn defaults_are_bitbucket_cloud() {
        let e = endpoints(serde_json::json!({})).unwrap();
        assert_eq!(
            e.auth_url.as_str(),
            "https://bitbucket.org/site/oauth2/authorize"
        );
        assert_eq!(
            e.token_url.as_str(),
            "https://bitbucket.org/site/oauth2/access_token"
        );
        assert_eq!(e.api_url.as_str(), "https://api.bitbucket.org/2.0");
        assert_eq!(SCOPES, ["account", "email"]);
    }

    #[test]
    fn each_endpoint_can_be_overridden_alone() {
        let e =
            endpoints(serde_json::json!({"api_url": "https://proxy.example.com/bb/2.0"})).unwrap();
        assert_eq!(e.api_url.as_str(), "https://proxy.example.com/bb/2.0");
        assert_eq!(
            e.auth_url.as_str(),
            "https://bitbucket.org/site/oauth2/authorize"
        );
    }

    #[test]
    fn plain_http_override_off_loopback_is_refused() {
        let err = endpoints(serde_json::json!({"token_url": "http://proxy.example.com/token"}))
            .unwrap_err();
        assert!(
            err.contains("providers.bb.token_url") && err.contains("https"),
            "{err}"
        );
    }
}
