//! Idle HTTP/1.1 connections to the upstreams, one pool per worker.
//!
//! Each worker owns its pool, so checking a connection out and back in is a lock nobody else
//! takes and a hash of the upstream's authority. A connection goes back to the pool when its
//! response body has been read to the end and it can take the next request (a body dropped
//! half-way takes its connection with it); the pool only ever holds connections ready for a
//! request, and the most recently used one is handed out first, while it is warm.

use foldhash::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use parking_lot::Mutex;

/// Where an upstream connection goes: `https` or not, and `host:port`.
#[derive(Clone)]
pub struct Origin {
    pub https: bool,
    pub authority: Arc<str>,
}

struct IdleConnection {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// The idle connections to one origin, oldest first.
struct OriginIdle {
    origin: Origin,
    connections: Vec<IdleConnection>,
}

/// Idle connections by authority, for `http` (index 0) and `https` (index 1) upstreams.
type IdleByAuthority = [HashMap<Arc<str>, OriginIdle>; 2];

pub struct Pool {
    idle: Mutex<IdleByAuthority>,
    max_idle_per_origin: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(max_idle_per_origin: usize, idle_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::default(),
            max_idle_per_origin,
            idle_timeout,
        })
    }

    /// The origin, and its most recently returned live connection if there is one; expired (as
    /// of `now`) and closed connections are dropped on the way.
    pub fn checkout(
        &self,
        https: bool,
        authority: &str,
        now: Instant,
    ) -> (Origin, Option<SendRequest<Incoming>>) {
        let mut idle = self.idle.lock();
        let by_authority = &mut idle[usize::from(https)];
        let Some(OriginIdle {
            origin,
            connections,
        }) = by_authority.get_mut(authority)
        else {
            let origin = Origin {
                https,
                authority: authority.into(),
            };
            let first = OriginIdle {
                origin: origin.clone(),
                connections: Vec::new(),
            };
            by_authority.insert(origin.authority.clone(), first);
            return (origin, None);
        };
        let origin = origin.clone();
        while let Some(connection) = connections.pop() {
            if connection.sender.is_ready()
                && now.duration_since(connection.since) < self.idle_timeout
            {
                return (origin, Some(connection.sender));
            }
        }
        (origin, None)
    }

    fn check_in(&self, origin: &Origin, sender: SendRequest<Incoming>) {
        if !sender.is_ready() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock();
        let Some(OriginIdle { connections, .. }) =
            idle[usize::from(origin.https)].get_mut(&*origin.authority)
        else {
            return;
        };
        // Oldest first: those past the idle timeout are closed here rather than by a timer.
        let expired = connections
            .iter()
            .take_while(|c| now.duration_since(c.since) >= self.idle_timeout)
            .count();
        connections.drain(..expired);
        if connections.len() < self.max_idle_per_origin {
            connections.push(IdleConnection { sender, since: now });
        }
    }
}

/// An upstream response body that returns its connection to the pool once read to the end.
pub struct PooledBody {
    body: Incoming,
    lease: Option<Lease>,
}

struct Lease {
    pool: Weak<Pool>,
    origin: Origin,
    sender: SendRequest<Incoming>,
}

impl PooledBody {
    pub fn new(
        body: Incoming,
        pool: &Arc<Pool>,
        origin: Origin,
        sender: SendRequest<Incoming>,
    ) -> Self {
        let mut pooled = PooledBody {
            body,
            lease: Some(Lease {
                pool: Arc::downgrade(pool),
                origin,
                sender,
            }),
        };
        if pooled.body.is_end_stream() {
            pooled.release();
        }
        pooled
    }

    fn release(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        if lease.sender.is_ready() {
            lease.check_in();
            return;
        }
        // Still finishing the exchange (the request body may still be going up after an early
        // response): back to the pool only once it can take another request.
        tokio::spawn(async move {
            let mut lease = lease;
            if lease.sender.ready().await.is_ok() {
                lease.check_in();
            }
        });
    }
}

impl Lease {
    fn check_in(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.check_in(&self.origin, self.sender);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.release(),
            // An error leaves the connection in an unknown state: it is not reused.
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
