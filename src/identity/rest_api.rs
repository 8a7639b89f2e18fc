//! Providers that log in with plain OAuth2 and name the user through their REST API (GitHub,
//! Bitbucket): the endpoints each is configured with, and list pagination that stays on the
//! API's origin.

use serde::de::DeserializeOwned;
use url::Url;

use super::http_client::{ApiError, IdpHttpClient};
use super::providers::{ProviderConfig, parse_url};

/// Most pages followed per list (100 items each).
const MAX_PAGES: usize = 10;

/// Where to send the browser, where to redeem the code, and the API's base URL.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiEndpoints {
    pub(crate) auth_url: Url,
    pub(crate) token_url: Url,
    pub(crate) api_url: Url,
}

impl ApiEndpoints {
    /// The provider kind's `defaults` (authorize, token, API), each replaced by the provider's
    /// `auth_url`, `token_url` or `api_url` where set; an error names the field.
    pub(crate) fn from_config(
        config: &ProviderConfig,
        [auth, token, api]: [&str; 3],
    ) -> Result<ApiEndpoints, String> {
        let pick = |field: &str, over: &Option<String>, default: &str| {
            parse_url(&config.name, field, over.as_deref().unwrap_or(default))
        };
        Ok(ApiEndpoints {
            auth_url: pick("auth_url", &config.auth_url, auth)?,
            token_url: pick("token_url", &config.token_url, token)?,
            api_url: pick("api_url", &config.api_url, api)?,
        })
    }
}

/// Joins `path` (without a leading slash) onto an API base URL, keeping the base's path.
pub(crate) fn api_url(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

/// A next-page URL is followed only on the API's own origin.
pub(crate) fn same_origin(base: &Url, next: &str) -> Result<Url, ApiError> {
    let url = Url::parse(next).map_err(|_| ApiError::ForeignPage("an unparsable URL".into()))?;
    if url.origin() != base.origin() {
        return Err(ApiError::ForeignPage(format!(
            "the API origin for {}",
            url.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

/// One list endpoint of a provider API, read with the user's access token.
pub(crate) struct ListRequest<'a> {
    pub(crate) client: &'a IdpHttpClient,
    pub(crate) api: &'a Url,
    pub(crate) token: &'a str,
    pub(crate) accept: &'a str,
    /// The query parameter that sets the page size (`per_page`, `pagelen`).
    pub(crate) page_size_parameter: &'a str,
}

impl ListRequest<'_> {
    /// Every item of the list at `path`, following next-page links on the API's origin for up
    /// to [`MAX_PAGES`] pages. `split` takes a page document `P` (and the response headers)
    /// apart into its items and the next page's URL.
    pub(crate) async fn all<P, T>(
        &self,
        path: &str,
        split: impl Fn(P, &http::HeaderMap) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, ApiError>
    where
        P: DeserializeOwned,
    {
        let mut url = api_url(self.api, path);
        url.query_pairs_mut()
            .append_pair(self.page_size_parameter, "100");
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let (page, headers) = self.client.get_json(&url, self.token, self.accept).await?;
            let (items, next) = split(page, &headers);
            all.extend(items);
            match next {
                Some(next) => url = same_origin(self.api, &next)?,
                None => break,
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_keeps_the_base_path() {
        let base = Url::parse("https://ghe.example.com/api/v3/").unwrap();
        assert_eq!(
            api_url(&base, "user/teams").as_str(),
            "https://ghe.example.com/api/v3/user/teams"
        );
    }

    #[test]
    fn next_pages_elsewhere_are_refused() {
        let base = Url::parse("https://api.github.com").unwrap();
        assert!(same_origin(&base, "https://api.github.com/user/teams?page=2").is_ok());
        assert!(matches!(
            same_origin(&base, "https://evil.example/user/teams?page=2"),
            Err(ApiError::ForeignPage(_))
        ));
        assert!(matches!(
            same_origin(&base, "not a url"),
            Err(ApiError::ForeignPage(_))
        ));
    }
}
