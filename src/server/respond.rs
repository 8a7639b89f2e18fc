//! Turning a refusal into a response: an HTML page for a browser, JSON for everything else.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::{self, Body};
use super::error::GatewayError;

pub const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Renders a gateway error for the client; details that are not the client's stay in the log.
pub fn error_response(error: &GatewayError, request_id: &str, wants_html: bool) -> Response<Body> {
    let status = error.status();
    let message = error.public_message();
    if wants_html {
        let page = simple_page(status, error.kind(), &message, request_id);
        with_type(status, page, "text/html; charset=utf-8", request_id)
    } else {
        let json = serde_json::json!({
            "error": message,
            "error_type": error.kind(),
            "status": status.as_u16(),
            "request_id": request_id,
        });
        with_type(status, json.to_string(), "application/json", request_id)
    }
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

/// `302` to the login start for browser navigations.
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
    if let Ok(value) = HeaderValue::try_from(request_id) {
        headers.insert(REQUEST_ID, value);
    }
    response
}

fn simple_page(status: StatusCode, kind: &str, message: &str, request_id: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1><p>{message}</p><p><small>{kind} · request {request_id}</small></p></body></html>",
        code = status.as_u16(),
        reason = status.canonical_reason().unwrap_or(""),
        message = escape(message),
        kind = escape(kind),
        request_id = escape(request_id),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
