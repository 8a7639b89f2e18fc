//! The live policy set: an [`ArcSwap`] of compiled snapshots, swapped whole.
//!
//! A request calls [`PolicyStore::snapshot`] once (lock-free) and decides against that snapshot
//! only. [`PolicyStore::reload`] (called by the directory watcher and on SIGHUP) compiles the
//! directory off the request path and swaps only when every file compiled; otherwise the last
//! good set keeps serving and the error is logged, counted and kept for `/readyz`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{Features, PolicyErrors, PolicySet};
use crate::watch::{DirWatch, watch_dir};

/// Debounce the watcher uses unless told otherwise.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);

/// One compiled policy set and when it was loaded.
#[derive(Debug)]
pub struct Snapshot {
    /// 1 for the set loaded at startup, +1 on every successful reload.
    pub generation: u64,
    pub set: PolicySet,
    pub loaded_at: SystemTime,
}

/// What `/readyz` shows about policy loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadStatus {
    /// The generation that serves.
    pub generation: u64,
    pub loaded_at: SystemTime,
    /// The last failed reload's errors, cleared by the next successful one.
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
}

#[derive(Default)]
struct LastError {
    message: Option<String>,
    at: Option<SystemTime>,
}

/// Holds the serving [`Snapshot`] and replaces it on reload.
pub struct PolicyStore {
    dir: Option<PathBuf>,
    /// What the gateway offers; every reload is checked against it.
    features: Features,
    current: ArcSwap<Snapshot>,
    generation_tx: watch::Sender<u64>,
    last_error: Mutex<LastError>,
    /// One reload at a time (watcher thread and SIGHUP may race).
    reloading: Mutex<()>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("dir", &self.dir)
            .field("generation", &self.current.load().generation)
            .finish()
    }
}

impl PolicyStore {
    /// Loads `dir` at startup for a gateway with `features`; any error is fatal to the caller
    /// (all errors listed). Reloads are checked against the same `features`.
    pub fn open(dir: &Path, features: Features) -> Result<Arc<PolicyStore>, PolicyErrors> {
        let set = PolicySet::load_dir_for(dir, features)?;
        metrics::counter!("portcullis_policy_reloads_total", "result" => "ok").increment(1);
        Ok(Self::new(Some(dir.to_path_buf()), features, set))
    }

    /// A store over a fixed set (the embedded default): nothing to watch or reload.
    pub fn from_set(set: PolicySet) -> Arc<PolicyStore> {
        Self::new(None, Features::ALL, set)
    }

    fn new(dir: Option<PathBuf>, features: Features, set: PolicySet) -> Arc<PolicyStore> {
        let snapshot = Snapshot {
            generation: 1,
            set,
            loaded_at: SystemTime::now(),
        };
        metrics::gauge!("portcullis_policy_generation").set(1.0);
        let (generation_tx, _) = watch::channel(1);
        Arc::new(PolicyStore {
            dir,
            features,
            current: ArcSwap::from_pointee(snapshot),
            generation_tx,
            last_error: Mutex::new(LastError::default()),
            reloading: Mutex::new(()),
        })
    }

    /// The directory this store reloads from, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The serving snapshot; use it for a whole decision.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Receives the generation after every successful swap.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation_tx.subscribe()
    }

    /// Recompiles the directory; swaps and returns the new generation when all of it compiled,
    /// otherwise keeps the serving set and returns the errors. Without a directory it returns
    /// the serving generation.
    pub fn reload(&self) -> Result<u64, PolicyErrors> {
        let Some(dir) = &self.dir else {
            return Ok(self.current.load().generation);
        };
        let _one_at_a_time = self.reloading.lock();
        match PolicySet::load_dir_for(dir, self.features) {
            Ok(set) => {
                let generation = self.current.load().generation + 1;
                self.current.store(Arc::new(Snapshot {
                    generation,
                    set,
                    loaded_at: SystemTime::now(),
                }));
                *self.last_error.lock() = LastError::default();
                self.generation_tx.send_replace(generation);
                metrics::counter!("portcullis_policy_reloads_total", "result" => "ok").increment(1);
                metrics::gauge!("portcullis_policy_generation").set(generation as f64);
                tracing::info!(generation, dir = %dir.display(), "policy reloaded");
                Ok(generation)
            }
            Err(errors) => {
                let serving = self.current.load().generation;
                let first = errors.first_line();
                tracing::warn!(
                    dir = %dir.display(),
                    error = %first,
                    errors = errors.len(),
                    serving_generation = serving,
                    "policy reload failed; keeping the last good policy set"
                );
                metrics::counter!("portcullis_policy_reloads_total", "result" => "error")
                    .increment(1);
                *self.last_error.lock() = LastError {
                    message: Some(errors.to_string()),
                    at: Some(SystemTime::now()),
                };
                Err(errors)
            }
        }
    }

    /// Watches the directory and reloads, debounced, on every change. Dropping the returned
    /// value stops watching. Fails for a store without a directory.
    pub fn watch(self: &Arc<Self>, debounce: Duration) -> notify::Result<DirWatch> {
        let Some(dir) = self.dir.clone() else {
            return Err(notify::Error::generic(
                "this policy store has no directory to watch",
            ));
        };
        let store: Weak<PolicyStore> = Arc::downgrade(self);
        watch_dir(&dir, debounce, move || {
            if let Some(store) = store.upgrade() {
                // Errors are logged, counted and kept in `status()` by `reload` itself.
                let _ = store.reload();
            }
        })
    }

    pub fn status(&self) -> ReloadStatus {
        let current = self.current.load();
        let last = self.last_error.lock();
        ReloadStatus {
            generation: current.generation,
            loaded_at: current.loaded_at,
            last_error: last.message.clone(),
            last_error_at: last.at,
        }
    }
}
