//! Tokens whose signature already checked out, kept so that a repeat pays only for Datalog.
//!
//! The gateway hands a session the same token for most of its lifetime (it re-mints at 80% of
//! the TTL), so a service sees each token many times, and the Ed25519 checks are most of a
//! verification. Whether a token's signature chain verifies depends only on its exact bytes and
//! the trusted keys, both fixed for one [`super::Verifier`]; everything that depends on the
//! clock or the request (expiry, route, right, attenuation checks) still runs on every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use biscuit_auth::Biscuit;

pub(super) struct SeenTokens {
    capacity: usize,
    tokens: Mutex<HashMap<Box<str>, Arc<Biscuit>>>,
}

impl SeenTokens {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The parsed token, if exactly these bytes verified before.
    pub(super) fn get(&self, token: &str) -> Option<Arc<Biscuit>> {
        self.lock().get(token).cloned()
    }

    /// Remembers a token whose signature verified; starts over when full, which bounds memory
    /// and costs the next requests one full verification each.
    pub(super) fn remember(&self, token: &str, biscuit: Arc<Biscuit>) {
        if self.capacity == 0 {
            return;
        }
        let mut tokens = self.lock();
        if tokens.len() >= self.capacity {
            tokens.clear();
        }
        tokens.insert(token.into(), biscuit);
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    // A panic while holding the lock leaves the map whole (inserts and clears do not unwind
    // halfway), so a poisoned lock is still safe to use.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<Biscuit>>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for SeenTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenTokens")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}
