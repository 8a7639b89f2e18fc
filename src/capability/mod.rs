//! Biscuit capability tokens: minted by the gateway for allowed requests, verified offline
//! downstream with a public key ([`verify`]).

pub mod verify;

/// `capability:` in gateway.yaml.
#[cfg(feature = "gateway")]
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityConfig {}
