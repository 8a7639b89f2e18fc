//! Table-driven tests of the policy engine, beside the code.

mod bypass;
mod cel;
mod cli;
mod decide;
mod errors;
mod memo;
mod plan;
mod reload;

use std::path::PathBuf;

use super::{PolicyErrors, PolicySet, PolicySource, RequestInfo};
use crate::identity::Identity;

pub(super) fn set(yaml: &str) -> PolicySet {
    try_set(yaml).unwrap_or_else(|e| panic!("policy must compile:\n{e}"))
}

pub(super) fn try_set(yaml: &str) -> Result<PolicySet, PolicyErrors> {
    PolicySet::compile(&[PolicySource {
        path: PathBuf::from("test.yaml"),
        text: yaml.to_owned(),
    }])
}

/// One route with one allow rule `r` whose only condition is `when`.
pub(super) fn route_with(when: &str) -> String {
    format!(
        "routes:\n  - name: a\n    upstream: builtin:whoami\n    rules:\n      - name: r\n        allow:\n          when: '{when}'\n"
    )
}

pub(super) fn req(line: &str) -> RequestInfo {
    super::testfile::parse_request_line(line, &Default::default(), None, false)
        .expect("request line")
}

pub(super) fn user(email: &str, verified: bool, groups: &[&str]) -> Identity {
    Identity {
        subject: email.split('@').next().unwrap_or("").to_owned(),
        email: Some(email.to_owned()),
        email_verified: verified,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        provider: "google".to_owned(),
        ..Identity::default()
    }
}
