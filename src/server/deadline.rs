//! Coarse timers for the deadlines every request sets and almost none reaches: the client's
//! header read timeout and the wait for an upstream's response.
//!
//! A tokio timer takes the driver's lock and files itself in the timer wheel when first polled,
//! and takes the lock again to leave the wheel when dropped: two of them cost a request about a
//! thousand instructions. Here an armed timer is a slot in its worker's table, and a sweeper task
//! wakes the slots past their deadline every [`TICK`], so a timer fires up to one tick late:
//! nothing against timeouts of seconds. The sweeper sleeps while no timer is armed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use slab::Slab;
use tokio::sync::Notify;

/// How often armed timers are checked.
pub const TICK: Duration = Duration::from_millis(50);

/// One worker's timers. Clones share the table.
#[derive(Clone, Default)]
pub struct Deadlines {
    table: Arc<Table>,
}

#[derive(Default)]
struct Table {
    armed: Mutex<Slab<Armed>>,
    /// The sweeper found no timer armed and waits for `arm` to wake it.
    idle: AtomicBool,
    arm: Notify,
}

struct Armed {
    deadline: Instant,
    /// Taken when the deadline passes: the timer has fired.
    waker: Option<Waker>,
}

/// The wait for a future ran past its deadline.
#[derive(Debug, PartialEq, Eq)]
pub struct Elapsed;

impl Deadlines {
    /// Wakes the timers whose deadline passed, every [`TICK`]; run it on the worker's event loop
    /// for as long as the worker serves.
    pub async fn sweep(self) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Announce idleness before looking: a timer armed after the look sees the flag.
            self.table.idle.store(true, Ordering::SeqCst);
            if self.table.armed.lock().is_empty() {
                self.table.arm.notified().await;
            }
            self.table.idle.store(false, Ordering::SeqCst);
            ticks.tick().await;
            let now = Instant::now();
            for (_, armed) in self.table.armed.lock().iter_mut() {
                if armed.deadline <= now
                    && let Some(waker) = armed.waker.take()
                {
                    waker.wake();
                }
            }
        }
    }

    /// A timer that fires at `deadline` (up to one tick later).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep {
            table: self.table.clone(),
            deadline,
            slot: None,
        }
    }

    /// `future`'s output, or [`Elapsed`] if it is not ready within `duration`.
    pub async fn timeout<F: Future>(
        &self,
        duration: Duration,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        let expired = self.sleep_until(Instant::now() + duration);
        tokio::select! {
            biased;
            output = future => Ok(output),
            () = expired => Err(Elapsed),
        }
    }

    #[cfg(test)]
    fn armed(&self) -> usize {
        self.table.armed.lock().len()
    }
}

impl hyper::rt::Timer for Deadlines {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.sleep_until(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadlines::sleep_until(self, deadline))
    }
}

/// A timer of [`Deadlines`]; armed when first polled, disarmed when dropped.
pub struct Sleep {
    table: Arc<Table>,
    deadline: Instant,
    slot: Option<usize>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(slot) = this.slot else {
            // Armed without reading the clock (a read costs more than the rest of arming): a
            // deadline already past fires at the next sweep, within the tick every timer allows.
            let armed = Armed {
                deadline: this.deadline,
                waker: Some(cx.waker().clone()),
            };
            this.slot = Some(this.table.armed.lock().insert(armed));
            if this.table.idle.load(Ordering::SeqCst) {
                this.table.arm.notify_one();
            }
            return Poll::Pending;
        };
        let mut table = this.table.armed.lock();
        match &mut table[slot].waker {
            None => Poll::Ready(()),
            Some(waker) => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.table.armed.lock().remove(slot);
        }
    }
}

impl hyper::rt::Sleep for Sleep {}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Deadlines {
        let deadlines = Deadlines::default();
        tokio::spawn(deadlines.clone().sweep());
        deadlines
    }

    #[tokio::test]
    async fn a_timer_fires_at_its_deadline_within_a_tick() {
        let deadlines = started();
        for wait in [Duration::ZERO, Duration::from_millis(120)] {
            let begun = Instant::now();
            deadlines.sleep_until(begun + wait).await;
            let took = begun.elapsed();
            assert!(took >= wait, "{took:?} < {wait:?}");
            // One tick late at most, plus room for a busy machine.
            assert!(took < wait + TICK + Duration::from_millis(250), "{took:?}");
        }
        assert_eq!(deadlines.armed(), 0);
    }

    #[tokio::test]
    async fn a_dropped_timer_leaves_the_table() {
        let deadlines = started();
        let far = Instant::now() + Duration::from_secs(60);
        let mut sleep = Box::pin(deadlines.sleep_until(far));
        let first = std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        assert_eq!(deadlines.armed(), 1);
        drop(sleep);
        assert_eq!(deadlines.armed(), 0);
    }

    #[tokio::test]
    async fn timeouts_pass_ready_futures_and_stop_slow_ones() {
        let deadlines = started();
        let quick = deadlines.timeout(Duration::from_secs(5), async { 7 });
        assert_eq!(quick.await, Ok(7));
        let begun = Instant::now();
        let slow = deadlines.timeout(Duration::from_millis(100), std::future::pending::<()>());
        assert_eq!(slow.await, Err(Elapsed));
        assert!(begun.elapsed() >= Duration::from_millis(100));
        assert_eq!(deadlines.armed(), 0);
    }

    #[tokio::test]
    async fn the_sweeper_wakes_up_for_a_timer_armed_while_it_was_idle() {
        let deadlines = started();
        // Let the sweeper find the table empty and park.
        tokio::time::sleep(TICK * 3).await;
        let begun = Instant::now();
        deadlines
            .sleep_until(begun + Duration::from_millis(60))
            .await;
        assert!(begun.elapsed() < Duration::from_millis(60) + TICK + Duration::from_millis(250));
    }
}
