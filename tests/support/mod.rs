//! Real processes and peers for integration tests, on 127.0.0.1 only.
#![allow(dead_code)]

pub mod browser;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod oidc;
pub mod panel;
pub mod policy;
pub mod upstream;
