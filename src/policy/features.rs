//! What the gateway around a policy set offers. A route that asks for something the gateway
//! does not have is a load error, so a policy never promises what the gateway cannot do.

/// Gateway features a route may ask for, from gateway.yaml.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `basic_auth:` is configured, so a route may set `basic_header: true`.
    pub basic_auth: bool,
}

impl Features {
    /// Every feature: for `portcullis check | test | explain`, which read no gateway.yaml.
    pub const ALL: Features = Features { basic_auth: true };
}
