//! GitHub: OAuth2 login plus the REST API for the verified primary email, orgs and teams.
//!
//! Groups are org logins (`acme`) and teams as `org/team-slug` (`acme/platform`).

use serde::Deserialize;

use super::Identity;
use super::http_client::{ApiError, IdpHttpClient};
use super::providers::ProviderConfig;
use super::rest_api::{ApiEndpoints, ListRequest, api_url};

pub(crate) const SCOPES: &[&str] = &["read:user", "user:email", "read:org"];

const ACCEPT: &str = "application/vnd.github+json";

/// github.com by default; `url` for GitHub Enterprise; single endpoints overridable.
pub(crate) fn endpoints(config: &ProviderConfig) -> Result<ApiEndpoints, String> {
    let defaults = match config.url.as_deref().map(|u| u.trim_end_matches('/')) {
        Some(base) => [
            format!("{base}/login/oauth/authorize"),
            format!("{base}/login/oauth/access_token"),
            format!("{base}/api/v3"),
        ],
        None => [
            "https://github.com/login/oauth/authorize".into(),
            "https://github.com/login/oauth/access_token".into(),
            "https://api.github.com".into(),
        ],
    };
    ApiEndpoints::from_config(config, defaults.each_ref().map(String::as_str))
}

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

#[derive(Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

/// The user behind `access_token`, with groups from orgs and teams.
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
        page_size_parameter: "per_page",
    };
    let emails: Vec<Email> = lists.all("user/emails", link_paged).await?;
    let orgs: Vec<Org> = lists.all("user/orgs", link_paged).await?;
    let teams: Vec<Team> = lists.all("user/teams", link_paged).await?;

    let primary = emails.iter().find(|e| e.primary);
    let mut groups: Vec<String> = orgs.into_iter().map(|o| o.login).collect();
    groups.extend(
        teams
            .into_iter()
            .map(|t| format!("{}/{}", t.organization.login, t.slug)),
    );
    groups.sort();
    groups.dedup();
    let mut claims = serde_json::Map::new();
    claims.insert("login".into(), user.login.clone().into());
    Ok(Identity {
        subject: user.id.to_string(),
        email: primary.map(|e| e.email.clone()),
        email_verified: primary.is_some_and(|e| e.verified),
        name: user.name,
        preferred_username: Some(user.login),
        groups,
        provider: provider.to_owned(),
        claims,
    })
}

/// A page is a JSON array; the next one is named by `Link: <...>; rel="next"`.
fn link_paged<T>(page: Vec<T>, headers: &http::HeaderMap) -> (Vec<T>, Option<String>) {
    (page, next_link(headers))
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &http::HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::LINK,
            "<https://api.github.com/user/teams?page=3>; rel=\"last\", <https://api.github.com/user/teams?page=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://api.github.com/user/teams?page=2")
        );
        assert_eq!(next_link(&http::HeaderMap::new()), None);
    }

    #[test]
    fn defaults_are_github_dot_com() {
        let config: ProviderConfig = serde_json::from_value(serde_json::json!({
            "name": "gh", "kind": "github", "client_id": "c"
        }))
        .unwrap();
        let endpoints = endpoints(&config).unwrap();
        assert_eq!(
            endpoints.auth_url.as_str(),
            "https://github.com/login/oauth/authorize"
        );
        assert_eq!(
            endpoints.token_url.as_str(),
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(endpoints.api_url.as_str(), "https://api.github.com/");
        assert_eq!(SCOPES, ["read:user", "user:email", "read:org"]);
    }

    #[test]
    fn enterprise_url_moves_every_endpoint() {
        let config: ProviderConfig = serde_json::from_value(serde_json::json!({
            "name": "ghe", "kind": "github", "client_id": "c", "url": "https://ghe.example.com/"
        }))
        .unwrap();
        let endpoints = endpoints(&config).unwrap();
        assert_eq!(
            endpoints.auth_url.as_str(),
            "https://ghe.example.com/login/oauth/authorize"
        );
        assert_eq!(
            endpoints.token_url.as_str(),
            "https://ghe.example.com/login/oauth/access_token"
        );
        assert_eq!(endpoints.api_url.as_str(), "https://ghe.example.com/api/v3");
    }
}
