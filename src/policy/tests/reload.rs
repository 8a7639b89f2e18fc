//! Reload with real files in a temporary directory and the real watcher.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::{Features, Outcome, PolicyStore};
use super::req;

const DEBOUNCE: Duration = Duration::from_millis(50);

fn policy(outcome: &str) -> String {
    let rule = if outcome == "allow" {
        "guest: true"
    } else {
        "deny: {}"
    };
    format!(
        "routes:\n  - name: app\n    match: {{ path: /app/** }}\n    upstream: builtin:whoami\n    rules:\n      - name: r\n        {rule}\n"
    )
}

fn outcome(store: &PolicyStore, path: &str) -> Outcome {
    store
        .snapshot()
        .set
        .decide(None, &req(&format!("GET http://h{path}")))
        .outcome
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

fn open(dir: &Path) -> (Arc<PolicyStore>, crate::watch::DirWatch) {
    let store = PolicyStore::open(dir, Features::ALL).unwrap_or_else(|e| panic!("{e}"));
    let watch = store.watch(DEBOUNCE).expect("watch");
    (store, watch)
}

#[test]
fn in_place_writes_flip_the_decision_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.yaml");
    fs::write(&file, policy("allow")).expect("write");
    let (store, _watch) = open(dir.path());
    let mut generations = store.subscribe();
    assert_eq!(outcome(&store, "/app/x"), Outcome::Allow);
    fs::write(&file, policy("deny")).expect("write");
    wait_for("deny", || outcome(&store, "/app/x") == Outcome::Deny);
    fs::write(&file, policy("allow")).expect("write");
    wait_for("allow again", || {
        outcome(&store, "/app/x") == Outcome::Allow
    });
    assert!(store.snapshot().generation >= 3);
    assert!(generations.has_changed().expect("sender alive"));
    assert_eq!(
        *generations.borrow_and_update(),
        store.snapshot().generation
    );
}

#[test]
fn rename_over_new_file_and_delete_are_seen() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("app.yaml"), policy("allow")).expect("write");
    let (store, _watch) = open(dir.path());
    // An editor's save: write a temporary file, rename it over the original.
    let staged = dir.path().join(".app.yaml.swp");
    fs::write(&staged, policy("deny")).expect("write");
    fs::rename(&staged, dir.path().join("app.yaml")).expect("rename");
    wait_for("rename-over", || outcome(&store, "/app/x") == Outcome::Deny);
    // A new file adds a route.
    assert_eq!(outcome(&store, "/other"), Outcome::Deny);
    fs::write(
        dir.path().join("other.yaml"),
        "routes:\n  - name: other\n    match: { path: /other/** }\n    upstream: builtin:whoami\n    rules: [{ name: g, guest: true }]\n",
    )
    .expect("write");
    wait_for("new file", || outcome(&store, "/other") == Outcome::Allow);
    // Deleting it removes the route.
    fs::remove_file(dir.path().join("other.yaml")).expect("remove");
    wait_for("delete", || outcome(&store, "/other") == Outcome::Deny);
}

#[cfg(unix)]
#[test]
fn configmap_data_symlink_swap_is_seen() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fs::create_dir(root.join("..v1")).expect("mkdir");
    fs::write(root.join("..v1/app.yaml"), policy("allow")).expect("write");
    symlink("..v1", root.join("..data")).expect("symlink");
    symlink("..data/app.yaml", root.join("app.yaml")).expect("symlink");
    let (store, _watch) = open(root);
    assert_eq!(outcome(&store, "/app/x"), Outcome::Allow);
    // What the kubelet does: write a new version, point a new link at it, rename it over `..data`.
    fs::create_dir(root.join("..v2")).expect("mkdir");
    fs::write(root.join("..v2/app.yaml"), policy("deny")).expect("write");
    symlink("..v2", root.join("..data_tmp")).expect("symlink");
    fs::rename(root.join("..data_tmp"), root.join("..data")).expect("rename");
    fs::remove_dir_all(root.join("..v1")).expect("rm");
    wait_for("configmap swap", || {
        outcome(&store, "/app/x") == Outcome::Deny
    });
}

#[test]
fn a_broken_edit_keeps_the_last_good_set_and_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.yaml");
    fs::write(&file, policy("allow")).expect("write");
    let (store, _watch) = open(dir.path());
    let good = store.snapshot().generation;
    fs::write(
        &file,
        "routes:\n  - name: app\n    upstream: builtin:whoami\n    bogus: 1\n",
    )
    .expect("write");
    wait_for("error status", || store.status().last_error.is_some());
    let status = store.status();
    assert_eq!(status.generation, good);
    assert!(status.last_error_at.is_some());
    let message = status.last_error.expect("error");
    assert!(
        message.contains("app.yaml:4:5: unknown field `bogus`"),
        "{message}"
    );
    assert_eq!(
        outcome(&store, "/app/x"),
        Outcome::Allow,
        "last good set keeps serving"
    );
    fs::write(&file, policy("deny")).expect("write");
    wait_for("fixed edit", || outcome(&store, "/app/x") == Outcome::Deny);
    assert!(store.status().last_error.is_none());
}

#[test]
fn an_emptied_directory_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("app.yaml"), policy("allow")).expect("write");
    let (store, _watch) = open(dir.path());
    fs::remove_file(dir.path().join("app.yaml")).expect("remove");
    wait_for("error status", || store.status().last_error.is_some());
    assert!(
        store
            .status()
            .last_error
            .unwrap_or_default()
            .contains("no policy files in")
    );
    assert_eq!(outcome(&store, "/app/x"), Outcome::Allow);
    assert!(store.reload().is_err());
}

#[test]
fn a_directory_that_cannot_be_read_keeps_the_last_good_set() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("policies");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("app.yaml"), policy("allow")).expect("write");
    let store = PolicyStore::open(&dir, Features::ALL).expect("opens");
    // Gone altogether (a volume unmounted, a directory moved away): nothing can be read.
    fs::rename(&dir, parent.path().join("moved")).expect("rename");
    let generation = store.status().generation;
    let error = store
        .reload()
        .expect_err("an unreadable directory is an error");
    assert!(error.to_string().contains("policies"), "{error}");
    let status = store.status();
    assert_eq!(status.generation, generation, "nothing swapped");
    assert!(status.last_error.is_some(), "reported in /readyz");
    assert_eq!(outcome(&store, "/app/x"), Outcome::Allow);
}

#[test]
fn startup_errors_are_fatal_and_embedded_stores_do_not_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(PolicyStore::open(dir.path(), Features::ALL).is_err());
    fs::write(dir.path().join("a.yaml"), "routes: 3\n").expect("write");
    assert!(PolicyStore::open(dir.path(), Features::ALL).is_err());
    let store = PolicyStore::from_set(super::super::PolicySet::embedded());
    assert_eq!(store.reload().expect("no-op"), 1);
    assert!(store.watch(DEBOUNCE).is_err());
    assert_eq!(outcome(&store, "/"), Outcome::Allow);
}

#[test]
fn sighup_style_reload_bumps_the_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("app.yaml"), policy("allow")).expect("write");
    let store = PolicyStore::open(dir.path(), Features::ALL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.reload().expect("reload"), 2);
    assert_eq!(store.status().generation, 2);
}

#[test]
fn a_reload_asking_for_missing_basic_auth_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.yaml");
    fs::write(&file, policy("allow")).expect("write");
    let store = PolicyStore::open(dir.path(), Features { basic_auth: false })
        .unwrap_or_else(|e| panic!("{e}"));
    fs::write(
        &file,
        policy("allow").replace("    rules:", "    basic_header: true\n    rules:"),
    )
    .expect("write");
    let error = store.reload().expect_err("no basic_auth in the gateway");
    assert!(
        error
            .to_string()
            .contains("app.yaml:5:19: `basic_header: true`"),
        "{error}"
    );
    assert_eq!(store.status().generation, 1, "nothing swapped");
    assert_eq!(outcome(&store, "/app/x"), Outcome::Allow);
}

/// A ConfigMap update writes a new `..VERSION` directory, swaps the `..data` symlink onto it in
/// one rename and removes the old directory; the policy files are symlinks through `..data`. A
/// reload running across a swap must read every file from one version: never `a.yaml` from the
/// old one and `b.yaml` from the new, and never fail on the old directory's removal.
#[test]
fn a_reload_racing_a_configmap_swap_reads_every_file_from_one_version() {
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_path_buf();
    let publish = |dir: &Path, version: u64| {
        let versioned = dir.join(format!("..v{version}"));
        fs::create_dir(&versioned).expect("mkdir");
        for name in ["a.yaml", "b.yaml"] {
            fs::write(versioned.join(name), format!("# v{version}\n")).expect("write");
        }
        symlink(format!("..v{version}"), dir.join("..data_tmp")).expect("symlink");
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
        if version > 0 {
            fs::remove_dir_all(dir.join(format!("..v{}", version - 1))).expect("rm old");
        }
    };
    publish(&dir, 0);
    for name in ["a.yaml", "b.yaml"] {
        symlink(format!("..data/{name}"), dir.join(name)).expect("symlink");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let swapper = std::thread::spawn({
        let (stop, published, dir) = (stop.clone(), published.clone(), dir.clone());
        move || {
            let mut version = 0;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                publish(&dir, version);
                published.store(version, Ordering::Relaxed);
            }
            version
        }
    });
    let started = Instant::now();
    let (mut reads, mut mixed, mut failed) = (0, Vec::new(), Vec::new());
    // Half a second, and on a busy machine (the swapper starved by other tests) on until a
    // hundred swaps have raced the reads.
    let racing = || {
        let elapsed = started.elapsed();
        elapsed < Duration::from_secs(10)
            && (elapsed < Duration::from_millis(500) || published.load(Ordering::Relaxed) <= 100)
    };
    while racing() {
        reads += 1;
        match super::super::load::read_dir(&dir) {
            Ok(sources) => {
                let versions: Vec<&str> = sources.iter().map(|s| s.text.trim()).collect();
                if versions.len() != 2 || versions[0] != versions[1] {
                    mixed.push(versions.join(" + "));
                }
            }
            // Swapped under every attempt: refused, so the last good set keeps serving.
            Err(errors) if errors.first_line().contains("changed while it was read") => {}
            Err(errors) => failed.push(errors.first_line()),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 100, "only {swaps} swaps");
    assert!(
        mixed.is_empty() && failed.is_empty(),
        "{reads} reads across {swaps} swaps: {} mixed versions (first: {:?}), {} failed (first: {:?})",
        mixed.len(),
        mixed.first(),
        failed.len(),
        failed.first(),
    );
}

/// A global deny kept in its own file, `deny.yaml`, turned into a symlink to a file that does
/// not exist: skipping it would lift the deny, so the directory does not load, the error names
/// the link, and the last good set (with the deny) keeps serving.
#[test]
fn a_dangling_policy_symlink_is_an_error_not_a_skipped_file() {
    use std::os::unix::fs::symlink;

    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("app.yaml"), policy("allow")).expect("write");
    let deny = "rules:\n  - name: closed\n    deny: {}\n";
    fs::write(dir.path().join("deny.yaml"), deny).expect("write");
    // No watcher: each step replaces deny.yaml in two moves, and a reload between them would
    // rightly load the directory without it.
    let store = PolicyStore::open(dir.path(), Features::ALL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome(&store, "/app/x"), Outcome::Deny);

    fs::remove_file(dir.path().join("deny.yaml")).expect("rm");
    symlink("/nonexistent/deny.yaml", dir.path().join("deny.yaml")).expect("symlink");
    let errors = store
        .reload()
        .expect_err("a dangling policy file does not load");
    let first = errors.first_line();
    assert!(
        first.contains("deny.yaml")
            && first.contains("/nonexistent/deny.yaml, which does not exist"),
        "{first}"
    );
    assert_eq!(store.status().generation, 1, "nothing swapped");
    assert_eq!(outcome(&store, "/app/x"), Outcome::Deny);

    fs::remove_file(dir.path().join("deny.yaml")).expect("rm");
    fs::create_dir(dir.path().join("deny.yaml")).expect("mkdir");
    let errors = store
        .reload()
        .expect_err("a directory named like a policy does not load");
    assert!(
        errors
            .first_line()
            .contains("a directory with a policy file's name"),
        "{}",
        errors.first_line()
    );
    assert_eq!(outcome(&store, "/app/x"), Outcome::Deny);
}

/// A ConfigMap update that deletes a file swaps `..data` first and removes the file's symlink
/// a moment later: in between the link dangles. A read in that moment waits for the removal
/// instead of failing.
#[test]
fn a_symlink_that_dangles_for_a_moment_is_waited_for() {
    use std::os::unix::fs::symlink;

    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("app.yaml"), policy("allow")).expect("write");
    let gone = dir.path().join("gone.yaml");
    symlink("..data/gone.yaml", &gone).expect("symlink");
    // Removed well inside the 100 ms the read waits, so a loaded machine has room.
    let remover = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        fs::remove_file(gone).expect("rm");
    });
    let sources = super::super::load::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    remover.join().expect("remover");
    let names: Vec<_> = sources
        .iter()
        .map(|s| s.path.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["app.yaml"]);
}
