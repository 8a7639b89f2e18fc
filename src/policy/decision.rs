//! What a decision says and why: the same value feeds the log line, the metric label, the
//! error page and `portcullis explain`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::Route;

/// Allow, ask the user to log in, or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Login,
    Deny,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Login => "login",
            Outcome::Deny => "deny",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one decision and why.
#[derive(Clone, Debug)]
pub struct Decision {
    pub outcome: Outcome,
    /// The route the request matched; `None` when no route matched.
    pub route: Option<Arc<Route>>,
    /// The rule that decided; `None` for the default deny and for "no route".
    pub rule: Option<Arc<str>>,
    pub reason: Cow<'static, str>,
    /// Rights for the capability token (from the allow rule that matched).
    pub grants: Arc<[String]>,
}

impl Decision {
    pub(crate) fn new(
        outcome: Outcome,
        route: Option<&Arc<Route>>,
        rule: Option<&Arc<str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Decision {
            outcome,
            route: route.cloned(),
            rule: rule.cloned(),
            reason: reason.into(),
            grants: no_grants(),
        }
    }
}

pub(crate) fn no_grants() -> Arc<[String]> {
    static EMPTY: std::sync::OnceLock<Arc<[String]>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from(Vec::new())).clone()
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outcome)?;
        if let Some(route) = &self.route {
            write!(f, " route={}", route.name)?;
        }
        if let Some(rule) = &self.rule {
            write!(f, " rule={rule:?}")?;
        }
        write!(f, " reason={:?}", self.reason)?;
        if !self.grants.is_empty() {
            write!(f, " grants={}", self.grants.join(","))?;
        }
        Ok(())
    }
}

/// How one rule fared in [`PolicySet::explain`](super::PolicySet::explain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepResult {
    Matched,
    NotMatched,
    Skipped,
    Error,
}

/// One rule tried while deciding.
#[derive(Clone, Debug)]
pub struct TraceStep {
    /// `global` or the route's name.
    pub scope: Arc<str>,
    pub rule: Arc<str>,
    /// `guest`, `allow` or `deny`.
    pub kind: &'static str,
    pub result: StepResult,
    pub detail: String,
}

/// A decision and the trace of every rule tried on the way to it.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub decision: Decision,
    pub steps: Vec<TraceStep>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "decision: {}", self.decision)?;
        for (i, s) in self.steps.iter().enumerate() {
            let mark = match s.result {
                StepResult::Matched => "MATCH",
                StepResult::NotMatched => "no",
                StepResult::Skipped => "skip",
                StepResult::Error => "ERROR",
            };
            writeln!(
                f,
                "  {:>2}. [{}] {} {:?} ({}): {}",
                i + 1,
                s.scope,
                s.kind,
                s.rule,
                mark,
                s.detail
            )?;
        }
        Ok(())
    }
}
