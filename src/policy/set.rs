//! The compiled, immutable policy set and its parts. Built by `compile`, read by `decide`.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use cel::Context;

use super::error::Pos;
use super::expr::Expr;
use super::index::RouteIndex;
use super::memo::WhenMemo;
use super::pattern::{DomainSet, HostPattern, PathGlob};
use super::{RequestInfo, Route};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleKind {
    Guest,
    Allow,
    Deny,
}

impl RuleKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RuleKind::Guest => "guest",
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
        }
    }
}

/// `match:` compiled: host, path globs (any of) and methods (any of); absent parts match all.
#[derive(Debug)]
pub(crate) struct Scope {
    pub host: HostPattern,
    pub paths: Vec<PathGlob>,
    pub methods: Option<Vec<http::Method>>,
}

impl Scope {
    pub(crate) fn method_ok(&self, method: &http::Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    pub(crate) fn matches(&self, req: &RequestInfo) -> bool {
        self.host.matches(&req.host)
            && self.method_ok(&req.method)
            && (self.paths.is_empty() || self.paths.iter().any(|g| g.matches(&req.path)))
    }
}

/// The conditions of an `allow` or `deny` rule, ANDed.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub domains: DomainSet,
    /// Lower-cased.
    pub emails: HashSet<String>,
    pub groups: Vec<String>,
    pub groups_all: Vec<String>,
    pub providers: Vec<String>,
    pub when: Option<Expr>,
}

impl Conditions {
    /// Whether anything here looks at the user.
    pub(crate) fn needs_user(&self) -> bool {
        !self.domains.is_empty()
            || !self.emails.is_empty()
            || !self.groups.is_empty()
            || !self.groups_all.is_empty()
            || !self.providers.is_empty()
            || self.when.as_ref().is_some_and(|w| w.needs.user != 0)
    }
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub name: Arc<str>,
    pub kind: RuleKind,
    pub scope: Option<Scope>,
    pub conditions: Conditions,
    pub grants: Arc<[String]>,
    pub pos: Pos,
    /// For deny rules: whether the rule can only ever match a logged-in user.
    pub needs_user: bool,
}

#[derive(Debug)]
pub(crate) struct RouteEntry {
    pub route: Arc<Route>,
    pub scope: Scope,
    /// Deny rules of this route, in file order.
    pub deny: Vec<Rule>,
    /// Guest and allow rules of this route, in file order.
    pub permit: Vec<Rule>,
    pub pos: Pos,
}

/// An immutable, compiled set of policies: build it with [`PolicySet::compile`],
/// [`PolicySet::load_dir`] or [`PolicySet::embedded`], then call [`PolicySet::decide`].
pub struct PolicySet {
    pub(crate) routes: Vec<RouteEntry>,
    pub(crate) global_deny: Vec<Rule>,
    pub(crate) global_permit: Vec<Rule>,
    pub(crate) index: RouteIndex,
    pub(crate) cel: Context<'static, 'static>,
    /// `when:` results of this set, by the values they read.
    pub(crate) when_memo: WhenMemo,
    pub(crate) files: Vec<PathBuf>,
}

impl PolicySet {
    /// The routes, in the order they were defined.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter().map(|r| &r.route)
    }

    /// The files this set was compiled from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Number of rules, global and per route.
    pub fn rule_count(&self) -> usize {
        self.global_deny.len()
            + self.global_permit.len()
            + self
                .routes
                .iter()
                .map(|r| r.deny.len() + r.permit.len())
                .sum::<usize>()
    }
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("files", &self.files)
            .field("routes", &self.routes.len())
            .field("rules", &self.rule_count())
            .finish()
    }
}
