//! `builtin:whoami`: an in-process demo upstream that answers with what it received, so a
//! newcomer sees identity headers and the capability token without running an app.

use http::{Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use super::body::{self, Body};

/// Answers with the method, path, query, headers and body size it received, as JSON.
/// The body is counted frame by frame, never buffered.
pub async fn respond(request: Request<Incoming>) -> Response<Body> {
    let (parts, mut incoming) = request.into_parts();
    let mut body_bytes: u64 = 0;
    while let Some(frame) = incoming.frame().await {
        match frame {
            Ok(frame) => body_bytes += frame.data_ref().map_or(0, |data| data.len() as u64),
            Err(_) => break,
        }
    }
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                json!(String::from_utf8_lossy(value.as_bytes())),
            )
        })
        .collect();
    let report = json!({
        "app": "portcullis builtin:whoami",
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut response = Response::new(body::full(
        serde_json::to_vec_pretty(&report).unwrap_or_default(),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
