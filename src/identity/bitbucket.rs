//! Bitbucket Cloud: OAuth2 login plus the 2.0 API for the confirmed primary email and
//! workspaces (as groups).

use serde::Deserialize;

use super::Identity;
use super::http_client::{ApiError, IdpHttpClient};
use super::providers::ProviderConfig;
use super::rest_api::{ApiEndpoints, ListRequest, api_url};

pub(crate) const SCOPES: &[&str] = &["account", "email"];

const ACCEPT: &str = "application/json";

/// Bitbucket Cloud by default; single endpoints overridable.
pub(crate) fn endpoints(config: &ProviderConfig) -> Result<ApiEndpoints, String> {
    ApiEndpoints::from_config(
        config,
        [
            "https://bitbucket.org/site/oauth2/authorize",
            "https://bitbucket.org/site/oauth2/access_token",
            "https://api.bitbucket.org/2.0",
        ],
    )
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
    endpoints: &ApiEndpoints,
    provider: &str,
    access_token: &str,
) -> Result<Identity, ApiError> {
    let api = &endpoints.api_url;
    let (user, _): (User, _) = client
        .get_json(&api_url(api, "user"), access_token, ACCEPT)
        .await?;
    let lists = ListRequest {
        client,
        api,
        token: access_token,
        accept: ACCEPT,
        page_size_parameter: "pagelen",
    };
    let emails: Vec<Email> = lists.all("user/emails", next_field_paged).await?;
    let workspaces: Vec<WorkspaceAccess> = lists
        .all("user/permissions/workspaces", next_field_paged)
        .await?;

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

/// A page is an object with the items in `values` and the next page's URL in `next`.
fn next_field_paged<T>(page: Page<T>, _: &http::HeaderMap) -> (Vec<T>, Option<String>) {
    (page.values, page.next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(fields: serde_json::Value) -> Result<ApiEndpoints, String> {
        let mut value = serde_json::json!({"name": "bb", "kind": "bitbucket", "client_id": "c"});
        value
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        endpoints(&serde_json::from_value(value).unwrap())
    }

    #[test]
    fn defaults_are_bitbucket_cloud() {
        let e = configured(serde_json::json!({})).unwrap();
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
            configured(serde_json::json!({"api_url": "https://proxy.example.com/bb/2.0"})).unwrap();
        assert_eq!(e.api_url.as_str(), "https://proxy.example.com/bb/2.0");
        assert_eq!(
            e.auth_url.as_str(),
            "https://bitbucket.org/site/oauth2/authorize"
        );
    }

    #[test]
    fn plain_http_override_off_loopback_is_refused() {
        let err = configured(serde_json::json!({"token_url": "http://proxy.example.com/token"}))
            .unwrap_err();
        assert!(
            err.contains("providers.bb.token_url") && err.contains("https"),
            "{err}"
        );
    }
}
