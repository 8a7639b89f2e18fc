//! The floor for any proxy built on this project's HTTP stack: hyper's HTTP/1.1 server and
//! client on one current-thread tokio runtime, mimalloc, the release profile, and nothing else
//! (no policy, headers, metrics, pool or timeouts; each client connection gets its own upstream
//! connection). `benches/load.sh` runs it beside nginx and portcullis, so the gap between
//! portcullis and nginx splits into what hyper costs and what the gateway adds.
//!
//! With a third argument, a file of `name: value` lines, every request goes upstream as the
//! gateway's authenticated route sends it: the client's `Cookie` removed and those headers set
//! (`benches/load.sh` writes them from what the gateway's own upstream received: the
//! `X-Forwarded-*` headers, the request id, the identity headers and the capability token). That
//! is the floor for a proxy on this stack that sends the authenticated route's upstream request,
//! with the session, the policy and the token for free.
//!
//!     cargo run --release --example bare_proxy -- 127.0.0.1:18084 127.0.0.1:18081 [HEADERS]

use std::cell::RefCell;
use std::rc::Rc;

use http::header::{COOKIE, HeaderName, HeaderValue};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Upstream = Rc<RefCell<Option<SendRequest<Incoming>>>>;
type Added = Rc<[(HeaderName, HeaderValue)]>;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy LISTEN_ADDR UPSTREAM_ADDR [HEADERS_FILE]");
        std::process::exit(2);
    };
    let added: Option<Added> = match args.next() {
        Some(path) => Some(read_headers(&path)?.into()),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(&listen).await?;
        println!("bare proxy listening on {listen}");
        let mut terminate = signal(SignalKind::terminate())?;
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                // Out through main's return: an instrumented build writes its profile at exit.
                _ = terminate.recv() => return Ok(()),
            };
            stream.set_nodelay(true)?;
            let upstream = upstream.clone();
            let added = added.clone();
            tokio::task::spawn_local(async move {
                let connection: Upstream = Rc::default();
                let service = service_fn(move |request| {
                    forward(connection.clone(), upstream.clone(), added.clone(), request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .writev(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// `name: value` lines, blank lines skipped; a malformed line names its number.
fn read_headers(path: &str) -> std::io::Result<Vec<(HeaderName, HeaderValue)>> {
    let invalid = |line: usize, what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{path}:{line}: {what}"),
        )
    };
    let mut headers = Vec::new();
    for (index, line) in std::fs::read_to_string(path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(index + 1, "expected `name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| invalid(index + 1, "not a header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| invalid(index + 1, "not a header value"))?;
        headers.push((name, value));
    }
    Ok(headers)
}

async fn forward(
    connection: Upstream,
    upstream: String,
    added: Option<Added>,
    mut request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    if let Some(added) = added {
        let headers = request.headers_mut();
        headers.remove(COOKIE);
        headers.reserve(added.len());
        for (name, value) in added.iter() {
            headers.insert(name.clone(), value.clone());
        }
    }
    let taken = connection.borrow_mut().take();
    let mut sender = match taken {
        Some(sender) => sender,
        None => {
            let stream = TcpStream::connect(&upstream).await?;
            stream.set_nodelay(true)?;
            let (sender, driver) = hyper::client::conn::http1::Builder::new()
                .writev(false)
                .handshake(TokioIo::new(stream))
                .await?;
            tokio::task::spawn_local(driver);
            sender
        }
    };
    sender.ready().await?;
    let response = sender.send_request(request).await;
    *connection.borrow_mut() = Some(sender);
    Ok(response?)
}
