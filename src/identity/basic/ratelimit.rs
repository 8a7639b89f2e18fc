//! Failed-login limits per username and per client IP, with exponential backoff.
//!
//! Rules in [`RateLimitConfig`]. The time source is a [`Clock`] so tests
//! move time instead of sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::RateLimitConfig;

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Which limit refused an attempt: the `kind` label of `portcullis_rate_limited_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitKind {
    User,
    Ip,
}

impl LimitKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            LimitKind::User => "user",
            LimitKind::Ip => "ip",
        }
    }
}

/// Table size above which keys quiet for `max_backoff` are forgotten before adding another.
const PRUNE_ABOVE: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Slot {
    window_start: Instant,
    failures: u32,
    /// Lockouts so far; each doubles the next one.
    strikes: u32,
    blocked_until: Option<Instant>,
    last_failure: Instant,
}

impl Slot {
    /// Since when the key has been quiet: its last failure, or the end of its lockout.
    fn quiet_since(&self) -> Instant {
        self.blocked_until
            .map_or(self.last_failure, |until| until.max(self.last_failure))
    }
}

struct Table<K> {
    slots: Mutex<HashMap<K, Slot>>,
    max_failures: u32,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(max_failures: u32) -> Self {
        Table {
            slots: Mutex::new(HashMap::new()),
            max_failures,
        }
    }

    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let slots = self.slots.lock();
        let until = slots.get(key)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    fn fail(&self, key: &K, now: Instant, window: Duration, max_backoff: Duration) {
        let mut slots = self.slots.lock();
        if slots.len() >= PRUNE_ABOVE && !slots.contains_key(key) {
            slots.retain(|_, slot| now.duration_since(slot.quiet_since()) < max_backoff);
        }
        let slot = slots.entry(key.clone()).or_insert(Slot {
            window_start: now,
            failures: 0,
            strikes: 0,
            blocked_until: None,
            last_failure: now,
        });
        if now.duration_since(slot.quiet_since()) >= max_backoff {
            slot.strikes = 0;
        }
        if now.duration_since(slot.window_start) >= window {
            slot.window_start = now;
            slot.failures = 0;
        }
        slot.failures += 1;
        slot.last_failure = now;
        if slot.failures >= self.max_failures {
            let factor = 1u32.checked_shl(slot.strikes.min(20)).unwrap_or(u32::MAX);
            let backoff = window.saturating_mul(factor).min(max_backoff);
            slot.strikes = slot.strikes.saturating_add(1);
            slot.blocked_until = Some(now + backoff);
            slot.failures = 0;
            slot.window_start = now;
        }
    }

    fn clear(&self, key: &K) {
        self.slots.lock().remove(key);
    }
}

/// Failure counts per username and per client network.
pub(crate) struct RateLimiter {
    users: Table<String>,
    ips: Table<IpAddr>,
    window: Duration,
    max_backoff: Duration,
    clock: Arc<dyn Clock>,
}

impl RateLimiter {
    pub(crate) fn new(config: &RateLimitConfig, clock: Arc<dyn Clock>) -> Self {
        RateLimiter {
            users: Table::new(config.max_failures),
            ips: Table::new(config.max_failures_per_ip),
            window: config.window(),
            max_backoff: config.max_backoff(),
            clock,
        }
    }

    /// `Err` with the wait when the username or the client is locked out.
    pub(crate) fn check(&self, user: &str, ip: IpAddr) -> Result<(), (LimitKind, Duration)> {
        let now = self.clock.now();
        if let Some(wait) = self.users.blocked(&user_key(user), now) {
            return Err((LimitKind::User, wait));
        }
        if let Some(wait) = self.ips.blocked(&network(ip), now) {
            return Err((LimitKind::Ip, wait));
        }
        Ok(())
    }

    pub(crate) fn record_failure(&self, user: &str, ip: IpAddr) {
        let now = self.clock.now();
        self.users
            .fail(&user_key(user), now, self.window, self.max_backoff);
        self.ips
            .fail(&network(ip), now, self.window, self.max_backoff);
    }

    /// A successful login clears its username's failures; the IP's count stays.
    pub(crate) fn record_success(&self, user: &str) {
        self.users.clear(&user_key(user));
    }
}

/// Usernames are counted by their first 128 characters, so huge junk names cannot bloat the table.
fn user_key(user: &str) -> String {
    match user.char_indices().nth(super::MAX_USERNAME_LEN) {
        Some((cut, _)) => user[..cut].to_owned(),
        None => user.to_owned(),
    }
}

/// The key for an address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64 network, since one
/// client usually holds a whole /64.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// A clock tests move by hand.
#[cfg(test)]
pub(crate) struct ManualClock(Mutex<Instant>);

#[cfg(test)]
impl ManualClock {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(Instant::now())))
    }

    pub(crate) fn advance(&self, by: Duration) {
        *self.0.lock() += by;
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(clock: &Arc<ManualClock>) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig::default(), clock.clone())
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn five_failures_lock_the_user_for_a_window_then_backoff_doubles() {
        let clock = ManualClock::new();
        let limits = limiter(&clock);
        for i in 0..4 {
            limits.record_failure("alice", IP);
            assert!(
                limits.check("alice", IP).is_ok(),
                "after {} failures",
                i + 1
            );
        }
        limits.record_failure("alice", IP);
        let (kind, wait) = limits.check("alice", IP).unwrap_err();
        assert_eq!(kind, LimitKind::User);
        assert_eq!(wait, Duration::from_secs(60));
        clock.advance(Duration::from_secs(61));
        assert!(limits.check("alice", IP).is_ok());
        for _ in 0..5 {
            limits.record_failure("alice", IP);
        }
        assert_eq!(
            limits.check("alice", IP).unwrap_err().1,
            Duration::from_secs(120)
        );
    }

    #[test]
    fn backoff_is_capped_and_forgotten_after_quiet_time() {
        let clock = ManualClock::new();
        let limits = limiter(&clock);
        let mut last = Duration::ZERO;
        for _ in 0..8 {
            for _ in 0..5 {
                limits.record_failure("bob", IP);
            }
            last = limits.check("bob", IP).unwrap_err().1;
            clock.advance(last);
        }
        assert_eq!(last, Duration::from_secs(900));
        clock.advance(Duration::from_secs(900));
        for _ in 0..5 {
            limits.record_failure("bob", IP);
        }
        assert_eq!(
            limits.check("bob", IP).unwrap_err().1,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn failures_spread_over_many_users_lock_the_ip() {
        let clock = ManualClock::new();
        let limits = limiter(&clock);
        for i in 0..5 {
            limits.record_failure(&format!("user{i}"), IP);
        }
        let (kind, _) = limits.check("someone-else", IP).unwrap_err();
        assert_eq!(kind, LimitKind::Ip);
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.check("someone-else", other).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(network(a), network(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(network(mapped), IP);
    }

    #[test]
    fn success_clears_the_user_count() {
        let clock = ManualClock::new();
        let limits = limiter(&clock);
        for _ in 0..4 {
            limits.record_failure("carol", IP);
        }
        limits.record_success("carol");
        let other: IpAddr = "192.0.2.9".parse().unwrap();
        limits.record_failure("carol", other);
        assert!(limits.check("carol", other).is_ok());
    }
}
