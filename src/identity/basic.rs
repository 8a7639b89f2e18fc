//! PLACEHOLDER until basic auth lands: credentials file with argon2 hashes, login form.
use serde::Deserialize;

/// `basic_auth:` in gateway.yaml.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {}
