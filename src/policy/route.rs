//! A compiled route as the server sees it: where an allowed request goes.

use std::sync::Arc;

/// Where a route sends allowed requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// `builtin:whoami`: an in-process demo app that echoes what it received.
    Whoami,
    /// `http://host:port` or `https://host:port`: scheme and authority only.
    Http(http::Uri),
}

impl Upstream {
    /// Parses `upstream:`; a path, query or userinfo is rejected: the gateway forwards the
    /// request's own path unchanged.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text == "builtin:whoami" {
            return Ok(Upstream::Whoami);
        }
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("invalid upstream `{text}`: {e}"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(format!(
                    "upstream `{text}` must start with http:// or https:// (or be builtin:whoami)"
                ));
            }
        }
        let Some(authority) = uri.authority() else {
            return Err(format!("upstream `{text}` has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(format!("upstream `{text}` must not carry credentials"));
        }
        let path = uri.path_and_query().map_or("", |p| p.as_str());
        if !(path.is_empty() || path == "/") {
            return Err(format!(
                "upstream `{text}` has a path or query `{path}`: give scheme and host:port only"
            ));
        }
        let clean: http::Uri = format!("{}://{}", uri.scheme_str().unwrap_or("http"), authority)
            .parse()
            .map_err(|e| format!("invalid upstream `{text}`: {e}"))?;
        Ok(Upstream::Http(clean))
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Whoami => f.write_str("builtin:whoami"),
            Upstream::Http(uri) => write!(
                f,
                "{}://{}",
                uri.scheme_str().unwrap_or("http"),
                uri.authority().map_or("", |a| a.as_str())
            ),
        }
    }
}

/// A compiled route: what the server needs to forward an allowed request.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub upstream: Upstream,
    /// Whether WebSocket upgrades may be bridged on this route.
    pub websocket: bool,
    /// Allowed `Origin` values for WebSocket upgrades (`scheme://host[:port]`, lower-case);
    /// empty means same host only.
    pub allowed_origins: Vec<String>,
    /// Whether an `Authorization: Basic` header may log in a request on this route.
    pub basic_header: BasicHeader,
}

/// A route's `basic_header:`: may an API client log in with `Authorization: Basic` here?
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BasicHeader {
    /// Absent: as `basic_auth.allow_header` says.
    #[default]
    FollowGateway,
    /// `basic_header: true`: accepted even when `allow_header` is off.
    Accept,
    /// `basic_header: false`: never accepted; the request stays anonymous.
    Refuse,
}

impl BasicHeader {
    pub(crate) fn from_flag(flag: Option<bool>) -> Self {
        match flag {
            None => BasicHeader::FollowGateway,
            Some(true) => BasicHeader::Accept,
            Some(false) => BasicHeader::Refuse,
        }
    }

    /// Whether the header is accepted, given the gateway-wide `allow_header`.
    pub fn accepts(self, allow_header: bool) -> bool {
        match self {
            BasicHeader::FollowGateway => allow_header,
            BasicHeader::Accept => true,
            BasicHeader::Refuse => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_take_scheme_and_authority_only() {
        assert_eq!(Upstream::parse("builtin:whoami"), Ok(Upstream::Whoami));
        let ok = Upstream::parse("http://127.0.0.1:5006").unwrap();
        assert_eq!(ok.to_string(), "http://127.0.0.1:5006");
        assert!(Upstream::parse("http://127.0.0.1:5006/").is_ok());
        for bad in [
            "http://127.0.0.1:5006/app",
            "http://127.0.0.1:5006/?x=1",
            "ftp://host",
            "127.0.0.1:5006",
            "http://user:pw@host",
            "builtin:other",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn basic_header_overrides_the_gateway_switch_both_ways() {
        let cases = [
            (None, false, false),
            (None, true, true),
            (Some(true), false, true),
            (Some(true), true, true),
            (Some(false), false, false),
            (Some(false), true, false),
        ];
        for (flag, allow_header, want) in cases {
            assert_eq!(
                BasicHeader::from_flag(flag).accepts(allow_header),
                want,
                "basic_header: {flag:?}, allow_header: {allow_header}"
            );
        }
    }
}
