//! The serde shape of a policy file, exactly as written: positions kept, nothing validated yet.
//! `compile` turns these into types that cannot hold an invalid state.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// One `*.yaml` file: routes and global rules, both optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyFile {
    #[serde(default)]
    pub routes: Vec<Spanned<RouteSpec>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    pub name: Spanned<String>,
    #[serde(rename = "match", default)]
    pub matcher: Option<Spanned<MatchSpec>>,
    pub upstream: Spanned<String>,
    #[serde(default)]
    pub websocket: bool,
    #[serde(default)]
    pub allowed_origins: Vec<Spanned<String>>,
    /// `Authorization: Basic` on this route: absent follows `basic_auth.allow_header`.
    #[serde(default)]
    pub basic_header: Option<Spanned<bool>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleSpec>>,
}

/// Which requests a route or rule applies to. Every part is optional; parts are ANDed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchSpec {
    pub host: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub name: Spanned<String>,
    #[serde(rename = "match", default)]
    pub matcher: Option<Spanned<MatchSpec>>,
    pub guest: Option<Spanned<bool>>,
    pub allow: Option<Spanned<ConditionsSpec>>,
    pub deny: Option<Spanned<ConditionsSpec>>,
    #[serde(default)]
    pub grants: Vec<Spanned<String>>,
}

/// The conditions of an `allow` or `deny` rule, all optional and ANDed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionsSpec {
    #[serde(default)]
    pub domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub emails: Vec<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub groups_all: Vec<Spanned<String>>,
    #[serde(default)]
    pub providers: Vec<Spanned<String>>,
    pub when: Option<Spanned<String>>,
}
