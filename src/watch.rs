//! Watches a directory and calls back, debounced, whenever anything in it changes.
//!
//! Directories rather than files, so every way a file changes is seen: an in-place write, an
//! editor's save-by-rename, a new or deleted file, and a Kubernetes ConfigMap's `..data` symlink
//! swap. Shared by policy reload, the capability key ring and the basic-auth credentials file.

use std::path::Path;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

/// Keeps the watch alive; dropping it stops the callbacks.
pub struct DirWatch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirWatch")
    }
}

/// Calls `on_change` on the watcher's own thread (off the request path) at most once per
/// `debounce` window after something in `dir` changed. Watch errors also call back, so the
/// caller re-reads the directory and reports what it finds instead of going silent.
pub fn watch_dir(
    dir: &Path,
    debounce: Duration,
    mut on_change: impl FnMut() + Send + 'static,
) -> notify::Result<DirWatch> {
    let tick = Some(debounce / 4);
    let mut debouncer = new_debouncer(debounce, tick, move |result: DebounceEventResult| {
        let relevant = match &result {
            Ok(events) => events.iter().any(|event| !event.kind.is_access()),
            Err(_) => true,
        };
        if relevant {
            on_change();
        }
    })?;
    debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(DirWatch {
        _debouncer: debouncer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn rename_into_the_directory_calls_back() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let _watch = watch_dir(dir.path(), Duration::from_millis(50), move || {
            let _ = tx.send(());
        })
        .unwrap();
        let staged = dir.path().join(".staged.yaml");
        std::fs::write(&staged, "routes: []\n").unwrap();
        std::fs::rename(&staged, dir.path().join("a.yaml")).unwrap();
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a change in the directory must call back");
    }
}
