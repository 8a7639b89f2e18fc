//! Sessions already opened, by their exact sealed cookie value.
//!
//! Opening a cookie (base64, XChaCha20-Poly1305, JSON) is most of an authenticated request's
//! cost, and a browser sends the same cookie on every request until it is renewed. A hit needs
//! the whole sealed value to match byte for byte, so it proves what decrypting it would: the
//! cookie opened before, to this session. Expiry is still checked on every use, and a cookie
//! that failed to open is never remembered.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;

use super::Session;

/// Sessions remembered at most; the cache starts over when full. Sealed values run from a few
/// hundred bytes (basic auth) to a few KB (OIDC tokens), so this bounds it to a few MB.
const CAPACITY: usize = 4096;

#[derive(Default)]
pub(super) struct OpenedSessions {
    by_sealed: Mutex<HashMap<Box<[u8]>, Arc<Session>, TailHash>>,
}

impl OpenedSessions {
    pub(super) fn get(&self, sealed: &[u8]) -> Option<Arc<Session>> {
        self.by_sealed.lock().get(sealed).cloned()
    }

    pub(super) fn remember(&self, sealed: &[u8], session: &Arc<Session>) {
        let mut by_sealed = self.by_sealed.lock();
        if by_sealed.len() >= CAPACITY {
            by_sealed.clear();
        }
        by_sealed.insert(sealed.into(), session.clone());
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_sealed.lock().len()
    }
}

/// Bytes of a sealed value that are hashed: its end, the AEAD tag and the ciphertext before it.
const HASHED_TAIL: usize = 32;

/// Hashes only the last [`HASHED_TAIL`] bytes of a key (foldhash, randomly seeded), where
/// hashing the whole cookie cost more than the rest of the lookup. Equality still compares whole
/// values. Only values that opened are stored, and their tails are the output of the sealing
/// key, so nobody can line up keys that collide.
#[derive(Default, Clone)]
struct TailHash(foldhash::fast::RandomState);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(foldhash::fast::FoldHasher<'static>);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn hash(build: &TailHash, key: impl Hash) -> u64 {
        build.hash_one(key)
    }

    #[test]
    fn only_the_tail_is_hashed_and_the_whole_value_compared() {
        let build = TailHash::default();
        let tail = "t".repeat(HASHED_TAIL);
        let (a, b) = (format!("aaaa{tail}"), format!("bbbb{tail}"));
        assert_eq!(hash(&build, &a), hash(&build, &b));
        assert_ne!(hash(&build, &a), hash(&build, format!("aaaa{tail}x")));
        assert_eq!(hash(&build, &a), hash(&build, a.clone().into_boxed_str()));

        let mut map: HashMap<Box<str>, u8, TailHash> = HashMap::default();
        map.insert(a.as_str().into(), 1);
        assert_eq!(map.get(a.as_str()), Some(&1));
        assert_eq!(map.get(b.as_str()), None, "same tail, other value");
    }
}
