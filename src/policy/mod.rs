//! The policy language: YAML files with CEL conditions compiled into an immutable [`PolicySet`].
//!
//! `policy` knows nothing of servers or cookies: it takes an [`Identity`](crate::identity::Identity)
//! (or none) and a [`RequestInfo`] and returns a [`Decision`].

mod decide;
mod reload;
mod request;

pub use decide::{Decision, Outcome, PolicySet, Route, Upstream};
pub use reload::{PolicyStore, ReloadStatus, Snapshot};
pub use request::{RequestInfo, Scheme};
