//! The live key ring: loaded once, swapped whole when the key directory changes.
//!
//! A reload builds the new [`KeyRing`] beside the old one and stores it only if every key
//! loaded; a broken or missing key file keeps the last good ring serving and is logged. A key
//! removed from the directory disappears from keys.json at the next reload, so downstream
//! verifiers that refresh keys.json stop accepting tokens signed with it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;

use super::CapabilityConfig;
use super::keyring::{KeyError, KeyRing};
use crate::watch::{DirWatch, watch_dir};

/// How long the key directory must be quiet before a reload.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(200);

/// Holds the current [`KeyRing`]; reading it is lock-free.
pub struct KeyStore {
    ring: ArcSwap<KeyRing>,
    dir: Option<PathBuf>,
    watch: Mutex<Option<DirWatch>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.dir)
            .field("ring", &*self.ring.load())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// The store `capability:` asks for: the watched `keys_dir`, or an ephemeral key (warned).
    pub fn from_config(config: &CapabilityConfig) -> Result<Arc<KeyStore>, KeyError> {
        match &config.keys_dir {
            Some(dir) => Self::watch(dir),
            None => {
                let ring = KeyRing::ephemeral();
                tracing::warn!(
                    kid = ring.signing_kid(),
                    "capability.keys_dir is not set: signing with an ephemeral in-memory key; \
                     tokens stop verifying after a restart and replicas do not share it \
                     (run `portcullis keygen DIR` and set capability.keys_dir)"
                );
                Ok(Self::fixed(ring))
            }
        }
    }

    /// Loads `dir` and reloads it whenever it changes.
    pub fn watch(dir: &Path) -> Result<Arc<KeyStore>, KeyError> {
        Self::watch_with(dir, RELOAD_DEBOUNCE)
    }

    pub(crate) fn watch_with(dir: &Path, debounce: Duration) -> Result<Arc<KeyStore>, KeyError> {
        let ring = KeyRing::load_dir(dir)?;
        tracing::info!(dir = %dir.display(), signing_kid = ring.signing_kid(), "capability keys loaded");
        let store = Arc::new(KeyStore {
            ring: ArcSwap::from_pointee(ring),
            dir: Some(dir.to_owned()),
            watch: Mutex::new(None),
        });
        let weak: Weak<KeyStore> = Arc::downgrade(&store);
        let watch = watch_dir(dir, debounce, move || {
            if let Some(store) = weak.upgrade() {
                // Errors are logged inside; the last good ring keeps serving.
                let _ = store.reload();
            }
        })
        .map_err(|e| KeyError::Io {
            path: dir.to_owned(),
            source: std::io::Error::other(e),
        })?;
        *store.watch.lock() = Some(watch);
        Ok(store)
    }

    /// A store that never reloads.
    pub fn fixed(ring: KeyRing) -> Arc<KeyStore> {
        Arc::new(KeyStore {
            ring: ArcSwap::from_pointee(ring),
            dir: None,
            watch: Mutex::new(None),
        })
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.load_full()
    }

    /// Borrow of the current ring for the request path (no reference-count traffic).
    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.ring.load()
    }

    /// keys.json of the current ring.
    pub fn public_keys_json(&self) -> Bytes {
        self.ring.load().public_keys_json()
    }

    /// Re-reads the key directory now; on error the current ring stays and the error is logged
    /// and returned. A store without a directory has nothing to reload.
    pub fn reload(&self) -> Result<(), KeyError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        match KeyRing::load_dir(dir) {
            Ok(ring) => {
                let before = self.ring.load().signing_kid();
                tracing::info!(
                    dir = %dir.display(),
                    signing_kid = ring.signing_kid(),
                    previous_signing_kid = before,
                    keys = ring.public_keys().len(),
                    "capability keys reloaded"
                );
                self.ring.store(Arc::new(ring));
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "capability keys not reloaded; the previous keys stay in use");
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::generate_key_file;

    #[test]
    fn a_broken_key_file_keeps_the_last_good_ring() {
        let dir = tempfile::tempdir().unwrap();
        let (kid, _, _) = generate_key_file(dir.path()).unwrap();
        let store = KeyStore::watch_with(dir.path(), Duration::from_secs(3600)).unwrap();
        std::fs::write(dir.path().join("key-4000000000.pem"), "garbage").unwrap();
        assert!(store.reload().is_err());
        assert_eq!(store.ring().signing_kid(), kid);
    }

    #[test]
    fn removing_every_key_keeps_the_last_good_ring() {
        let dir = tempfile::tempdir().unwrap();
        let (kid, _, path) = generate_key_file(dir.path()).unwrap();
        let store = KeyStore::watch_with(dir.path(), Duration::from_secs(3600)).unwrap();
        std::fs::remove_file(path).unwrap();
        assert!(matches!(store.reload(), Err(KeyError::Empty { .. })));
        assert_eq!(store.ring().signing_kid(), kid);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = KeyStore::watch(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }), "{err}");
    }
}
