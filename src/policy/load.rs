//! Reading a policy directory: `*.yaml` / `*.yml`, not recursive, skipping `*_test.yaml` and
//! dotfiles (so a Kubernetes ConfigMap's `..data` directory is skipped while the symlinks that
//! point into it are read).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compile::PolicySource;
use super::error::{PolicyError, PolicyErrorKind as Kind, PolicyErrors, Pos};
use super::features::Features;
use super::set::PolicySet;

impl PolicySet {
    /// Compiles every policy file in `dir`. Zero policy files is an error.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        PolicySet::load_dir_for(dir, Features::ALL)
    }

    /// Like [`load_dir`](Self::load_dir) for a gateway with only `features`.
    pub fn load_dir_for(dir: &Path, features: Features) -> Result<PolicySet, PolicyErrors> {
        let sources = read_dir(dir)?;
        PolicySet::compile_for(&sources, features)
    }
}

fn io_error(path: &Path, message: String, hint: &'static str) -> PolicyErrors {
    PolicyErrors::single(PolicyError::new(
        Kind::Io,
        &Pos::file(&Arc::from(path)),
        message,
        hint,
    ))
}

/// Whether `name` is a policy file (not a test file, not hidden).
pub(crate) fn is_policy_file(name: &str) -> bool {
    !name.starts_with('.')
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with("_test.yaml")
        && !name.ends_with("_test.yml")
}

/// Whether `name` is a policy test file.
pub(crate) fn is_test_file(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with("_test.yaml") || name.ends_with("_test.yml"))
}

/// Entries of `dir` whose names pass `keep`, sorted. Whatever the entry is (a file, a symlink,
/// even a dangling one, a directory) it is listed: a name that says "policy" and cannot be read
/// as one is an error, not something to skip, or a deny rule could silently stop applying.
pub(crate) fn list(dir: &Path, keep: fn(&str) -> bool) -> Result<Vec<PathBuf>, PolicyErrors> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        io_error(
            dir,
            format!("cannot read policy directory: {e}"),
            "check that the directory exists and is readable",
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            io_error(
                dir,
                format!("cannot list policy directory: {e}"),
                "check permissions",
            )
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !keep(name) {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

/// How often [`read_dir`] reads a directory that changed under it before giving up.
const READ_ATTEMPTS: usize = 5;

/// How long [`read_dir`] waits before looking again at a file whose target is missing.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(25);

/// The policy sources of `dir`, all from one version of it.
///
/// A Kubernetes ConfigMap update writes a new `..VERSION` directory and swaps the `..data`
/// symlink onto it; the policy files are symlinks through `..data`. Reading them one by one
/// across a swap would mix versions (one file old, the other new: a half-applied change) or
/// skip a file whose old target was just removed. So every file's target is resolved before
/// and after reading: files are read from the resolved targets, and when any target, or the
/// list of files, changed meanwhile, the directory is read again. A directory that keeps
/// changing is an error (the last good set keeps serving; the next change reloads).
///
/// A file whose target is missing is looked at again after [`SETTLE`]: a ConfigMap update
/// removes a deleted file's symlink just after the swap, so for a moment it dangles. One that
/// still dangles after every attempt is reported as the error it is.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<PolicySource>, PolicyErrors> {
    let mut targets = resolve(list(dir, is_policy_file)?);
    for attempt in 1..=READ_ATTEMPTS {
        if attempt < READ_ATTEMPTS && targets.iter().any(|(_, target)| target.is_none()) {
            std::thread::sleep(SETTLE);
            targets = resolve(list(dir, is_policy_file)?);
            continue;
        }
        let read = read_targets(dir, &targets);
        let after = resolve(list(dir, is_policy_file)?);
        if after == targets {
            return read;
        }
        targets = after;
    }
    Err(io_error(
        dir,
        format!("the policy directory changed while it was read, {READ_ATTEMPTS} times in a row"),
        "nothing to do if an update is in progress: the next change reloads the directory",
    ))
}

/// Each listed file with the file it resolves to (symlinks followed), `None` if it vanished.
fn resolve(files: Vec<PathBuf>) -> Vec<(PathBuf, Option<PathBuf>)> {
    files
        .into_iter()
        .map(|path| {
            let target = std::fs::canonicalize(&path).ok();
            (path, target)
        })
        .collect()
}

/// Reads every file from its resolved target; errors and sources name the listed path.
fn read_targets(
    dir: &Path,
    targets: &[(PathBuf, Option<PathBuf>)],
) -> Result<Vec<PolicySource>, PolicyErrors> {
    if targets.is_empty() {
        return Err(io_error(
            dir,
            format!("no policy files in {}", dir.display()),
            "add a *.yaml file with `routes:` (files ending in _test.yaml and dotfiles are skipped)",
        ));
    }
    let mut sources = Vec::with_capacity(targets.len());
    let mut errors = Vec::new();
    for (path, target) in targets {
        match std::fs::read_to_string(target.as_deref().unwrap_or(path)) {
            Ok(text) => sources.push(PolicySource {
                path: path.clone(),
                text,
            }),
            Err(err) => {
                let (message, hint) = unreadable(path, &err);
                errors.push(PolicyError::new(
                    Kind::Io,
                    &Pos::file(&Arc::from(path.as_path())),
                    message,
                    hint,
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// Why the entry at `path`, named like a policy file, could not be read, and what to do.
fn unreadable(path: &Path, err: &std::io::Error) -> (String, &'static str) {
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return (
            "a directory with a policy file's name".into(),
            "rename it or move it out of the policy directory",
        );
    }
    if let Ok(target) = std::fs::read_link(path)
        && std::fs::metadata(path).is_err()
    {
        return (
            format!("a symlink to {}, which does not exist", target.display()),
            "fix the link or remove it",
        );
    }
    (
        format!("cannot read policy file: {err}"),
        "check the file's permissions and encoding (UTF-8)",
    )
}
