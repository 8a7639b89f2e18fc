//! The HTTP client the gateway uses to talk to identity providers.
//!
//! reqwest 0.13 behind [`oauth2::AsyncHttpClient`], so `oauth2` and `openidconnect` can use it.
//! It never follows redirects (a redirected token or discovery request is an error, not a hop
//! to wherever the response points), uses rustls with the ring provider and has timeouts.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Why a request to the provider failed. Carries no response body.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("could not build the identity provider HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    #[error("identity provider request failed: {0}")]
    Request(#[source] reqwest::Error),
    #[error("identity provider request could not be formed: {0}")]
    Http(#[source] http::Error),
}

/// A cheap-to-clone client for provider endpoints (discovery, JWKS, token, userinfo, APIs).
#[derive(Clone, Debug)]
pub struct IdpHttpClient {
    inner: reqwest::Client,
}

impl IdpHttpClient {
    /// No redirects, 10 s connect and 30 s total timeouts, rustls (ring).
    pub fn new() -> Result<IdpHttpClient, HttpClientError> {
        // Idempotent: the binary installs ring first thing; tests and library users may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HttpClientError::Build)?;
        Ok(IdpHttpClient { inner })
    }

    /// The underlying reqwest client, for provider APIs (GitHub, Bitbucket).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }
}

impl<'c> AsyncHttpClient<'c> for IdpHttpClient {
    type Error = HttpClientError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpClientError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = self
                .inner
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(HttpClientError::Request)?;
            let mut builder = http::Response::builder().status(response.status());
            if let Some(headers) = builder.headers_mut() {
                headers.extend(
                    response
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
            let body = response.bytes().await.map_err(HttpClientError::Request)?;
            builder.body(body.to_vec()).map_err(HttpClientError::Http)
        })
    }
}

/// Why a provider API call (GitHub, Bitbucket, userinfo) failed. Never carries the body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("provider API unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("provider API answered {status} for {endpoint}")]
    Status {
        endpoint: String,
        status: http::StatusCode,
    },
    #[error("provider API sent an unexpected {endpoint} document")]
    Shape { endpoint: String },
    #[error("provider API pagination left {0}")]
    ForeignPage(String),
}

impl IdpHttpClient {
    /// GET `url` with a bearer token, parse JSON into `T`; also returns the response headers
    /// (for `Link` pagination). Bodies are never logged or returned in errors.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &url::Url,
        bearer: &str,
        accept: &str,
    ) -> Result<(T, http::HeaderMap), ApiError> {
        let endpoint = url.path().to_owned();
        let response = self
            .inner
            .get(url.as_str())
            .bearer_auth(bearer)
            .header(http::header::ACCEPT, accept)
            .send()
            .await
            .map_err(ApiError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::Status { endpoint, status });
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(ApiError::Unreachable)?;
        let value = serde_json::from_slice(&body).map_err(|_| ApiError::Shape { endpoint })?;
        Ok((value, headers))
    }
}
