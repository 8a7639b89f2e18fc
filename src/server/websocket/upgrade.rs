//! The HTTP side of a WebSocket upgrade: recognising it, checking `Origin`, and the handshake
//! headers on both sides.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request};

use crate::policy::Route;
use crate::server::error::GatewayError;

/// An HTTP/1.1 `Upgrade: websocket` request.
pub fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.method() == Method::GET
        && header_has_token(request.headers(), header::UPGRADE, "websocket")
        && header_has_token(request.headers(), header::CONNECTION, "upgrade")
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

/// The client's `Sec-WebSocket-Key`, after checking it speaks version 13.
pub fn client_key(headers: &HeaderMap) -> Result<HeaderValue, GatewayError> {
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(GatewayError::MalformedUpgrade(
            "Sec-WebSocket-Version must be 13",
        ));
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|key| !key.is_empty())
        .cloned()
        .ok_or(GatewayError::MalformedUpgrade("missing Sec-WebSocket-Key"))
}

/// Stops cross-site WebSocket hijacking: a browser always sends `Origin`, and it must be one the
/// route allows: the gateway's own host, plus the route's `allowed_origins`. Clients that send
/// none are not browsers.
pub fn check_origin(headers: &HeaderMap, route: &Route, host: &str) -> Result<(), GatewayError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let same_host = origin_host(&origin).is_some_and(|origin_host| origin_host == host);
    let listed = route
        .allowed_origins
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(&origin));
    let allowed = same_host || listed;
    if allowed {
        Ok(())
    } else {
        Err(GatewayError::CrossOriginWebSocket { origin })
    }
}

/// Host of an origin `scheme://host[:port]`, without the port.
fn origin_host(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    if let Some(bracketed) = rest.strip_prefix('[') {
        return bracketed.split_once(']').map(|(host, _)| host);
    }
    Some(rest.split(':').next().unwrap_or(rest))
}

/// Headers that belong to one handshake and must not be copied to the other.
pub const HANDSHAKE_HEADERS: [header::HeaderName; 4] = [
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Upstream;

    fn route(origins: &[&str]) -> Route {
        Route {
            name: "r".into(),
            upstream: Upstream::Whoami,
            websocket: true,
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            basic_header: Default::default(),
        }
    }

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::try_from(origin).unwrap());
        headers
    }

    #[test]
    fn same_host_origin_is_allowed_by_default() {
        let headers = with_origin("https://apps.example.com");
        assert!(check_origin(&headers, &route(&[]), "apps.example.com").is_ok());
        let headers = with_origin("http://127.0.0.1:8080");
        assert!(check_origin(&headers, &route(&[]), "127.0.0.1").is_ok());
    }

    #[test]
    fn cross_site_origin_is_refused() {
        for origin in [
            "https://evil.example.net",
            "https://apps.example.com.evil.net",
            "null",
        ] {
            let headers = with_origin(origin);
            assert!(
                check_origin(&headers, &route(&[]), "apps.example.com").is_err(),
                "{origin}"
            );
        }
    }

    #[test]
    fn listed_origins_are_allowed_besides_the_same_host() {
        let allowed = route(&["https://dash.example.com"]);
        assert!(check_origin(&with_origin("https://dash.example.com/"), &allowed, "x").is_ok());
        assert!(check_origin(&with_origin("https://x"), &allowed, "x").is_ok());
        assert!(check_origin(&with_origin("https://other.example.com"), &allowed, "x").is_err());
    }

    #[test]
    fn upgrade_needs_both_headers_and_get() {
        let request = Request::get("/ws")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .body(())
            .unwrap();
        assert!(is_upgrade(&request));
        let request = Request::get("/ws")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert!(!is_upgrade(&request));
    }
}
