//! PLACEHOLDER until sessions land: sealed session cookies.
use serde::Deserialize;

/// `session:` in gateway.yaml.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {}
