use std::net::IpAddr;

/// `http` or `https`, as the client reached the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The facts about one request that a policy may look at (CEL: `request`).
///
/// Built once by the server's guard; `path` is already normalized and is exactly the path the
/// upstream will receive. Kept owned so a WebSocket bridge can be decided again after a reload.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub method: http::Method,
    pub scheme: Scheme,
    /// Lower-cased host without port.
    pub host: String,
    /// Normalized, percent-decoded where safe, always starting with `/`.
    pub path: String,
    pub query: Option<String>,
    /// Request headers after identity headers were stripped.
    pub headers: http::HeaderMap,
    pub websocket: bool,
    pub ip: IpAddr,
}
