//! The login endpoints: `/oauth2/start` (provider redirect or the login page),
//! `/oauth2/callback`, `/oauth2/login` (the basic-auth form) and `/oauth2/logout`.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::body::{self, Body};
use super::guard::RequestContext;
use super::initiator::{Initiator, initiator, is_page_navigation};
use super::respond::{self, with_type};
use super::state::Shared;
use crate::identity::basic::{AuthError, CSRF_FIELD};
use crate::identity::oidc::{CALLBACK_PATH, LoginError};
use crate::pages::{self, ErrorPage, LoginPage, LogoutConfirmPage, LogoutPage, ProviderButton};
use crate::telemetry;

pub const START_PATH: &str = "/oauth2/start";
pub const FORM_PATH: &str = "/oauth2/login";
pub const LOGOUT_PATH: &str = "/oauth2/logout";

/// The largest login form accepted; a username and password never need more.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Whether `path` is one of the login endpoints.
pub fn is_login_path(path: &str) -> bool {
    matches!(path, START_PATH | CALLBACK_PATH | FORM_PATH | LOGOUT_PATH)
}

/// Serves a login endpoint; `request` has had client identity headers stripped already.
pub async fn serve(
    shared: &Shared,
    ctx: &RequestContext,
    path: &str,
    request: http::Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    match (path, &parts.method) {
        (START_PATH, &Method::GET) => start(shared, ctx, &parts).await,
        (CALLBACK_PATH, &Method::GET) => callback(shared, ctx, &parts).await,
        (FORM_PATH, &Method::POST) => basic_form(shared, ctx, &parts, body).await,
        (LOGOUT_PATH, &Method::GET | &Method::POST) => logout(shared, ctx, &parts).await,
        _ => {
            let mut response = page(
                shared,
                ctx,
                StatusCode::METHOD_NOT_ALLOWED,
                "This endpoint does not accept that method.",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            response
        }
    }
}

/// A provider redirect when the choice is clear, the login page otherwise.
async fn start(shared: &Shared, ctx: &RequestContext, parts: &Parts) -> Response<Body> {
    let named = query_value(parts, "provider").is_some();
    let only_oidc = shared.basic.is_none() && shared.providers.list().len() == 1;
    if named || only_oidc {
        return match shared.providers.start(parts, &shared.sessions).await {
            Ok(redirect) => redirect.map(body::full),
            Err(err) => login_error(shared, ctx, &err),
        };
    }
    if shared.providers.is_empty() && shared.basic.is_none() {
        return page(
            shared,
            ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            "No login method is configured on this gateway.",
        );
    }
    let rd = requested_redirect(shared, parts);
    login_page(shared, ctx, parts, &rd, StatusCode::OK, None)
}

/// The login page; `rd` is where a successful login goes (already checked to be safe).
fn login_page(
    shared: &Shared,
    ctx: &RequestContext,
    parts: &Parts,
    rd: &str,
    status: StatusCode,
    error: Option<String>,
) -> Response<Body> {
    let rd = rd.to_string();
    let encoded_rd =
        percent_encoding::utf8_percent_encode(&rd, percent_encoding::NON_ALPHANUMERIC).to_string();
    let providers = shared
        .providers
        .list()
        .into_iter()
        .map(|(name, display_name)| ProviderButton {
            start_url: format!("{START_PATH}?provider={name}&rd={encoded_rd}"),
            name,
            display_name,
        })
        .collect();
    let csrf = shared
        .basic
        .as_ref()
        .map(|basic| basic.csrf_token(&parts.headers, shared.secure_cookies()));
    let page = LoginPage {
        providers,
        basic_form: shared.basic.is_some(),
        csrf_token: csrf.as_ref().map(|token| token.form_token.clone()),
        error,
        rd,
        login_action: FORM_PATH.into(),
    };
    let mut response = with_type(
        status,
        shared.pages.login(&page),
        "text/html; charset=utf-8",
        &ctx.request_id,
    );
    if let Some(token) = csrf
        && let Ok(cookie) = HeaderValue::try_from(token.set_cookie)
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn callback(shared: &Shared, ctx: &RequestContext, parts: &Parts) -> Response<Body> {
    match shared.providers.callback(parts, &shared.sessions).await {
        Ok((session, rd, set_cookies)) => {
            let provider = session.identity.provider.clone();
            metrics::counter!(telemetry::LOGINS_TOTAL, "provider" => provider, "result" => "ok")
                .increment(1);
            tracing::info!(subject = %session.identity.subject, provider = %session.identity.provider, "login");
            let mut response = respond::redirect(&rd);
            append_cookies(response.headers_mut(), set_cookies);
            response
        }
        Err(err) => {
            let provider = query_value(parts, "provider").unwrap_or_else(|| "-".into());
            let provider = if shared
                .providers
                .list()
                .iter()
                .any(|(name, _)| *name == provider)
            {
                provider
            } else {
                "-".into()
            };
            metrics::counter!(telemetry::LOGINS_TOTAL, "provider" => provider, "result" => "error")
                .increment(1);
            login_error(shared, ctx, &err)
        }
    }
}

async fn basic_form(
    shared: &Shared,
    ctx: &RequestContext,
    parts: &Parts,
    body: Incoming,
) -> Response<Body> {
    let Some(basic) = &shared.basic else {
        return page(
            shared,
            ctx,
            StatusCode::NOT_FOUND,
            "Password login is not configured on this gateway.",
        );
    };
    let form = match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return page(
                shared,
                ctx,
                StatusCode::PAYLOAD_TOO_LARGE,
                "The login form is too large.",
            );
        }
    };
    let fields = Form::parse(&form);
    // A refused attempt shows the form again, still pointing where the user was going.
    let rd = fields
        .get("rd")
        .and_then(|rd| shared.providers.safe_redirect(rd))
        .unwrap_or_else(|| "/".into());
    if basic
        .check_csrf(&parts.headers, fields.get(CSRF_FIELD))
        .is_err()
    {
        return login_page(
            shared,
            ctx,
            parts,
            &rd,
            StatusCode::FORBIDDEN,
            Some("The form expired. Please try again.".into()),
        );
    }
    let username = fields.get("username").unwrap_or_default();
    let password = fields.get("password").unwrap_or_default();
    match basic.authenticate(username, password, ctx.client_ip).await {
        Ok(identity) => {
            let session = shared.sessions.new_session(identity, None);
            match shared
                .sessions
                .seal(&session, shared.secure_cookies(), &parts.headers)
            {
                Ok(cookies) => {
                    let mut response = respond::redirect(&rd);
                    append_cookies(response.headers_mut(), cookies);
                    response
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot seal a session");
                    page(
                        shared,
                        ctx,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "The session could not be created.",
                    )
                }
            }
        }
        Err(err) => auth_failure(shared, ctx, parts, &rd, &err),
    }
}

fn auth_failure(
    shared: &Shared,
    ctx: &RequestContext,
    parts: &Parts,
    rd: &str,
    err: &AuthError,
) -> Response<Body> {
    let status = err.status();
    let mut response = if status == StatusCode::UNAUTHORIZED {
        login_page(
            shared,
            ctx,
            parts,
            rd,
            status,
            Some("Wrong username or password.".into()),
        )
    } else {
        page(shared, ctx, status, &err.to_string())
    };
    if let Some(seconds) = err.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Ends the session when the request is the person's own, and asks them to confirm when it may
/// be another site's: a link or image elsewhere must not sign people out (nor, through the
/// provider's end-session endpoint, out of every app that uses it).
async fn logout(shared: &Shared, ctx: &RequestContext, parts: &Parts) -> Response<Body> {
    let session = shared.sessions.open(&parts.headers);
    if session.is_some() && !logout_is_intended(parts) {
        tracing::debug!("logout from another site or without fetch metadata: asking to confirm");
        let page = LogoutConfirmPage {
            logout_action: LOGOUT_PATH.into(),
            cancel_url: "/".into(),
        };
        return with_type(
            StatusCode::OK,
            shared.pages.logout_confirm(&page),
            "text/html; charset=utf-8",
            &ctx.request_id,
        );
    }
    let cleared = shared.sessions.clear(&parts.headers);
    let provider_logout = match &session {
        Some(session) => shared.providers.logout(session).await,
        None => None,
    };
    if let Some(session) = &session {
        // Its sockets on this gateway end with it (other replicas close theirs at expiry).
        let sockets = shared.websockets.close_session(&session.id, "logged out");
        tracing::info!(subject = %session.identity.subject, sockets, "logout");
    }
    let mut response = match provider_logout {
        Some(url) => respond::redirect(&url),
        None => {
            let page = LogoutPage {
                login_url: START_PATH.into(),
            };
            with_type(
                StatusCode::OK,
                shared.pages.logout(&page),
                "text/html; charset=utf-8",
                &ctx.request_id,
            )
        }
    };
    append_cookies(response.headers_mut(), cleared);
    response
}

/// Whether a logout request is the person's: a page of this origin (or the address bar) loading
/// the logout page, or a POST that is not another origin's (a browser names the origin of every
/// POST; one that names none is not a browser, which no other site can steer).
fn logout_is_intended(parts: &Parts) -> bool {
    let from = initiator(&parts.headers);
    if parts.method == Method::POST {
        from != Initiator::Elsewhere
    } else {
        from == Initiator::Here && is_page_navigation(&parts.headers)
    }
}

/// The `rd` a login should return to: the query's, if it is safe (a path here, or a URL on an
/// allowed host), else `/`.
fn requested_redirect(shared: &Shared, parts: &Parts) -> String {
    query_value(parts, "rd")
        .and_then(|rd| shared.providers.safe_redirect(&rd))
        .unwrap_or_else(|| "/".into())
}

fn login_error(shared: &Shared, ctx: &RequestContext, err: &LoginError) -> Response<Body> {
    tracing::warn!(error = %err, "login failed");
    let mut response = page(shared, ctx, err.status(), err.user_message());
    if matches!(err, LoginError::ProviderUnavailable { .. }) {
        // A failed probe is remembered for 2 s; a retry after that probes the provider again.
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// An error page (browser) or JSON (anything else) with `message`.
fn page(
    shared: &Shared,
    ctx: &RequestContext,
    status: StatusCode,
    message: &str,
) -> Response<Body> {
    if ctx.wants_html {
        let mut page = ErrorPage::for_status(status.as_u16(), &ctx.request_id);
        page.error_msg = message.into();
        with_type(
            status,
            shared.pages.error(&page),
            "text/html; charset=utf-8",
            &ctx.request_id,
        )
    } else {
        let json = pages::error_json(status.as_u16(), message, &ctx.request_id);
        with_type(status, json, "application/json", &ctx.request_id)
    }
}

pub fn append_cookies(headers: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
}

fn query_value(parts: &Parts, key: &str) -> Option<String> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
}

/// A parsed `application/x-www-form-urlencoded` body.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(bytes: &Bytes) -> Form {
        Form(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}
