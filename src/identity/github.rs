//! GitHub: OAuth2 login plus the REST API for the verified primary email, orgs and teams.
//!
//! Groups are org logins (`acme`) and teams as `org/team-slug` (`acme/platform`).

use serde::Deserialize;
use url::Url;

use super::Identity;
use super::http_client::{ApiError, IdpHttpClient, api_url, same_origin};
use super::providers::{ProviderConfig, parse_url};

pub(crate) const SCOPES: &[&str] = &["read:user", "user:email", "read:org"];

const ACCEPT: &str = "application/vnd.github+json";

/// Most pages followed per list (100 items each).
const MAX_PAGES: usize = 10;

/// github.com by default; `url` for GitHub Enterprise; single endpoints overridable.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GithubEndpoints {
    pub(crate) auth_url: Url,
    pub(crate) token_url: Url,
    pub(crate) api_url: Url,
}

impl GithubEndpoints {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<GithubEndpoints, String> {
        let base = config
            .url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_owned());
        let (auth, token, api) = match &base {
            Some(base) => (
                format!("{base}/login/oauth/authorize"),
                format!("{base}/login/oauth/access_token"),
                format!("{base}/api/v3"),
            ),
            None => (
                "https://github.com/login/oauth/authorize".into(),
                "https://github.com/login/oauth/access_token".into(),
                "https://api.github.com".into(),
            ),
        };
        let pick = |field: &str, over: &Option<String>, default: String| {
            parse_url(&config.name, field, over.as_deref().unwrap_or(&default))
        };
        Ok(GithubEndpoints {
            auth_url: pick("auth_url", &config.auth_url, auth)?,
            token_url: pick("token_url", &config.token_url, token)?,
            api_url: pick("api_url", &config.api_url, api)?,
        })
    }
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
    endpoints: &GithubEndpoints,
    provider: &str,
    access_token: &str,
) -> Result<Identity, ApiError> {
    let api = &endpoints.api_url;
    let (user, _): (User, _) = client
        .get_json(&api_url(api, "user"), access_token, ACCEPT)
        .await?;
    let emails: Vec<Email> = paged(client, api, "user/emails", access_token).await?;
    let orgs: Vec<Org> = paged(client, api, "user/orgs", access_token).await?;
    let teams: Vec<Team> = paged(client, api, "user/teams", access_token).await?;

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

/// Follows `Link: <...>; rel="next"` on the API's origin, up to [`MAX_PAGES`].
async fn paged<T: serde::de::DeserializeOwned>(
    client: &IdpHttpClient,
    api: &Url,
    path: &str,
    token: &str,
) -> Result<Vec<T>, ApiError> {
    let mut url = api_url(api, path);
    url.query_pairs_mut().append_pair("per_page", "100");
    let mut all = Vec::new();
    for _ in 0..MAX_PAGES {
        let (page, headers): (Vec<T>, _) = client.get_json(&url, token, ACCEPT).await?;
        all.extend(page);
        match next_link(&headers) {
            Some(next) => url = same_origin(api, &next)?,
            None => break,
        }
    }
    Ok(all)
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
        let endpoints = GithubEndpoints::from_config(&config).unwrap();
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
        let endpoints = GithubEndpoints::from_config(&config).unwrap();
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
