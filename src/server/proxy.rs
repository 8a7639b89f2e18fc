//! Upstream HTTP client: pooled keep-alive HTTP/1.1 connections (one pool per worker), bodies
//! streamed both ways, timeouts mapped to 502/504.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::body::Body;
use super::deadline::Deadlines;
use super::error::GatewayError;
use super::headers::remove_hop_by_hop;
use super::outgoing::Outgoing;
use super::pool::{Pool, PooledBody};
use crate::config::UpstreamConfig;
use crate::telemetry;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Forwards requests to `http://` and `https://` upstreams over pooled HTTP/1.1 connections.
#[derive(Clone)]
pub struct UpstreamClient {
    connector: Connector,
    pool: Arc<Pool>,
    response_timeout: Duration,
    deadlines: Deadlines,
}

impl UpstreamClient {
    /// `deadlines` times the wait for response headers: the serving worker's timers.
    pub fn new(config: &UpstreamConfig, deadlines: Deadlines) -> Result<Self, std::io::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(UpstreamClient {
            connector,
            pool: Pool::new(config.pool_max_idle_per_host, config.pool_idle_timeout),
            response_timeout: config.response_timeout,
            deadlines,
        })
    }

    /// Sends the request in `outgoing` (already rewritten for the upstream: origin-form target,
    /// HTTP/1.1) to the upstream at `base` and returns its response with hop-by-hop headers
    /// removed. The response body streams; only the wait for the response headers is timed,
    /// from `started` (the caller's clock reading, so that the request takes one).
    pub async fn forward(
        &self,
        base: &Uri,
        outgoing: &mut Outgoing,
        started: Instant,
    ) -> Result<Response<Body>, GatewayError> {
        // Selected here rather than through `Deadlines::timeout`: the request's future is built
        // in place instead of being moved into another one.
        let expired = self.deadlines.sleep_until(started + self.response_timeout);
        tokio::select! {
            biased;
            sent = self.send(base, outgoing, started) => sent,
            () = expired => Err(GatewayError::UpstreamTimeout),
        }
    }

    async fn send(
        &self,
        base: &Uri,
        outgoing: &mut Outgoing,
        now: Instant,
    ) -> Result<Response<Body>, GatewayError> {
        let https = base.scheme() == Some(&http::uri::Scheme::HTTPS);
        let authority = base
            .authority()
            .ok_or_else(|| GatewayError::Internal("upstream has no authority".into()))?;
        let (origin, pooled) = self.pool.checkout(https, authority.as_str(), now);
        let (sender, response) = match pooled {
            Some(sender) => match self.send_on(sender, outgoing).await {
                Ok(sent) => sent,
                // The pooled connection closed before taking the request (the upstream ended an
                // idle keep-alive connection): the request is intact, send it on a fresh one.
                Err(Unsent::Retry) => {
                    let sender = Box::pin(self.connect(base)).await?;
                    self.send_on(sender, outgoing)
                        .await
                        .map_err(Unsent::into_error)?
                }
                Err(failed) => return Err(failed.into_error()),
            },
            None => {
                let sender = Box::pin(self.connect(base)).await?;
                self.send_on(sender, outgoing)
                    .await
                    .map_err(Unsent::into_error)?
            }
        };
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        let body = PooledBody::new(body, &self.pool, origin, sender).boxed();
        Ok(Response::from_parts(parts, body))
    }

    /// Sends the request on `sender`, or leaves it in `outgoing` when the connection was gone
    /// before taking it.
    async fn send_on(
        &self,
        mut sender: SendRequest<Incoming>,
        outgoing: &mut Outgoing,
    ) -> Result<(SendRequest<Incoming>, Response<Incoming>), Unsent> {
        if sender.ready().await.is_err() {
            return Err(Unsent::Retry);
        }
        let request = outgoing.take().map_err(Unsent::Refused)?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok((sender, response)),
            Err(mut err) => match err.take_message() {
                Some(request) => {
                    outgoing.put_back(request);
                    Err(Unsent::Retry)
                }
                None => Err(Unsent::Failed(error_chain(err.error()))),
            },
        }
    }

    async fn connect(&self, base: &Uri) -> Result<SendRequest<Incoming>, GatewayError> {
        let unreachable =
            |err: &dyn std::error::Error| GatewayError::UpstreamUnreachable(error_chain(err));
        let stream = self
            .connector
            .clone()
            .call(base.clone())
            .await
            .map_err(|err| unreachable(&*err))?;
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(stream)
            .await
            .map_err(|err| unreachable(&err))?;
        let upstream = base.authority().map_or("-", |a| a.as_str()).to_owned();
        metrics::counter!(telemetry::UPSTREAM_CONNECTIONS_OPENED_TOTAL, "upstream" => upstream)
            .increment(1);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Why a request did not get a response on a connection.
enum Unsent {
    /// The connection was gone before the request left: it is back in its slot and can go on
    /// another connection.
    Retry,
    Failed(String),
    /// There was no request to send.
    Refused(GatewayError),
}

impl Unsent {
    fn into_error(self) -> GatewayError {
        match self {
            Unsent::Retry => {
                GatewayError::UpstreamFailed("the upstream closed the connection".into())
            }
            Unsent::Failed(reason) => GatewayError::UpstreamFailed(reason),
            Unsent::Refused(error) => error,
        }
    }
}

/// The request target the upstream receives: the normalized path and the raw query of
/// `original`. An already canonical path keeps the parsed target as it is (no copy, no reparse).
pub fn origin_form(original: &Uri, path: &str) -> Result<Uri, GatewayError> {
    if let Some(target) = original.path_and_query()
        && target.path() == path
    {
        return Ok(Uri::from(target.clone()));
    }
    let target = match original.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    Uri::try_from(target)
        .map_err(|_| GatewayError::Internal("normalized path is not a valid URI path".into()))
}

/// Points the request at the upstream over HTTP/1.1. The client's `Host` stays (apps like Bokeh
/// check it); the guard has already set it from `:authority` for HTTP/2 clients.
pub fn prepare_request(request: &mut Request<Incoming>, target: Uri) {
    *request.uri_mut() = target;
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
    fn origin_form_takes_the_normalized_path_and_raw_query() {
        let cases = [
            ("/panel/../app?a=1&b=%2F", "/app", "/app?a=1&b=%2F"),
            ("/panel/app?a=1&b=%2F", "/panel/app", "/panel/app?a=1&b=%2F"),
            ("//x", "/x", "/x"),
            ("/", "/", "/"),
            ("http://example.com:8080/a/./b?q", "/a/b", "/a/b?q"),
            ("http://example.com/a?q", "/a", "/a?q"),
        ];
        for (original, path, want) in cases {
            let uri = origin_form(&original.parse().unwrap(), path).unwrap();
            assert_eq!(uri.to_string(), want, "{original}");
            assert!(
                uri.scheme().is_none() && uri.authority().is_none(),
                "{original}"
            );
        }
    }
}
