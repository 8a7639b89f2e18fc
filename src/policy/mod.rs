//! The policy language: YAML files with CEL conditions compiled into an immutable [`PolicySet`].
//!
//! `policy` knows nothing of servers or cookies: it takes an [`Identity`](crate::identity::Identity)
//! (or none) and a [`RequestInfo`] and returns a [`Decision`]. The language reference is
//! `docs/policy.md`.

mod activation;
pub mod cli;
mod compile;
mod decide;
mod decision;
mod embedded;
mod error;
mod expr;
mod features;
mod functions;
mod index;
mod load;
mod memo;
mod model;
mod pattern;
mod plan;
mod reload;
mod request;
mod route;
mod set;
mod testfile;

#[cfg(test)]
mod tests;

pub use compile::PolicySource;
pub use decision::{Decision, Explanation, Outcome, StepResult, TraceStep};
pub use embedded::EMBEDDED_POLICIES;
pub use error::{PolicyError, PolicyErrorKind, PolicyErrors};
pub use features::Features;
pub use reload::{DEFAULT_DEBOUNCE, PolicyStore, ReloadStatus, Snapshot};
pub use request::{RequestInfo, Scheme};
pub use route::{BasicHeader, Route, Upstream};
pub use set::PolicySet;
