//! Everything that can stop a request inside the gateway, mapped to HTTP in one place.

use std::fmt;

use http::StatusCode;

use super::path::PathError;

/// Who failed: tells the operator where to look, and the log and metric which label to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    Client,
    Upstream,
    Gateway,
}

/// A request the gateway refused or could not complete.
#[derive(Debug)]
pub enum GatewayError {
    BadPath(PathError),
    MissingHost,
    /// More than one `Host` line: which one names the route would be the upstream's guess.
    SeveralHosts,
    /// The policy denied the request; the reason is the decision's.
    Denied {
        reason: String,
    },
    /// An `Authorization: Basic` header that failed (wrong, rate limited, unavailable).
    BasicAuth(crate::identity::basic::AuthError),
    CrossOriginWebSocket {
        origin: String,
    },
    WebSocketNotAllowed,
    MalformedUpgrade(&'static str),
    UpstreamUnreachable(String),
    UpstreamTimeout,
    UpstreamFailed(String),
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadPath(_)
            | GatewayError::MissingHost
            | GatewayError::SeveralHosts
            | GatewayError::MalformedUpgrade(_) => StatusCode::BAD_REQUEST,
            GatewayError::Denied { .. }
            | GatewayError::CrossOriginWebSocket { .. }
            | GatewayError::WebSocketNotAllowed => StatusCode::FORBIDDEN,
            GatewayError::UpstreamUnreachable(_) | GatewayError::UpstreamFailed(_) => {
                StatusCode::BAD_GATEWAY
            }
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::BasicAuth(err) => err.status(),
        }
    }

    /// Seconds a rate-limited client should wait (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            GatewayError::BasicAuth(err) => err.retry_after_secs(),
            _ => None,
        }
    }

    pub fn source(&self) -> ErrorSource {
        match self {
            GatewayError::BadPath(_)
            | GatewayError::MissingHost
            | GatewayError::SeveralHosts
            | GatewayError::MalformedUpgrade(_)
            | GatewayError::Denied { .. }
            | GatewayError::CrossOriginWebSocket { .. }
            | GatewayError::WebSocketNotAllowed
            | GatewayError::BasicAuth(_) => ErrorSource::Client,
            GatewayError::UpstreamUnreachable(_)
            | GatewayError::UpstreamTimeout
            | GatewayError::UpstreamFailed(_) => ErrorSource::Upstream,
            GatewayError::Internal(_) => ErrorSource::Gateway,
        }
    }

    /// Short machine-readable kind, used as `error_type` on pages and in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::BadPath(_) => "bad_path",
            GatewayError::MissingHost => "missing_host",
            GatewayError::SeveralHosts => "several_hosts",
            GatewayError::MalformedUpgrade(_) => "bad_upgrade",
            GatewayError::Denied { .. } => "forbidden",
            GatewayError::CrossOriginWebSocket { .. } => "cross_origin_websocket",
            GatewayError::WebSocketNotAllowed => "websocket_not_allowed",
            GatewayError::UpstreamUnreachable(_) => "upstream_unreachable",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::UpstreamFailed(_) => "upstream_failed",
            GatewayError::Internal(_) => "internal",
            GatewayError::BasicAuth(_) => "basic_auth",
        }
    }

    /// What a user may be told. Upstream and internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            GatewayError::UpstreamUnreachable(_) | GatewayError::UpstreamFailed(_) => {
                "The application behind this gateway is not reachable right now.".into()
            }
            GatewayError::UpstreamTimeout => {
                "The application behind this gateway did not answer in time.".into()
            }
            GatewayError::Internal(_) => "The gateway failed to handle this request.".into(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::BadPath(err) => write!(f, "bad request path: {err}"),
            GatewayError::MissingHost => f.write_str("the request names no valid host"),
            GatewayError::SeveralHosts => f.write_str("the request has more than one Host header"),
            GatewayError::Denied { reason } => write!(f, "access denied: {reason}"),
            GatewayError::CrossOriginWebSocket { origin } => {
                write!(
                    f,
                    "WebSocket from origin {origin} is not allowed on this route"
                )
            }
            GatewayError::WebSocketNotAllowed => {
                f.write_str("WebSockets are not enabled on this route")
            }
            GatewayError::MalformedUpgrade(why) => write!(f, "malformed WebSocket upgrade: {why}"),
            GatewayError::UpstreamUnreachable(why) => write!(f, "upstream unreachable: {why}"),
            GatewayError::UpstreamTimeout => f.write_str("upstream timed out"),
            GatewayError::UpstreamFailed(why) => write!(f, "upstream failed: {why}"),
            GatewayError::Internal(why) => write!(f, "internal error: {why}"),
            GatewayError::BasicAuth(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for GatewayError {}
