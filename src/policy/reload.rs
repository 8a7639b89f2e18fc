//! PLACEHOLDER until the policy engine lands: a fixed snapshot store with the reload API shape.
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::PolicySet;

/// One compiled policy set and the generation it was stored at.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub set: PolicySet,
    pub loaded_at: SystemTime,
}

/// What `/readyz` reports.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
}

/// Holds the serving snapshot.
#[derive(Debug)]
pub struct PolicyStore {
    current: ArcSwap<Snapshot>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl PolicyStore {
    pub fn from_set(set: PolicySet) -> Arc<PolicyStore> {
        let snapshot = Snapshot {
            generation: 1,
            set,
            loaded_at: SystemTime::now(),
        };
        Arc::new(PolicyStore {
            current: ArcSwap::from_pointee(snapshot),
            generation: tokio::sync::watch::Sender::new(1),
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn status(&self) -> ReloadStatus {
        let snapshot = self.current.load();
        ReloadStatus {
            generation: snapshot.generation,
            loaded_at: snapshot.loaded_at,
            last_error: None,
            last_error_at: None,
        }
    }
}
