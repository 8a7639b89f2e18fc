//! The floor for any proxy built on this project's HTTP stack: hyper's HTTP/1.1 server and
//! client on one current-thread tokio runtime, mimalloc, the release profile, and nothing else
//! (no policy, headers, metrics, pool or timeouts; each client connection gets its own upstream
//! connection). `benches/load.sh` runs it beside nginx and portcullis, so the gap between
//! portcullis and nginx splits into what hyper costs and what the gateway adds.
//!
//!     cargo run --release --example bare_proxy -- 127.0.0.1:18084 127.0.0.1:18081

use std::cell::RefCell;
use std::rc::Rc;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Upstream = Rc<RefCell<Option<SendRequest<Incoming>>>>;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(&listen).await?;
        println!("bare proxy listening on {listen}");
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let upstream = upstream.clone();
            tokio::task::spawn_local(async move {
                let connection: Upstream = Rc::default();
                let service = service_fn(move |request| {
                    forward(connection.clone(), upstream.clone(), request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .writev(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn forward(
    connection: Upstream,
    upstream: String,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
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
