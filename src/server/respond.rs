//! Turning a refusal into a response: a page from `templates/` for a browser, JSON otherwise.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::{self, Body};
use super::error::GatewayError;
use crate::pages::{self, ErrorPage, Pages};
use crate::telemetry::REQUEST_ID_HEADER;

/// Renders a gateway error for the client; details that are not the client's stay in the log.
pub fn error_response(
    pages: &Pages,
    error: &GatewayError,
    request_id: &str,
    wants_html: bool,
) -> Response<Body> {
    let status = error.status();
    let message = error.public_message();
    let mut response = if wants_html {
        let mut page = ErrorPage::for_status(status.as_u16(), request_id);
        page.error_msg = message;
        with_type(
            status,
            pages.error(&page),
            "text/html; charset=utf-8",
            request_id,
        )
    } else {
        let json = pages::error_json(status.as_u16(), &message, request_id);
        with_type(status, json, "application/json", request_id)
    };
    if let Some(seconds) = error.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if matches!(error, GatewayError::BasicAuth(_)) && status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\""),
        );
    }
    response
}

/// `401` for API clients, XHR and WebSocket upgrades that need a login first.
pub fn login_required_json(login_url: &str, request_id: &str) -> Response<Body> {
    let json = serde_json::json!({
        "error": "login required",
        "status": 401,
        "login_url": login_url,
        "request_id": request_id,
    });
    with_type(
        StatusCode::UNAUTHORIZED,
        json.to_string(),
        "application/json",
        request_id,
    )
}

/// `302` to `location`, never cached.
pub fn redirect(location: &str) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A response the gateway writes itself (pages, JSON), never cached. Its pages cannot be framed
/// by another site (a login form under a transparent frame is clickjacking) and send no
/// `Referer`: a login page's URL carries the `rd` path and query the user was going to, which
/// an operator's template might otherwise leak to wherever it loads a logo or a font from.
pub fn with_type(
    status: StatusCode,
    content: String,
    content_type: &'static str,
    request_id: &str,
) -> Response<Body> {
    let mut response = Response::new(body::full(content));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if content_type.starts_with("text/html") {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if let Ok(value) = HeaderValue::try_from(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}
