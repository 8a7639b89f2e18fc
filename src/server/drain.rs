//! The drain signal every open connection watches: set once at shutdown, checked on every
//! wake-up of every connection.
//!
//! A connection's task wakes a few times per request. Polling a `CancellationToken`'s future at
//! each wake-up takes its lock to re-check the waiter (about 250 instructions a request); here a
//! wake-up is one atomic load, and the waiter is registered again only if the task's waker
//! changed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Clones share the signal.
#[derive(Clone, Default)]
pub struct Drain {
    inner: Arc<Signal>,
}

#[derive(Default)]
struct Signal {
    started: AtomicBool,
    token: CancellationToken,
}

impl Drain {
    /// Starts draining: every watcher resolves.
    pub fn start(&self) {
        self.inner.started.store(true, Ordering::Release);
        self.inner.token.cancel();
    }

    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// Resolves once draining starts.
    pub fn watch(&self) -> DrainWatch {
        DrainWatch {
            drain: self.clone(),
            waiter: None,
        }
    }
}

/// A future that resolves once draining starts; cheap to poll again and again.
pub struct DrainWatch {
    drain: Drain,
    /// The registered waiter and the waker it wakes.
    waiter: Option<(Waker, Pin<Box<WaitForCancellationFutureOwned>>)>,
}

impl Future for DrainWatch {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.drain.is_started() {
            return Poll::Ready(());
        }
        if let Some((waker, _)) = &self.waiter
            && waker.will_wake(cx.waker())
        {
            return Poll::Pending;
        }
        let mut waiting = match self.waiter.take() {
            Some((_, waiting)) => waiting,
            None => Box::pin(self.drain.inner.token.clone().cancelled_owned()),
        };
        // Registers this waker; sees a cancel that came after the flag was read.
        if waiting.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        self.waiter = Some((cx.waker().clone(), waiting));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_watch_resolves_when_draining_starts_and_not_before() {
        let drain = Drain::default();
        let mut watch = drain.watch();
        let pending = tokio::time::timeout(Duration::from_millis(20), &mut watch).await;
        assert!(pending.is_err(), "resolved before draining started");
        let starter = drain.clone();
        tokio::spawn(async move { starter.start() });
        tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("the watch did not resolve after draining started");
        assert!(drain.is_started());
    }

    #[tokio::test]
    async fn a_watch_made_after_the_start_resolves_at_once() {
        let drain = Drain::default();
        drain.start();
        tokio::time::timeout(Duration::from_millis(100), drain.watch())
            .await
            .expect("a late watch did not resolve");
    }

    #[tokio::test]
    async fn a_watch_polled_from_another_task_wakes_that_task() {
        let drain = Drain::default();
        let mut watch = drain.watch();
        // Registered with this task's waker, then moved to another task.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), &mut watch)
                .await
                .is_err()
        );
        let moved = tokio::spawn(watch);
        tokio::task::yield_now().await;
        drain.start();
        tokio::time::timeout(Duration::from_secs(5), moved)
            .await
            .expect("the moved watch did not wake its new task")
            .unwrap();
    }
}
