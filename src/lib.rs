//! portcullis: a declarative, policy-driven auth gateway.
//!
//! The request flow and the module map are in `ARCHITECTURE.md`; in short:
//! `server` receives a request, `server::guard` strips client-sent identity headers, matches a
//! route and asks [`policy::PolicySet::decide`], then `server::proxy` forwards it with identity
//! headers and a capability token minted by `capability`.
//!
//! A downstream service that only verifies tokens depends on this crate with
//! `default-features = false, features = ["verify"]` and uses [`verify`].
#![forbid(unsafe_code)]

pub mod capability;
pub use capability::verify;

#[cfg(feature = "gateway")]
pub mod config;
#[cfg(feature = "gateway")]
pub mod identity;
#[cfg(feature = "gateway")]
pub mod pages;
#[cfg(feature = "gateway")]
pub mod policy;
#[cfg(feature = "gateway")]
pub mod server;
#[cfg(feature = "gateway")]
pub mod session;
#[cfg(feature = "gateway")]
pub mod telemetry;
#[cfg(feature = "gateway")]
pub mod watch;

#[cfg(feature = "gateway")]
pub use policy::PolicySet;
pub use verify::Verifier;
