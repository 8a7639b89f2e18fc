//! Policy test files (`*_test.yaml`): named cases of identity + request → expected outcome,
//! rule and grants, run by `portcullis test` against the policies of the same directory.
//!
//! ```yaml
//! cases:
//!   - name: analysts read the dashboard
//!     request: GET https://localhost/panel/app
//!     user: { sub: ana, email: ana@example.com, email_verified: true, groups: [analysts] }
//!     expect: { outcome: allow, rule: analysts at example.com, grants: [read] }
//! ```

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Outcome, RequestInfo, Scheme};
use crate::identity::Identity;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestFile {
    pub cases: Vec<Spanned<TestCase>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestCase {
    pub name: String,
    /// `METHOD URL`, e.g. `GET https://host/path?q`.
    pub request: String,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub websocket: bool,
    /// Absent or null: an anonymous request.
    pub user: Option<TestUser>,
    pub expect: Expect,
}

/// The identity of a test case or of `portcullis explain --user FILE`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestUser {
    #[serde(default)]
    pub sub: String,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default = "default_provider")]
    pub provider: String,
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

fn default_provider() -> String {
    "test".to_owned()
}

impl From<TestUser> for Identity {
    fn from(u: TestUser) -> Identity {
        Identity {
            subject: u.sub,
            email: u.email,
            email_verified: u.email_verified,
            name: u.name,
            preferred_username: u.preferred_username,
            groups: u.groups,
            provider: u.provider,
            claims: u.claims,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expect {
    pub outcome: ExpectedOutcome,
    /// Checked when present.
    pub rule: Option<String>,
    /// Checked when present.
    pub grants: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExpectedOutcome {
    Allow,
    Login,
    Deny,
}

impl From<ExpectedOutcome> for Outcome {
    fn from(o: ExpectedOutcome) -> Outcome {
        match o {
            ExpectedOutcome::Allow => Outcome::Allow,
            ExpectedOutcome::Login => Outcome::Login,
            ExpectedOutcome::Deny => Outcome::Deny,
        }
    }
}

/// Parses `GET https://host:port/path?query` into request facts. The path is taken literally
/// (the server normalizes real requests before deciding); a `#fragment` is dropped, as
/// browsers never send it.
pub(crate) fn parse_request_line(
    line: &str,
    headers: &HashMap<String, String>,
    ip: Option<IpAddr>,
    websocket: bool,
) -> Result<RequestInfo, String> {
    let mut parts = line.split_whitespace();
    let (Some(method), Some(url), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "request {line:?} must be `METHOD URL`, e.g. `GET https://host/path`"
        ));
    };
    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {method:?}"))?;
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(format!("URL {url:?} must start with http:// or https://"));
    };
    let rest = rest.split('#').next().unwrap_or("");
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    if host.is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let name = http::header::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("invalid header name {k:?}"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("invalid header value for {k:?}"))?;
        map.append(name, value);
    }
    Ok(RequestInfo {
        method,
        scheme,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        path,
        query,
        headers: map,
        websocket,
        ip: ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_into_facts() {
        let none = HashMap::new();
        let r = parse_request_line(
            "get https://App.Example.com:8443/a/b?x=1#frag",
            &none,
            None,
            false,
        )
        .unwrap();
        assert_eq!(r.method, http::Method::GET);
        assert_eq!(r.scheme, Scheme::Https);
        assert_eq!(r.host, "app.example.com");
        assert_eq!(r.path, "/a/b");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        let r = parse_request_line("POST http://localhost", &none, None, false).unwrap();
        assert_eq!(r.path, "/");
        let r = parse_request_line("GET http://h/?/panel/static/x", &none, None, false).unwrap();
        assert_eq!(r.path, "/");
        assert!(parse_request_line("GET /path", &none, None, false).is_err());
        assert!(parse_request_line("GET", &none, None, false).is_err());
    }
}
