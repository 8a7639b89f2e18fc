//! Watches a directory and calls back, debounced, whenever anything in it changes.
//!
//! Directories rather than files, so every way a file changes is seen: an in-place write, an
//! editor's save-by-rename, a new or deleted file, and a Kubernetes ConfigMap's `..data` symlink
//! swap. Shared by policy reload, the capability key ring and the basic-auth credentials file.
//!
//! The debounce is a thread blocked on the watcher's events: it wakes only when something
//! changed, where a ticking debouncer woke several times a debounce window for as long as the
//! gateway ran (40 times a second a watched directory at the 100 ms default, with nothing to do).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

/// A burst that never goes quiet (a file rewritten without pause) is reported after this many
/// debounce windows anyway, so a busy directory cannot hold a change back for good.
const MAX_WINDOWS: u32 = 10;

/// Keeps the watch alive; dropping it stops the callbacks.
pub struct DirWatch {
    /// Dropping the watcher closes the event channel, which ends the debounce thread.
    _watcher: RecommendedWatcher,
    stopped: Arc<AtomicBool>,
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        // A change being debounced when the watch is dropped is not reported.
        self.stopped.store(true, Ordering::Release);
    }
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirWatch")
    }
}

/// Calls `on_change` on a thread of its own (off the request path) once `dir` has been quiet
/// for `debounce` after something in it changed. Watch errors also call back, so the caller
/// re-reads the directory and reports what it finds instead of going silent.
pub fn watch_dir(
    dir: &Path,
    debounce: Duration,
    on_change: impl FnMut() + Send + 'static,
) -> notify::Result<DirWatch> {
    let (sender, events) = channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        // The debounce thread is gone only once the watch was dropped.
        let _ = sender.send(event);
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let stopped = Arc::new(AtomicBool::new(false));
    let thread_stopped = stopped.clone();
    std::thread::Builder::new()
        .name("dir-watch".into())
        .spawn(move || debounce_changes(&events, debounce, &thread_stopped, on_change))?;
    Ok(DirWatch {
        _watcher: watcher,
        stopped,
    })
}

/// One `on_change` a burst of events: blocks until a relevant event, then takes events until
/// no relevant one came for `debounce` (or [`MAX_WINDOWS`] windows passed), then calls back.
fn debounce_changes(
    events: &Receiver<notify::Result<Event>>,
    debounce: Duration,
    stopped: &AtomicBool,
    mut on_change: impl FnMut(),
) {
    while let Ok(event) = events.recv() {
        if !relevant(&event) {
            continue;
        }
        let first = Instant::now();
        let give_up = first + debounce * MAX_WINDOWS;
        let mut quiet_at = first + debounce;
        loop {
            let until = quiet_at.min(give_up);
            let now = Instant::now();
            if now >= until {
                break;
            }
            match events.recv_timeout(until - now) {
                Ok(event) if relevant(&event) => quiet_at = Instant::now() + debounce,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if stopped.load(Ordering::Acquire) {
            return;
        }
        on_change();
    }
}

/// Reads (access events) change nothing; anything else, errors included, may have.
fn relevant(event: &notify::Result<Event>) -> bool {
    match event {
        Ok(event) => !event.kind.is_access(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn watched(debounce: Duration) -> (tempfile::TempDir, DirWatch, mpsc::Receiver<Instant>) {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let watch = watch_dir(dir.path(), debounce, move || {
            let _ = tx.send(Instant::now());
        })
        .unwrap();
        (dir, watch, rx)
    }

    #[test]
    fn rename_into_the_directory_calls_back() {
        let (dir, _watch, rx) = watched(Duration::from_millis(50));
        let staged = dir.path().join(".staged.yaml");
        std::fs::write(&staged, "routes: []\n").unwrap();
        std::fs::rename(&staged, dir.path().join("a.yaml")).unwrap();
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a change in the directory must call back");
    }

    #[test]
    fn a_burst_is_one_call_after_the_directory_goes_quiet() {
        // Wide against the writes' 10 ms gaps, so a busy machine does not split the burst.
        let debounce = Duration::from_millis(300);
        let (dir, _watch, rx) = watched(debounce);
        let begun = Instant::now();
        for i in 0..5 {
            std::thread::sleep(Duration::from_millis(10));
            std::fs::write(dir.path().join(format!("{i}.yaml")), "routes: []\n").unwrap();
        }
        let last_write = Instant::now();
        let called = rx.recv_timeout(Duration::from_secs(5)).expect("a call");
        // The last write's event may be taken a hair before `last_write` was read.
        assert!(
            called + Duration::from_millis(10) >= last_write + debounce,
            "called before the burst went quiet"
        );
        assert!(
            rx.recv_timeout(debounce * 3).is_err(),
            "one call for the whole burst"
        );
        assert!(called - begun < Duration::from_secs(2));
    }

    #[test]
    fn a_directory_that_never_goes_quiet_is_reported_anyway() {
        let debounce = Duration::from_millis(50);
        let (dir, _watch, rx) = watched(debounce);
        let file = dir.path().join("busy.yaml");
        let begun = Instant::now();
        let called = loop {
            std::fs::write(&file, "routes: []\n").unwrap();
            if let Ok(called) = rx.recv_timeout(Duration::from_millis(10)) {
                break called;
            }
            assert!(
                begun.elapsed() < Duration::from_secs(5),
                "never called back"
            );
        };
        // Without the bound the loop above would run into its 5 s limit.
        assert!(called - begun < debounce * MAX_WINDOWS + Duration::from_millis(1500));
    }

    #[test]
    fn a_dropped_watch_calls_back_no_more() {
        let (dir, watch, rx) = watched(Duration::from_millis(50));
        drop(watch);
        std::fs::write(dir.path().join("b.yaml"), "routes: []\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    }
}
