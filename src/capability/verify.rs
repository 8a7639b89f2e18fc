//! PLACEHOLDER until capability tokens land: offline verification for downstream services.

/// Verifies capability tokens with the gateway's public keys.
#[derive(Debug, Default)]
pub struct Verifier {}
