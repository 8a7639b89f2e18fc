//! Phase 4 of the guard: who is calling. A sealed session cookie (refreshed when its access
//! token nears expiry), or an `Authorization: Basic` header where a login is needed and the
//! configuration allows it, or nobody.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tracing::Instrument;

use super::error::GatewayError;
use super::guard::RequestContext;
use super::state::Shared;
use crate::identity::Identity;
use crate::identity::headers::{IdentityHeaderNames, identity_headers};
use crate::policy::BasicHeader;
use crate::session::Session;
use crate::telemetry::{self, RequestId};

/// The identity a request is decided with.
#[derive(Default)]
pub struct Caller {
    pub session: Option<Arc<Session>>,
    /// Set when the request authenticated with its own `Authorization: Basic` header.
    pub basic: Option<Identity>,
}

impl Caller {
    pub fn identity(&self) -> Option<&Identity> {
        self.basic
            .as_ref()
            .or(self.session.as_ref().map(|session| &session.identity))
    }

    /// The identity headers for the upstream: kept with the session (with its current access
    /// token when `pass_access_token` is on), built for basic auth (which has no token).
    pub fn identity_headers<'c>(
        &'c self,
        names: &IdentityHeaderNames,
    ) -> Cow<'c, [(HeaderName, HeaderValue)]> {
        match (&self.session, &self.basic) {
            (_, Some(identity)) => Cow::Owned(identity_headers(identity, names)),
            (Some(session), None) => {
                let access_token = session.tokens.as_ref().map(|t| t.access_token.as_str());
                Cow::Borrowed(
                    session
                        .identity_headers
                        .get(&session.identity, access_token, names),
                )
            }
            (None, None) => Cow::Borrowed(&[]),
        }
    }

    /// What capability tokens are cached under: the session, or the basic-auth subject.
    pub fn cache_key(&self) -> &[u8] {
        match (&self.session, &self.basic) {
            (_, Some(identity)) => identity.subject.as_bytes(),
            (Some(session), None) => &session.id,
            (None, None) => &[],
        }
    }

    /// Opens the session cookie; refreshes the provider tokens when they near expiry. Cookies
    /// to set (renewed or cleared session) are pushed onto `set_cookies`.
    pub async fn from_session(
        shared: &Shared,
        headers: &HeaderMap,
        request_id: &RequestId,
        set_cookies: &mut Vec<HeaderValue>,
    ) -> Caller {
        let Some(session) = shared.sessions.open(headers) else {
            return Caller::default();
        };
        if !shared.sessions.needs_refresh(&session) {
            return Caller {
                session: Some(session),
                basic: None,
            };
        }
        Box::pin(Self::refreshed(shared, headers, session, set_cookies))
            .instrument(telemetry::request_span(request_id))
            .await
    }

    /// The caller after refreshing `session`'s provider tokens: renewed, kept (provider
    /// unreachable) or ended.
    async fn refreshed(
        shared: &Shared,
        headers: &HeaderMap,
        session: Arc<Session>,
        set_cookies: &mut Vec<HeaderValue>,
    ) -> Caller {
        match shared.providers.refresh(&session).await {
            Ok(renewed) => {
                metrics::counter!(telemetry::TOKEN_REFRESHES_TOTAL, "result" => "ok").increment(1);
                match shared
                    .sessions
                    .seal(&renewed, shared.secure_cookies(), headers)
                {
                    Ok(cookies) => set_cookies.extend(cookies),
                    Err(err) => tracing::error!(error = %err, "cannot seal the refreshed session"),
                }
                Caller {
                    session: Some(Arc::new(renewed)),
                    basic: None,
                }
            }
            Err(err) if err.ends_session() => {
                metrics::counter!(telemetry::TOKEN_REFRESHES_TOTAL, "result" => "ended")
                    .increment(1);
                // Its sockets on this gateway end with it, as at a logout.
                let sockets = shared
                    .websockets
                    .close_session(&session.id, "session ended");
                tracing::info!(subject = %session.identity.subject, error = %err, sockets, "refresh failed; session ended");
                set_cookies.extend(shared.sessions.clear(headers));
                Caller::default()
            }
            Err(err) => {
                metrics::counter!(telemetry::TOKEN_REFRESHES_TOTAL, "result" => "retry")
                    .increment(1);
                tracing::warn!(error = %err, "provider unreachable for refresh; keeping the session");
                Caller {
                    session: Some(session),
                    basic: None,
                }
            }
        }
    }

    /// Tries `Authorization: Basic` when basic auth is configured and the route accepts the
    /// header (its `basic_header:`, else `basic_auth.allow_header`). `Ok(false)`: no such
    /// header (or not accepted here), the caller stays anonymous.
    pub async fn try_basic_header(
        &mut self,
        shared: &Shared,
        ctx: &RequestContext,
        headers: &HeaderMap,
        route: BasicHeader,
    ) -> Result<bool, GatewayError> {
        let accepted = shared
            .basic
            .as_ref()
            .filter(|basic| route.accepts(basic.allow_header()));
        let Some(basic) = accepted else {
            return Ok(false);
        };
        let Some((username, password)) = basic_credentials(headers) else {
            return Ok(false);
        };
        let identity = basic
            .authenticate(&username, &password, ctx.client_ip)
            .await
            .map_err(GatewayError::BasicAuth)?;
        self.basic = Some(identity);
        Ok(true)
    }
}

/// `Authorization: Basic base64(user:password)`, if present and well-formed.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((username.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_parsed_and_other_schemes_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6czNjcjN0OndpdGg6Y29sb25z"),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".into(), "s3cr3t:with:colons".into()))
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(basic_credentials(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&headers), None);
    }
}
