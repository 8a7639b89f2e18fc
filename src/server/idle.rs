//! Idle HTTP/2 connections are closed. hyper's HTTP/1 server closes a keep-alive connection
//! that sends no request within the header timeout; its HTTP/2 server has no such limit, so a
//! client that opened a connection and then sent nothing would hold it (a descriptor and its
//! buffers) for good. An HTTP/2 connection with no request in flight and no response streaming
//! for the same timeout is shut down (GOAWAY).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use super::body::Body;

/// The requests of one connection: how many are in flight and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// When the connection last became idle, in milliseconds after `opened`.
    idle_since_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst))
    }

    /// Resolves once no request has been in flight for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let now = Instant::now();
            let wake = if self.in_flight.load(Ordering::SeqCst) == 0 {
                let idle_until = self.idle_since() + timeout;
                if now >= idle_until {
                    return;
                }
                idle_until
            } else {
                // Busy: look again later; the request that ends last restarts the clock.
                now + timeout
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// A request in flight on its connection.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    /// `body`, holding the request in flight until it has been sent (or dropped).
    pub fn until_sent(self, body: Body) -> Body {
        Streaming {
            body,
            _in_flight: self,
        }
        .boxed()
    }
}

/// A response body that keeps its request in flight while it streams.
struct Streaming {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Streaming {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        // Stamped before the count drops, so an idle count never meets an older stamp.
        let elapsed = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.fetch_max(elapsed, Ordering::SeqCst);
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_timeout_with_nothing_in_flight() {
        let activity = Activity::new();
        let started = Instant::now();
        activity.idle_for(TIMEOUT).await;
        assert_eq!(started.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_holds_it_and_its_end_restarts_the_clock() {
        let activity = Activity::new();
        let started = Instant::now();
        let request = activity.begin();
        let ending = {
            let activity = activity.clone();
            tokio::spawn(async move {
                tokio::time::sleep(TIMEOUT * 3 + Duration::from_secs(5)).await;
                drop(request);
                drop(activity);
            })
        };
        activity.idle_for(TIMEOUT).await;
        ending.await.unwrap();
        // Idle from the request's end (95 s), not from its start.
        assert!(started.elapsed() >= TIMEOUT * 4 + Duration::from_secs(5));
        assert!(started.elapsed() < TIMEOUT * 5);
    }
}
