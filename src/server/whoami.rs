//! `builtin:whoami`: an in-process demo upstream that answers with what it received, so a
//! newcomer sees identity headers and the capability token without running an app. The one
//! header it does not show is the provider's access token (`pass_access_token`): that is a
//! credential for the provider's APIs, and a page shown in a browser is screenshotted, cached
//! and pasted into tickets. The capability token is shown: showing it is what the demo is for,
//! and it is good only for this route, for minutes.

use http::header::HeaderName;
use http::{Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use super::body::{self, Body};

/// Answers with the method, path, query, headers and body size it received, as JSON, with the
/// value of `access_token` (the configured access-token header) replaced by its length.
/// The body is counted frame by frame, never buffered.
pub async fn respond(request: Request<Incoming>, access_token: &HeaderName) -> Response<Body> {
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
            let shown = if name == access_token {
                format!("(not shown: {} bytes)", value.len())
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.to_string(), json!(shown))
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
