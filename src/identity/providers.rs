//! PLACEHOLDER until OIDC lands: provider presets.
use serde::Deserialize;

/// One entry of `providers:` in gateway.yaml.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
}
