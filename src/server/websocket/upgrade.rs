//! The HTTP side of a WebSocket upgrade: recognising it, checking `Origin`, and the handshake
//! headers on both sides.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request};

use crate::policy::Route;
use crate::server::error::GatewayError;
use crate::server::initiator::names_the_host;

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
/// route allows: the host and port the request was sent to (its `Host`), plus the route's
/// `allowed_origins`. Clients that send none are not browsers.
///
/// The port counts: cookies are shared by every port of a host, so a page served by another
/// app on the same host but another port must not open a socket with the user's session.
pub fn check_origin(headers: &HeaderMap, route: &Route) -> Result<(), GatewayError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let same_host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| names_the_host(&origin, host));
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

    fn upgrade(origin: &str, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::try_from(origin).unwrap());
        headers.insert(header::HOST, HeaderValue::try_from(host).unwrap());
        headers
    }

    #[test]
    fn an_origin_on_the_requested_host_and_port_is_allowed_by_default() {
        for (origin, host) in [
            ("https://apps.example.com", "apps.example.com"),
            ("https://Apps.Example.com/", "apps.example.com:443"),
            ("http://apps.example.com", "apps.example.com"),
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("http://[::1]:8080", "[::1]:8080"),
        ] {
            let headers = upgrade(origin, host);
            assert!(
                check_origin(&headers, &route(&[])).is_ok(),
                "{origin} {host}"
            );
        }
    }

    #[test]
    fn cross_site_and_other_port_origins_are_refused() {
        for (origin, host) in [
            ("https://evil.example.net", "apps.example.com"),
            ("https://apps.example.com.evil.net", "apps.example.com"),
            ("null", "apps.example.com"),
            // Another app on the same host shares its cookies, not its origin.
            ("http://127.0.0.1:9999", "127.0.0.1:8080"),
            ("https://apps.example.com:8443", "apps.example.com"),
            ("https://apps.example.com", "apps.example.com:8443"),
        ] {
            let headers = upgrade(origin, host);
            assert!(
                check_origin(&headers, &route(&[])).is_err(),
                "{origin} {host}"
            );
        }
    }

    #[test]
    fn listed_origins_are_allowed_besides_the_same_host() {
        let allowed = route(&["https://dash.example.com"]);
        let check = |origin: &str| check_origin(&upgrade(origin, "x"), &allowed);
        assert!(check("https://dash.example.com/").is_ok());
        assert!(check("https://x").is_ok());
        assert!(check("https://other.example.com").is_err());
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
