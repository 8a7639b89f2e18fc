//! Upstream HTTP client: a pooled keep-alive client, bodies streamed both ways, timeouts mapped
//! to 502/504.

use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

use super::body::Body;
use super::error::GatewayError;
use super::headers::remove_hop_by_hop;
use crate::config::UpstreamConfig;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Forwards requests to `http://` and `https://` upstreams over pooled HTTP/1.1 connections.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<Connector, Incoming>,
    response_timeout: std::time::Duration,
}

impl UpstreamClient {
    pub fn new(config: &UpstreamConfig) -> Result<Self, std::io::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(connector);
        Ok(UpstreamClient {
            client,
            response_timeout: config.response_timeout,
        })
    }

    /// Sends `request` (already rewritten for the upstream) and returns its response with
    /// hop-by-hop headers removed. The response body streams; only the headers are timed.
    pub async fn forward(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, GatewayError> {
        let sent = tokio::time::timeout(self.response_timeout, self.client.request(request)).await;
        let response = match sent {
            Err(_) => return Err(GatewayError::UpstreamTimeout),
            Ok(Err(err)) if err.is_connect() => {
                return Err(GatewayError::UpstreamUnreachable(error_chain(&err)));
            }
            Ok(Err(err)) => return Err(GatewayError::UpstreamFailed(error_chain(&err))),
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

/// Builds the upstream URI: the route's scheme and authority with the normalized path.
pub fn upstream_uri(base: &Uri, path: &str, query: Option<&str>) -> Result<Uri, GatewayError> {
    let path_and_query = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query =
        Some(path_and_query.parse().map_err(|_| {
            GatewayError::Internal("normalized path is not a valid URI path".into())
        })?);
    Uri::from_parts(parts).map_err(|err| GatewayError::Internal(format!("upstream URI: {err}")))
}

/// Points the request at the upstream over HTTP/1.1. The client's `Host` stays (apps like Bokeh
/// check it); the guard has already set it from `:authority` for HTTP/2 clients.
pub fn prepare_request(request: &mut Request<Incoming>, uri: Uri) {
    *request.uri_mut() = uri;
    *request.version_mut() = http::Version::HTTP_11;
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_takes_the_normalized_path_and_raw_query() {
        let base: Uri = "http://127.0.0.1:5006".parse().unwrap();
        let uri = upstream_uri(&base, "/panel/app", Some("a=1&b=%2F")).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:5006/panel/app?a=1&b=%2F");
    }
}
