//! The policy set `portcullis serve` uses with no policy directory: the files in `policies/`,
//! compiled into the binary.

use std::path::PathBuf;

use super::compile::PolicySource;
use super::set::PolicySet;

/// The example policies shipped in `policies/`, as (file name, text).
pub const EMBEDDED_POLICIES: &[(&str, &str)] = &[
    ("00-demo.yaml", include_str!("../../policies/00-demo.yaml")),
    (
        "10-panel.yaml",
        include_str!("../../policies/10-panel.yaml"),
    ),
    (
        "20-admin.yaml",
        include_str!("../../policies/20-admin.yaml"),
    ),
    (
        "30-global.yaml",
        include_str!("../../policies/30-global.yaml"),
    ),
];

impl PolicySet {
    /// The embedded default set: a guest route `/` → `builtin:whoami` plus the examples.
    pub fn embedded() -> PolicySet {
        let sources: Vec<PolicySource> = EMBEDDED_POLICIES
            .iter()
            .map(|(name, text)| PolicySource {
                path: PathBuf::from("policies").join(name),
                text: (*text).to_owned(),
            })
            .collect();
        match PolicySet::compile(&sources) {
            Ok(set) => set,
            // The embedded files are compiled by a unit test on every build; should that ever be
            // skipped, serve nothing rather than panic: every request is denied.
            Err(errors) => {
                tracing::error!(%errors, "embedded policies do not compile; denying every request");
                PolicySet::deny_all()
            }
        }
    }

    /// A set with no routes: every request is denied.
    pub fn deny_all() -> PolicySet {
        PolicySet {
            routes: Vec::new(),
            global_deny: Vec::new(),
            global_permit: Vec::new(),
            index: Default::default(),
            cel: super::functions::root_context(Default::default()),
            when_memo: Default::default(),
            files: Vec::new(),
        }
    }
}
