//! The gateway's own endpoints, answered before any route is matched.

use http::{Method, Request, Response, StatusCode};

use super::body::Body;
use super::guard::RequestContext;
use super::respond::with_type;
use super::state::Shared;
use crate::telemetry::{PROMETHEUS_CONTENT_TYPE, PrometheusHandle};

/// Serves `path` if it is one of the gateway's endpoints.
pub fn serve<B>(
    shared: &Shared,
    ctx: &RequestContext,
    path: &str,
    request: &Request<B>,
) -> Option<Response<Body>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return None;
    }
    match path {
        "/healthz" => Some(with_type(
            StatusCode::OK,
            "ok\n".into(),
            "text/plain",
            &ctx.request_id,
        )),
        "/readyz" => Some(readyz(shared, ctx)),
        KEYS_PATH => Some(public_keys(shared, ctx)),
        "/metrics" => shared
            .metrics
            .as_ref()
            .map(|handle| metrics(handle, &ctx.request_id)),
        _ => None,
    }
}

/// Where downstream services fetch the public keys that verify capability tokens.
pub const KEYS_PATH: &str = "/.well-known/portcullis/keys.json";

fn public_keys(shared: &Shared, ctx: &RequestContext) -> Response<Body> {
    let mut response = Response::new(super::body::full(shared.keys.public_keys_json()));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    // Short, so a rotation reaches verifiers quickly.
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=60"),
    );
    if let Ok(id) = http::HeaderValue::try_from(ctx.request_id.as_str()) {
        headers.insert(crate::telemetry::REQUEST_ID_HEADER, id);
    }
    response
}

/// Ready once a policy set serves; a failed reload is reported but keeps it ready, because the
/// last good set is still serving.
fn readyz(shared: &Shared, ctx: &RequestContext) -> Response<Body> {
    let status = shared.policies.status();
    let seconds = |time: std::time::SystemTime| {
        time.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let body = serde_json::json!({
        "ready": true,
        "policy_generation": status.generation,
        "policy_loaded_at": seconds(status.loaded_at),
        "last_reload_error": status.last_error,
        "last_reload_error_at": status.last_error_at.map(seconds),
        "websockets": shared.websockets.len(),
    });
    with_type(
        StatusCode::OK,
        body.to_string(),
        "application/json",
        &ctx.request_id,
    )
}

/// Prometheus text exposition of every gateway metric.
pub fn metrics(handle: &PrometheusHandle, request_id: &str) -> Response<Body> {
    with_type(
        StatusCode::OK,
        handle.render(),
        PROMETHEUS_CONTENT_TYPE,
        request_id,
    )
}
