//! Listeners, connection serving (HTTP/1.1, h2 via ALPN, h2c prior knowledge) and graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::deadline::Deadlines;
use super::drain::Drain;
use super::guard::{self, ConnectionContext};
use super::headers::IdentityHeaderStripper;
use super::idle::Activity;
use super::listen;
use super::meters::Meters;
use super::proxy::UpstreamClient;
use super::state::Shared;
use super::tls;
use super::websocket::WsRegistry;
use crate::capability::{KeyStore, Minter};
use crate::config::Config;
use crate::identity::basic::{BasicAuth, CSRF_KEY_PURPOSE};
use crate::identity::oidc::Providers;
use crate::pages::Pages;
use crate::policy::{PolicyStore, Scheme};
use crate::session::SessionCodec;
use crate::telemetry::{self, DecisionLog, PrometheusHandle};
use crate::watch::DirWatch;

/// Task polls a worker runs before it looks for new socket events while tasks are still ready
/// (it always looks once none are). Tokio's default, 61, suits tasks that poll for long; a
/// request's polls take microseconds, and at 61 a busy worker called `epoll_wait` 0.07 times a
/// request to pick up a few events at a time. It now drains its ready tasks first (0.01 to 0.04
/// calls a request at 64 to 256 clients): 2% to 3% less CPU a request at 64 clients, up to 10%
/// more requests/s at 256 (docs/performance.md, the event interval). 1,024 polls of
/// microseconds each still bound the wait of a new event to a millisecond or two.
const WORKER_EVENT_INTERVAL: u32 = 1024;

/// A bound, ready-to-run gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    /// `listeners[worker][address]`.
    listeners: Vec<Vec<std::net::TcpListener>>,
    tls: Option<TlsAcceptor>,
    /// The separate `/metrics` listener, when `metrics_listen` is set.
    metrics: Option<(TcpListener, PrometheusHandle)>,
    /// Directory watches that live as long as the gateway (credentials file, key ring).
    watches: Vec<DirWatch>,
}

impl Gateway {
    /// Binds every listen address; fails before serving anything if one cannot be bound.
    pub async fn bind(config: Config, policies: Arc<PolicyStore>) -> anyhow::Result<Gateway> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let mut listeners: Vec<Vec<std::net::TcpListener>> =
            (0..config.workers).map(|_| Vec::new()).collect();
        for addr in &config.listen {
            let per_worker = listen::bind_per_worker(*addr, config.workers)
                .with_context(|| format!("cannot listen on {addr}"))?;
            for (worker, listener) in listeners.iter_mut().zip(per_worker) {
                worker.push(listener);
            }
        }
        let keys = KeyStore::from_config(&config.capability)
            .map_err(|err| anyhow::anyhow!("capability keys: {err}"))?;
        let minter = Minter::new(&config.capability, keys.clone())
            .map_err(|err| anyhow::anyhow!("capability: {err}"))?;
        let configured_names = config.identity_headers.all().map(|name| name.as_str());
        let strip = IdentityHeaderStripper::new(
            config
                .headers
                .strip
                .iter()
                .map(String::as_str)
                .chain(configured_names)
                .chain([minter.header_name().as_str()]),
        )
        .context("headers.strip names an invalid header")?;
        let sessions =
            SessionCodec::new(&config.session).map_err(|err| anyhow::anyhow!("session: {err}"))?;
        let providers = Providers::new(&config.providers, &config.public_url)
            .map_err(|err| anyhow::anyhow!("providers: {err}"))?
            .with_allowed_redirect_hosts(config.allowed_redirect_hosts.clone());
        let mut watches = Vec::new();
        let basic = match &config.basic_auth {
            Some(basic_config) => {
                let basic = BasicAuth::load(basic_config, sessions.derived_keys(CSRF_KEY_PURPOSE))
                    .map_err(|err| anyhow::anyhow!("basic_auth: {err}"))?;
                watches.extend(basic.watch().context("cannot watch the credentials file")?);
                Some(basic)
            }
            None => None,
        };
        let pages =
            Pages::load(config.templates.as_deref()).map_err(|err| anyhow::anyhow!("{err}"))?;
        let decision_log = if config.decision_log.enabled {
            DecisionLog::start(&config.decision_log).context("cannot open the decision log")?
        } else {
            DecisionLog::disabled()
        };
        let handle = telemetry::install_metrics();
        let (metrics, main_listener_metrics) = match config.metrics_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
                (Some((listener, handle)), None)
            }
            None => (None, Some(handle)),
        };
        let shared = Arc::new(Shared {
            meters: Meters::default(),
            keys,
            minter,
            identity_headers: config.identity_headers.clone(),
            sessions,
            providers,
            basic,
            pages,
            decision_log,
            metrics: main_listener_metrics,
            websockets: Arc::new(WsRegistry::default()),
            tasks: TaskTracker::new(),
            strip,
            policies,
            config,
        });
        Ok(Gateway {
            shared,
            listeners,
            tls,
            metrics,
            watches,
        })
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .first()
            .into_iter()
            .flatten()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes WebSockets with 1001 and
    /// lets in-flight requests finish within the configured grace period.
    ///
    /// Connections are served by `config.workers` threads, each running its own single-threaded
    /// event loop with its own listening sockets and upstream connection pool: a request never
    /// hops threads and pools are never contended. This task (the caller's runtime) keeps the
    /// background work: policy re-checks, metrics, shutdown.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Gateway {
            shared,
            listeners,
            tls,
            metrics,
            watches: _watches,
        } = self;
        let recheck = tokio::spawn(recheck_websockets_on_reload(shared.clone()));
        let metrics_server =
            metrics.map(|(listener, handle)| tokio::spawn(serve_metrics(listener, handle)));

        let lifecycle = Lifecycle::default();
        let mut workers = Vec::with_capacity(listeners.len());
        for (index, listeners) in listeners.into_iter().enumerate() {
            let deadlines = Deadlines::default();
            let worker = Worker {
                upstream: UpstreamClient::new(&shared.config.upstream, deadlines.clone())?,
                deadlines,
                shared: shared.clone(),
                tls: tls.clone(),
                lifecycle: lifecycle.clone(),
            };
            // Built here so that a worker that cannot start stops the gateway from starting.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .event_interval(WORKER_EVENT_INTERVAL)
                .enable_all()
                .build()
                .context("cannot start a worker's event loop")?;
            let listeners = {
                let _in_worker = runtime.enter();
                listeners
                    .into_iter()
                    .map(TcpListener::from_std)
                    .collect::<std::io::Result<Vec<_>>>()
                    .context("cannot hand a listening socket to a worker")?
            };
            let thread = std::thread::Builder::new()
                .name(format!("portcullis-worker-{index}"))
                .spawn(move || worker.run(runtime, listeners))
                .context("cannot start a worker thread")?;
            workers.push(thread);
        }

        shutdown.await;
        tracing::info!(grace = ?shared.config.shutdown_grace, "shutting down: draining in-flight requests");
        lifecycle.draining.start();
        recheck.abort();
        if let Some(server) = metrics_server {
            server.abort();
        }
        shared.websockets.close_all(1001, "gateway shutting down");
        shared.tasks.close();
        lifecycle.connections.close();
        let drained = tokio::time::timeout(shared.config.shutdown_grace, async {
            lifecycle.connections.wait().await;
            shared.tasks.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over: dropping the connections still open");
        }
        lifecycle.stopped.cancel();
        tokio::task::spawn_blocking(move || {
            for worker in workers {
                if worker.join().is_err() {
                    tracing::error!("a worker thread panicked");
                }
            }
        })
        .await
        .context("cannot wait for the worker threads")?;
        Ok(())
    }
}

/// Shutdown signals and the live connections, shared by the workers and the main task.
#[derive(Clone, Default)]
struct Lifecycle {
    /// Stop accepting; open connections finish their in-flight request and close.
    draining: Drain,
    /// Drained or out of time: workers end their event loops, dropping whatever is left.
    stopped: CancellationToken,
    connections: TaskTracker,
}

/// One serving thread: its own event loop, upstream pool, timers and accept loops.
struct Worker {
    shared: Arc<Shared>,
    upstream: UpstreamClient,
    deadlines: Deadlines,
    tls: Option<TlsAcceptor>,
    lifecycle: Lifecycle,
}

impl Worker {
    fn run(self, runtime: tokio::runtime::Runtime, listeners: Vec<TcpListener>) {
        let stopped = self.lifecycle.stopped.clone();
        runtime.block_on(async move {
            tokio::spawn(self.deadlines.clone().sweep());
            let worker = Arc::new(self);
            for listener in listeners {
                tokio::spawn(accept_loop(listener, worker.clone()));
            }
            stopped.cancelled().await;
        });
    }
}

async fn accept_loop(listener: TcpListener, worker: Arc<Worker>) {
    let scheme = if worker.tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let draining = worker.lifecycle.draining.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = draining.watch() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Arc::new(ConnectionContext::new(
            &worker.shared,
            worker.upstream.clone(),
            peer,
            scheme,
        ));
        let serving = Serving {
            connection,
            draining: draining.clone(),
            deadlines: worker.deadlines.clone(),
            header_timeout: worker.shared.config.client_header_timeout,
        };
        let tls = worker.tls.clone();
        worker.lifecycle.connections.spawn(async move {
            let header_timeout = serving.header_timeout;
            let Some(acceptor) = tls else {
                // Nothing sent within the header timeout: the connection is closed unread.
                if let Ok(protocol) = serving
                    .deadlines
                    .timeout(header_timeout, sniff(&stream))
                    .await
                {
                    serving.serve(stream, protocol).await;
                }
                return;
            };
            match serving
                .deadlines
                .timeout(header_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(stream)) => {
                    let protocol = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Protocol::Http2,
                        _ => Protocol::Http1,
                    };
                    serving.serve(stream, protocol).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The HTTP version a connection speaks, as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// h2c with prior knowledge opens with this preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long to wait for more bytes when the first ones could still be the h2c preface.
const SNIFF_RETRY: Duration = Duration::from_millis(10);

/// Tells HTTP/1.1 from h2c by peeking at the first bytes, so the connection goes straight to
/// hyper's HTTP/1 or HTTP/2 server (hyper-util's version-detecting server re-reads every byte
/// through a rewind layer for the connection's whole life). The caller bounds the wait with
/// the header timeout.
async fn sniff(stream: &TcpStream) -> Protocol {
    let mut first = [0u8; H2_PREFACE.len()];
    loop {
        match stream.peek(&mut first).await {
            // Closed or failed: hyper meets that on its first read and ends the connection.
            Ok(0) | Err(_) => return Protocol::Http1,
            Ok(n) => match protocol_of(&first[..n]) {
                Some(protocol) => return protocol,
                // A peek returns at once while any byte is buffered: wait before looking again.
                // Only a client sending the preface in pieces gets here.
                None => tokio::time::sleep(SNIFF_RETRY).await,
            },
        }
    }
}

/// `None` while the bytes so far are a proper prefix of the h2c preface.
fn protocol_of(first: &[u8]) -> Option<Protocol> {
    if first.starts_with(H2_PREFACE) {
        Some(Protocol::Http2)
    } else if H2_PREFACE.starts_with(first) {
        None
    } else {
        Some(Protocol::Http1)
    }
}

/// What serving one accepted connection needs.
struct Serving {
    connection: Arc<ConnectionContext>,
    draining: Drain,
    deadlines: Deadlines,
    header_timeout: Duration,
}

impl Serving {
    async fn serve<S>(self, stream: S, protocol: Protocol)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.connection.peer.ip;
        let io = TokioIo::new(stream);
        let result = match protocol {
            Protocol::Http1 => {
                let connection = self.connection.clone();
                // hyper keeps a slot for the service's future in every open connection, idle
                // or not: boxed, the slot is a pointer and a request's ~3 KiB live only while
                // it is in flight (an idle keep-alive connection 27.6 KiB instead of 33.4 when
                // the future was 4.9 KiB: benches/idle_connections.py). The box is allocated
                // first and the future written into it: `Box::pin(future)` built it on the
                // stack and then copied all of it into the box, about 300 instructions a request.
                let service = service_fn(move |request| {
                    let slot = Box::new_uninit();
                    Box::into_pin(Box::write(slot, guard::handle(connection.clone(), request)))
                });
                let mut builder = http1::Builder::new();
                builder
                    .timer(self.deadlines.clone())
                    .header_read_timeout(self.header_timeout)
                    // Head and small bodies copied into one buffer: one write instead of writev.
                    .writev(false);
                let serving = builder.serve_connection(io, service).with_upgrades();
                let drained = async {
                    self.draining.watch().await;
                    Stop::Drain
                };
                until_stopped(serving, drained, |c| c.graceful_shutdown()).await
            }
            Protocol::Http2 => {
                let activity = Activity::new();
                let connection = self.connection.clone();
                let requests = activity.clone();
                let service = service_fn(move |request| {
                    let in_flight = requests.begin();
                    let handled = guard::handle(connection.clone(), request);
                    async move {
                        let response = handled.await?;
                        Ok::<_, std::convert::Infallible>(
                            response.map(|body| in_flight.until_sent(body)),
                        )
                    }
                });
                let serving =
                    http2::Builder::new(TokioExecutor::new()).serve_connection(io, service);
                let stopped = async {
                    tokio::select! {
                        () = self.draining.watch() => Stop::Drain,
                        () = activity.idle_for(self.header_timeout) => Stop::Idle(self.header_timeout),
                    }
                };
                until_stopped(serving, stopped, |c| c.graceful_shutdown()).await
            }
        };
        if let Err(err) = result {
            tracing::debug!(%peer, error = %err, "connection ended with an error");
        }
    }
}

/// Why a connection is being shut down.
enum Stop {
    /// The gateway is draining: the request in flight and its response finish, however long
    /// the shutdown grace lets them.
    Drain,
    /// An idle HTTP/2 connection: its shutdown waits for the client to answer a PING, and a
    /// client that has not within this long is dropped.
    Idle(Duration),
}

/// Serves the connection until it ends or `stop` resolves; then shuts it down gracefully.
async fn until_stopped<C, E>(
    serving: C,
    stop: impl Future<Output = Stop>,
    graceful_shutdown: impl FnOnce(Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(serving);
    tokio::select! {
        biased;
        result = serving.as_mut() => result,
        stop = stop => {
            graceful_shutdown(serving.as_mut());
            match stop {
                Stop::Drain => serving.await,
                Stop::Idle(limit) => tokio::time::timeout(limit, serving).await.unwrap_or(Ok(())),
            }
        }
    }
}

/// After every policy swap, live WebSockets are decided again; those denied are closed (1008).
async fn recheck_websockets_on_reload(shared: Arc<Shared>) {
    let mut generations = shared.policies.subscribe();
    while generations.changed().await.is_ok() {
        let snapshot = shared.policies.snapshot();
        let closed = shared.websockets.recheck(&snapshot.set);
        tracing::info!(
            generation = snapshot.generation,
            closed,
            live = shared.websockets.len(),
            "re-checked live WebSockets"
        );
    }
}

/// A listener that answers every request with the Prometheus text, kept off the public port.
async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| {
                let response = super::endpoints::metrics(&handle, &telemetry::new_request_id());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_http1_from_h2c() {
        let cases: &[(&[u8], Option<Protocol>)] = &[
            (b"GET / HTTP/1.1\r\n", Some(Protocol::Http1)),
            (b"POST /upload HTTP/1.1\r\n", Some(Protocol::Http1)),
            (b"PRI * HTTP/1.1\r\n\r\n", Some(Protocol::Http1)),
            (H2_PREFACE, Some(Protocol::Http2)),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04",
                Some(Protocol::Http2),
            ),
            (b"PRI * HTTP/2", None),
            (b"P", None),
        ];
        for (first, want) in cases {
            assert_eq!(
                protocol_of(first),
                *want,
                "{:?}",
                String::from_utf8_lossy(first)
            );
        }
    }
}
