//! A real upstream app for tests: HTTP endpoints with known behaviour and a WebSocket echo,
//! served with hyper on a free loopback port inside the test's runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

type Body = BoxBody<Bytes, Infallible>;

/// What the upstream saw of the last request.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The echo takes and sends single frames as big as an app server's messages (Tornado, under
/// Bokeh, sends each message as one frame), past tungstenite's 16 MiB frame default.
fn echo_framing() -> WebSocketConfig {
    WebSocketConfig::default().max_frame_size(Some(64 << 20))
}

/// A close frame the WebSocket echo received, with the upgrade request of its socket.
#[derive(Clone, Debug)]
pub struct WsClose {
    pub upgrade: Seen,
    /// The close code; `None` for a close frame without one.
    pub code: Option<u16>,
    pub reason: String,
    pub at: Instant,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Close frames received by `…/ws` sockets, in arrival order.
    pub ws_closes: Arc<Mutex<Vec<WsClose>>>,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw no request")
    }

    /// Endpoints by path suffix: `…/slow?ms=N` waits N ms; `…/download?bytes=N` streams N bytes;
    /// `…/ws` echoes WebSocket messages and records the close it receives in `ws_closes`;
    /// anything else answers `200 upstream ok` after reading (and counting) the whole body.
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let connections: Arc<AtomicUsize> = Arc::default();
        let ws_closes: Arc<Mutex<Vec<WsClose>>> = Arc::default();
        let record = seen.clone();
        let closes = ws_closes.clone();
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let (record, closes) = (record.clone(), closes.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request| handle(record.clone(), closes.clone(), request));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            ws_closes,
            connections,
            task,
        }
    }
}

async fn handle(
    seen: Arc<Mutex<Vec<Seen>>>,
    ws_closes: Arc<Mutex<Vec<WsClose>>>,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let this = Seen {
        path_and_query: request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    seen.lock().unwrap().push(this.clone());
    let query_number = |request: &Request<Incoming>, key: &str| -> u64 {
        request
            .uri()
            .query()
            .and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let path = request.uri().path().to_string();
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_millis(query_number(&request, "ms"))).await;
        return Ok(text(StatusCode::OK, "slow ok"));
    }
    if path.ends_with("/download") {
        let total = query_number(&request, "bytes");
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let chunks =
            futures_util::stream::iter((0..total.div_ceil(chunk.len() as u64)).map(move |i| {
                let remaining = total - i * chunk.len() as u64;
                let piece = chunk.slice(..remaining.min(chunk.len() as u64) as usize);
                Ok::<_, Infallible>(Frame::data(piece))
            }));
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(chunks))));
    }
    if path.ends_with("/ws") {
        let key = request.headers().get("sec-websocket-key").cloned();
        let protocol = request.headers().get("sec-websocket-protocol").cloned();
        let Some(key) = key else {
            return Ok(text(StatusCode::BAD_REQUEST, "not a websocket"));
        };
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut socket = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(echo_framing()),
            )
            .await;
            while let Some(Ok(message)) = socket.next().await {
                if message.is_text() || message.is_binary() {
                    if socket.send(message).await.is_err() {
                        break;
                    }
                } else if let Message::Close(frame) = message {
                    ws_closes.lock().unwrap().push(WsClose {
                        upgrade: this,
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        at: Instant::now(),
                    });
                    break;
                }
            }
        });
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", derive_accept_key(key.as_bytes()));
        if let Some(protocol) = protocol {
            let first = protocol
                .to_str()
                .unwrap_or("")
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            response = response.header("sec-websocket-protocol", first);
        }
        return Ok(response.body(Full::new(Bytes::new()).boxed()).unwrap());
    }
    let mut received: u64 = 0;
    let mut body = request.into_body();
    while let Some(Ok(frame)) = body.frame().await {
        received += frame.data_ref().map_or(0, |d| d.len() as u64);
    }
    Ok(text(StatusCode::OK, &format!("upstream ok {received}")))
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response
}
