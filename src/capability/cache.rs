//! Minted tokens kept per (session, route, policy generation), so the request path does not
//! pay the ~50 µs of signing on every request.
//!
//! An entry is reused only while it is fresh (before its refresh time, 80% of the TTL), signed
//! by the current signing key, and minted for exactly the same identity and grants (rules of
//! one route can grant different rights per request). The cache is sharded by session and
//! bounded: past its capacity, stale entries go first, then the oldest eighth.

use std::hash::BuildHasher;
use std::time::SystemTime;

use foldhash::HashMap;

use http::HeaderValue;
use parking_lot::Mutex;

use crate::identity::Identity;

const SHARDS: usize = 16;
/// Distinct (route, grants) tokens kept for one session.
const PER_SESSION: usize = 16;

/// What a cached token was minted for; borrowed from the request.
pub(crate) struct CacheKey<'a> {
    pub session: &'a [u8],
    pub identity: &'a Identity,
    pub route: &'a str,
    pub grants: &'a [String],
    pub generation: u64,
    pub kid: u32,
}

struct Entry {
    route: Box<str>,
    grants: Box<[String]>,
    generation: u64,
    kid: u32,
    identity: Identity,
    value: HeaderValue,
    minted_at: SystemTime,
    refresh_at: SystemTime,
}

impl Entry {
    fn fresh(&self, now: SystemTime) -> bool {
        self.minted_at <= now && now < self.refresh_at
    }

    /// Same route, grants and token-relevant identity: a newer token replaces this one.
    fn same_subject(&self, key: &CacheKey<'_>) -> bool {
        *self.route == *key.route
            && *self.grants == *key.grants
            && self.identity.subject == key.identity.subject
            && self.identity.email == key.identity.email
            && self.identity.email_verified == key.identity.email_verified
            && self.identity.groups == key.identity.groups
            && self.identity.provider == key.identity.provider
    }

    fn serves(&self, key: &CacheKey<'_>, now: SystemTime) -> bool {
        self.generation == key.generation
            && self.kid == key.kid
            && self.fresh(now)
            && self.same_subject(key)
    }
}

#[derive(Default)]
struct Shard {
    sessions: HashMap<Box<[u8]>, Vec<Entry>>,
    len: usize,
}

impl Shard {
    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.sessions.retain(|_, entries| {
            entries.retain(&mut keep);
            !entries.is_empty()
        });
        self.len = self.sessions.values().map(Vec::len).sum();
    }

    fn evict(&mut self, capacity: usize, now: SystemTime) {
        self.retain(|e| e.fresh(now));
        if self.len <= capacity {
            return;
        }
        let excess = self.len - (capacity - capacity / 8);
        let mut times: Vec<SystemTime> = self
            .sessions
            .values()
            .flat_map(|entries| entries.iter().map(|e| e.refresh_at))
            .collect();
        let (_, cutoff, _) = times.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        self.retain(|e| e.refresh_at > cutoff);
    }
}

/// Bounded, sharded map of minted header values.
pub(crate) struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    /// Picks a session's shard; seeded per process, like the shards' own maps.
    shard_hasher: foldhash::fast::RandomState,
}

impl TokenCache {
    /// `capacity` 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: capacity.div_ceil(SHARDS),
            shard_hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, session: &[u8]) -> &Mutex<Shard> {
        &self.shards[(self.shard_hasher.hash_one(session) as usize) % SHARDS]
    }

    pub fn get(&self, key: &CacheKey<'_>, now: SystemTime) -> Option<HeaderValue> {
        if self.shard_capacity == 0 {
            return None;
        }
        let shard = self.shard(key.session).lock();
        let entries = shard.sessions.get(key.session)?;
        entries
            .iter()
            .find(|e| e.serves(key, now))
            .map(|e| e.value.clone())
    }

    pub fn put(
        &self,
        key: &CacheKey<'_>,
        value: HeaderValue,
        minted_at: SystemTime,
        refresh_at: SystemTime,
    ) {
        if self.shard_capacity == 0 {
            return;
        }
        let entry = Entry {
            route: key.route.into(),
            grants: key.grants.into(),
            generation: key.generation,
            kid: key.kid,
            identity: token_identity(key.identity),
            value,
            minted_at,
            refresh_at,
        };
        let mut shard = self.shard(key.session).lock();
        let entries = shard.sessions.entry(key.session.into()).or_default();
        let before = entries.len();
        entries.retain(|e| e.fresh(minted_at) && !e.same_subject(key));
        if entries.len() >= PER_SESSION
            && let Some(oldest) = (0..entries.len()).min_by_key(|&i| entries[i].refresh_at)
        {
            entries.swap_remove(oldest);
        }
        entries.push(entry);
        let after = entries.len();
        shard.len = shard.len + after - before;
        if shard.len > self.shard_capacity {
            shard.evict(self.shard_capacity, minted_at);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len).sum()
    }
}

/// The identity fields that go into a token, without the rest (claims can be large).
fn token_identity(identity: &Identity) -> Identity {
    Identity {
        subject: identity.subject.clone(),
        email: identity.email.clone(),
        email_verified: identity.email_verified,
        groups: identity.groups.clone(),
        provider: identity.provider.clone(),
        ..Identity::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn user(name: &str) -> Identity {
        Identity {
            subject: name.into(),
            provider: "basic".into(),
            ..Identity::default()
        }
    }

    fn key<'a>(session: &'a [u8], identity: &'a Identity, grants: &'a [String]) -> CacheKey<'a> {
        CacheKey {
            session,
            identity,
            route: "panel",
            grants,
            generation: 1,
            kid: 1,
        }
    }

    #[test]
    fn entry_serves_only_its_exact_request() {
        let cache = TokenCache::new(100);
        let now = SystemTime::now();
        let alice = user("alice");
        let read = vec!["read".to_owned()];
        cache.put(
            &key(b"s1", &alice, &read),
            HeaderValue::from_static("t"),
            now,
            now + Duration::from_secs(60),
        );
        assert!(cache.get(&key(b"s1", &alice, &read), now).is_some());
        let write = vec!["write".to_owned()];
        assert!(
            cache.get(&key(b"s1", &alice, &write), now).is_none(),
            "other grants"
        );
        assert!(
            cache.get(&key(b"s2", &alice, &read), now).is_none(),
            "other session"
        );
        let bob = user("bob");
        assert!(
            cache.get(&key(b"s1", &bob, &read), now).is_none(),
            "other identity"
        );
        let next_generation = CacheKey {
            generation: 2,
            ..key(b"s1", &alice, &read)
        };
        assert!(cache.get(&next_generation, now).is_none(), "policy changed");
        let rotated = CacheKey {
            kid: 2,
            ..key(b"s1", &alice, &read)
        };
        assert!(cache.get(&rotated, now).is_none(), "signing key changed");
        let later = now + Duration::from_secs(60);
        assert!(
            cache.get(&key(b"s1", &alice, &read), later).is_none(),
            "past refresh time"
        );
    }

    #[test]
    fn cache_stays_within_its_capacity() {
        let cache = TokenCache::new(64);
        let now = SystemTime::now();
        let alice = user("alice");
        for i in 0..1000u32 {
            let session = i.to_be_bytes();
            let refresh = now + Duration::from_secs(60 + u64::from(i));
            cache.put(
                &key(&session, &alice, &[]),
                HeaderValue::from_static("t"),
                now,
                refresh,
            );
        }
        assert!(cache.len() <= 64 + SHARDS, "{} entries", cache.len());
        let newest = 999u32.to_be_bytes();
        assert!(
            cache.get(&key(&newest, &alice, &[]), now).is_some(),
            "newest entries survive"
        );
    }

    #[test]
    fn a_new_token_replaces_the_old_one_for_the_same_request() {
        let cache = TokenCache::new(100);
        let now = SystemTime::now();
        let alice = user("alice");
        for generation in 0..10 {
            let k = CacheKey {
                generation,
                ..key(b"s1", &alice, &[])
            };
            cache.put(
                &k,
                HeaderValue::from_static("t"),
                now,
                now + Duration::from_secs(60),
            );
        }
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn zero_capacity_disables_the_cache() {
        let cache = TokenCache::new(0);
        let now = SystemTime::now();
        let alice = user("alice");
        cache.put(
            &key(b"s1", &alice, &[]),
            HeaderValue::from_static("t"),
            now,
            now + Duration::from_secs(60),
        );
        assert!(cache.get(&key(b"s1", &alice, &[]), now).is_none());
    }
}
