//! Biscuit capability tokens: minted by the gateway for allowed requests, verified offline
//! downstream with a public key ([`verify`]).
//!
//! Gateway side (feature `gateway`), in request order: a `KeyStore` holds the `KeyRing` loaded
//! from the key directory (and swaps it when the directory changes); a `Minter` turns an
//! identity and the matched rule's grants into a header value, cached per (session, route,
//! policy generation). `GET /.well-known/portcullis/keys.json` serves
//! `KeyStore::public_keys_json`. `cli` holds the `keygen`, `keys public` and `token`
//! subcommands.

#![doc = ""]
#![doc = "The token schema and operations guide (`docs/capabilities.md`):"]
#![doc = ""]
#![doc = include_str!("../../docs/capabilities.md")]

pub mod verify;

#[cfg(feature = "gateway")]
mod cache;
#[cfg(feature = "gateway")]
pub mod cli;
#[cfg(feature = "gateway")]
mod keyring;
#[cfg(feature = "gateway")]
mod mint;
#[cfg(feature = "gateway")]
mod store;

#[cfg(feature = "gateway")]
pub use keyring::{KeyError, KeyRing, generate_key_file};
#[cfg(feature = "gateway")]
pub use mint::{MintError, Minter};
#[cfg(feature = "gateway")]
pub use store::KeyStore;

/// `capability:` in gateway.yaml.
///
/// ```yaml
/// capability:
///   keys_dir: /etc/portcullis/keys   # omit: an ephemeral key, lost on restart
///   header: X-Auth-Capability
///   ttl: 300                         # seconds
///   cache_capacity: 10000
/// ```
#[cfg(feature = "gateway")]
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapabilityConfig {
    /// Directory of Ed25519 private keys (`key-<kid>.pem`, written by `portcullis keygen`).
    /// `None`: one key generated in memory at start (logged as a warning): tokens stop
    /// verifying at every restart and each gateway replica signs with its own key.
    pub keys_dir: Option<std::path::PathBuf>,
    /// Request header the token travels in to the upstream.
    pub header: String,
    /// Token lifetime, a whole number of seconds in YAML. Cached tokens are re-minted once 80%
    /// of it has passed.
    #[serde(deserialize_with = "seconds")]
    pub ttl: std::time::Duration,
    /// Most cached tokens kept (sessions × routes); the oldest are evicted past it.
    pub cache_capacity: usize,
}

#[cfg(feature = "gateway")]
impl Default for CapabilityConfig {
    fn default() -> Self {
        Self {
            keys_dir: None,
            header: "X-Auth-Capability".to_owned(),
            ttl: std::time::Duration::from_secs(300),
            cache_capacity: 10_000,
        }
    }
}

#[cfg(feature = "gateway")]
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let secs = <u64 as serde::Deserialize>::deserialize(d)?;
    Ok(std::time::Duration::from_secs(secs))
}
