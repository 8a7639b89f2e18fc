//! Sessions already opened, by their exact sealed cookie value.
//!
//! Opening a cookie (base64, XChaCha20-Poly1305, JSON) is most of an authenticated request's
//! cost, and a browser sends the same cookie on every request until it is renewed. A hit needs
//! the whole sealed value to match byte for byte, so it proves what decrypting it would: the
//! cookie opened before, to this session. Expiry is still checked on every use, and a cookie
//! that failed to open is never remembered.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::Session;

/// Sessions remembered at most; the cache starts over when full. Sealed values run from a few
/// hundred bytes (basic auth) to a few KB (OIDC tokens), so this bounds it to a few MB.
const CAPACITY: usize = 4096;

#[derive(Default)]
pub(super) struct OpenedSessions {
    by_sealed: Mutex<HashMap<Box<str>, Session>>,
}

impl OpenedSessions {
    pub(super) fn get(&self, sealed: &str) -> Option<Session> {
        self.by_sealed.lock().get(sealed).cloned()
    }

    pub(super) fn remember(&self, sealed: String, session: &Session) {
        let mut by_sealed = self.by_sealed.lock();
        if by_sealed.len() >= CAPACITY {
            by_sealed.clear();
        }
        by_sealed.insert(sealed.into_boxed_str(), session.clone());
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_sealed.lock().len()
    }
}
