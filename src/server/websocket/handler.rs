//! An allowed WebSocket upgrade: handshake with the upstream first, then answer the client
//! with 101 and bridge the two in a task tracked for shutdown.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::task::TaskTracker;

use super::bridge::{self, SessionEnd};
use super::registry::WsRegistry;
use super::socket::{self, Socket};
use super::upgrade::{HANDSHAKE_HEADERS, client_key};
use crate::config::UpstreamConfig;
use crate::identity::Identity;
use crate::policy::{PolicyStore, RequestInfo, Route, Upstream};
use crate::server::body::{self, Body};
use crate::server::error::GatewayError;
use crate::session::Session;
use crate::telemetry;

/// What an upgrade needs from the gateway.
pub struct UpgradeContext<'a> {
    pub registry: &'a Arc<WsRegistry>,
    pub tasks: &'a TaskTracker,
    pub upstream: &'a UpstreamConfig,
    pub policies: &'a PolicyStore,
    /// The policy generation that allowed the upgrade.
    pub decided_on: u64,
}

/// Bridges an allowed upgrade. `upstream_headers` are the client's headers after hygiene, with
/// identity headers and `X-Forwarded-*` already set; `info` and `identity` are kept for re-checks.
/// A bridge opened with a session cookie ends with it: closed (1008) when the user logs out on
/// this gateway or when the session expires.
pub async fn handle(
    ctx: UpgradeContext<'_>,
    mut request: Request<Incoming>,
    upstream_headers: HeaderMap,
    route: Arc<Route>,
    info: RequestInfo,
    identity: Option<Identity>,
    session: Option<&Session>,
) -> Result<Response<Body>, GatewayError> {
    let key = client_key(request.headers())?;
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (upstream_socket, protocol) = match &route.upstream {
        Upstream::Whoami => (None, None),
        Upstream::Http(base) => match connect(ctx.upstream, base, &info, upstream_headers).await? {
            Connected::Open(upstream, protocol) => (Some(upstream), protocol),
            Connected::Refused(response) => return Ok(response),
        },
    };
    let registration =
        ctx.registry
            .register(route.name.clone(), identity, session.map(|s| s.id), info);
    let session_end = SessionEnd::at(session.map(|s| Instant::now() + s.remaining()));
    // Read after registering: a later swap's re-check sees this bridge, an earlier one did not.
    let serving = ctx.policies.snapshot();
    if serving.generation != ctx.decided_on {
        ctx.registry.recheck_one(&registration, &serving.set);
    }
    ctx.tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(err) => {
                tracing::debug!(error = %err, "client went away during the WebSocket upgrade");
                return;
            }
        };
        let orders = registration.close_orders.clone();
        let reason = match upstream_socket {
            Some((upstream, read_ahead)) => {
                bridge::relay(upgraded, upstream, read_ahead, orders, session_end).await
            }
            None => {
                let client = Socket::new(upgraded, Role::Server, bridge::client_framing());
                bridge::echo(client, orders, session_end).await
            }
        };
        metrics::counter!(telemetry::WEBSOCKETS_CLOSED_TOTAL, "route" => route.name.to_string(), "reason" => reason)
            .increment(1);
        drop(registration);
    });

    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        );
    if let Some(protocol) = protocol {
        response = response.header(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
        .body(body::empty())
        .map_err(|err| GatewayError::Internal(format!("101 response: {err}")))
}

enum Connected {
    /// The upstream's stream with what it sent behind its 101, and its chosen subprotocol.
    Open((TcpStream, Vec<u8>), Option<HeaderValue>),
    /// The upstream answered the handshake with something other than 101: pass it on.
    Refused(Response<Body>),
}

async fn connect(
    config: &UpstreamConfig,
    base: &http::Uri,
    info: &RequestInfo,
    mut headers: HeaderMap,
) -> Result<Connected, GatewayError> {
    if base.scheme_str() != Some("http") {
        return Err(GatewayError::UpstreamFailed(
            "WebSocket bridging supports http:// upstreams only".into(),
        ));
    }
    let authority = base
        .authority()
        .ok_or_else(|| GatewayError::Internal("upstream has no authority".into()))?;
    let tcp = tokio::time::timeout(
        config.connect_timeout,
        TcpStream::connect(authority.as_str()),
    )
    .await
    .map_err(|_| GatewayError::UpstreamUnreachable("connect timed out".into()))?
    .map_err(|err| GatewayError::UpstreamUnreachable(err.to_string()))?;
    let _ = tcp.set_nodelay(true);

    for name in HANDSHAKE_HEADERS {
        headers.remove(name);
    }
    let target = match &info.query {
        Some(query) => format!("ws://{authority}{}?{query}", info.path),
        None => format!("ws://{authority}{}", info.path),
    };
    let mut handshake = Request::get(target)
        .body(())
        .map_err(|err| GatewayError::Internal(format!("upstream handshake: {err}")))?;
    *handshake.headers_mut() = headers;
    let handshake_headers = handshake.headers_mut();
    handshake_headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    handshake_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    handshake_headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    let key = HeaderValue::try_from(generate_key()).expect("base64 key is a valid header value");
    handshake_headers.insert(header::SEC_WEBSOCKET_KEY, key);
    if !handshake_headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::try_from(info.host.as_str())
    {
        handshake_headers.insert(header::HOST, host);
    }

    let attempt = tokio::time::timeout(
        config.response_timeout,
        socket::connect(handshake, tcp, bridge::framing()),
    )
    .await
    .map_err(|_| GatewayError::UpstreamTimeout)?;
    match attempt {
        Ok((stream, read_ahead, response)) => {
            let protocol = response
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .cloned();
            Ok(Connected::Open((stream, read_ahead), protocol))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(refusal)) => {
            let (parts, bytes) = refusal.into_parts();
            let mut response = Response::new(body::full(bytes.unwrap_or_default()));
            *response.status_mut() = parts.status;
            if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type.clone());
            }
            Ok(Connected::Refused(response))
        }
        Err(err) => Err(GatewayError::UpstreamFailed(format!(
            "WebSocket handshake: {err}"
        ))),
    }
}
