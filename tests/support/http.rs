//! A small real HTTP client for tests (HTTP/1.1, or HTTP/2 with prior knowledge).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn http1() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn h2c() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    pub version: http::Version,
}

pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> Reply {
    let response: Response<hyper::body::Incoming> = client.request(request).await.expect("request");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        version: parts.version,
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(&http1(), request.body(Full::new(Bytes::new())).unwrap()).await
}
