//! [`PolicySet::decide`]: one request, one decision, fail closed.
//!
//! 1. Find the route (see `index`); none → Deny.
//! 2. A WebSocket upgrade on a route without `websocket: true` → Deny.
//! 3. Deny rules, global then the route's, in file order: the first that matches → Deny.
//! 4. Guest and allow rules, global then the route's, in file order: the first that matches →
//!    Allow with its grants.
//! 5. Otherwise Deny — or Login when the request is anonymous and some allow rule could admit
//!    it once the user logs in.
//!
//! Any error while evaluating a rule (a CEL runtime error, a non-bool result) is a Deny naming
//! the rule.

use std::sync::Arc;

use super::activation::{Activation, Vars};
use super::decision::{Decision, Explanation, Outcome, StepResult, TraceStep};
use super::set::{Conditions, PolicySet, Rule, RuleKind};
use super::{RequestInfo, Route};
use crate::identity::Identity;

/// Collects trace steps for `explain`; a no-op for `decide`.
struct Trace<'t> {
    steps: Option<&'t mut Vec<TraceStep>>,
    scope: &'t str,
}

impl Trace<'_> {
    fn note(&mut self, rule: &Rule, result: StepResult, detail: impl FnOnce() -> String) {
        if let Some(steps) = self.steps.as_deref_mut() {
            steps.push(TraceStep {
                scope: self.scope.into(),
                rule: rule.name.clone(),
                kind: rule.kind.as_str(),
                result,
                detail: detail(),
            });
        }
    }
}

/// How one rule fared.
enum Eval {
    Match,
    /// Names the condition that failed.
    NoMatch(&'static str),
    Error(String),
}

impl PolicySet {
    /// Decides one request. `user` is `None` for an anonymous request. Never panics, parses
    /// nothing; any evaluation error is a Deny.
    pub fn decide(&self, user: Option<&Identity>, req: &RequestInfo) -> Decision {
        self.run(user, req, None)
    }

    /// The same decision as [`decide`](Self::decide), with the trace of every rule tried.
    pub fn explain(&self, user: Option<&Identity>, req: &RequestInfo) -> Explanation {
        let mut steps = Vec::new();
        let decision = self.run(user, req, Some(&mut steps));
        Explanation { decision, steps }
    }

    fn run(
        &self,
        user: Option<&Identity>,
        req: &RequestInfo,
        steps: Option<&mut Vec<TraceStep>>,
    ) -> Decision {
        let Some(index) = self.index.lookup(&self.routes, req) else {
            return Decision::new(
                Outcome::Deny,
                None,
                None,
                "no route matches this host and path",
            );
        };
        let Some(entry) = self.routes.get(index) else {
            return Decision::new(Outcome::Deny, None, None, "route index out of date");
        };
        let route = &entry.route;
        if req.websocket && !route.websocket {
            return Decision::new(
                Outcome::Deny,
                Some(route),
                None,
                "route does not allow WebSocket upgrades",
            );
        }
        let mut trace = Trace {
            steps,
            scope: "global",
        };
        let vars = Vars::new(user, req);
        let mut cel = Activation::new(&self.cel, &vars, &self.when_memo);
        let mut facts = UserFacts::new(user);

        for (scope, rules) in [(None, &self.global_deny), (Some(&route.name), &entry.deny)] {
            if let Some(name) = scope {
                trace.scope = name;
            }
            for rule in rules.iter() {
                if !scope_matches(rule, req) {
                    trace.note(rule, StepResult::NotMatched, || {
                        "request outside the rule's `match`".into()
                    });
                    continue;
                }
                if user.is_none() && rule.needs_user {
                    trace.note(rule, StepResult::Skipped, || {
                        "anonymous request; rule looks at the user".into()
                    });
                    continue;
                }
                match conditions(&rule.conditions, &mut facts, &mut cel) {
                    Eval::Match => {
                        trace.note(rule, StepResult::Matched, || "all conditions hold".into());
                        return Decision::new(
                            Outcome::Deny,
                            Some(route),
                            Some(&rule.name),
                            "denied by rule",
                        );
                    }
                    Eval::NoMatch(why) => trace.note(rule, StepResult::NotMatched, || {
                        format!("`{why}` does not hold")
                    }),
                    Eval::Error(e) => return evaluation_failed(&mut trace, route, rule, e),
                }
            }
        }

        let mut login: Option<&Rule> = None;
        trace.scope = "global";
        for (scope, rules) in [
            (None, &self.global_permit),
            (Some(&route.name), &entry.permit),
        ] {
            if let Some(name) = scope {
                trace.scope = name;
            }
            for rule in rules.iter() {
                if !scope_matches(rule, req) {
                    trace.note(rule, StepResult::NotMatched, || {
                        "request outside the rule's `match`".into()
                    });
                    continue;
                }
                if rule.kind == RuleKind::Guest {
                    trace.note(rule, StepResult::Matched, || "guest access".into());
                    return allow(route, rule, "guest access");
                }
                if user.is_none() {
                    // Could this rule admit the request after login? Only a `when` that looks at
                    // the request alone can say no before then.
                    match request_only_when(&rule.conditions, &mut cel) {
                        Eval::Match => {
                            trace.note(rule, StepResult::Skipped, || {
                                "anonymous; would need a login".into()
                            });
                            login = login.or(Some(rule));
                        }
                        Eval::NoMatch(why) => trace.note(rule, StepResult::NotMatched, || {
                            format!("`{why}` does not hold")
                        }),
                        Eval::Error(e) => return evaluation_failed(&mut trace, route, rule, e),
                    }
                    continue;
                }
                match conditions(&rule.conditions, &mut facts, &mut cel) {
                    Eval::Match => {
                        trace.note(rule, StepResult::Matched, || "all conditions hold".into());
                        return allow(route, rule, "allowed by rule");
                    }
                    Eval::NoMatch(why) => trace.note(rule, StepResult::NotMatched, || {
                        format!("`{why}` does not hold")
                    }),
                    Eval::Error(e) => return evaluation_failed(&mut trace, route, rule, e),
                }
            }
        }
        match login {
            Some(rule) => Decision::new(
                Outcome::Login,
                Some(route),
                Some(&rule.name),
                "login required",
            ),
            None => Decision::new(
                Outcome::Deny,
                Some(route),
                None,
                "no rule allows this request",
            ),
        }
    }
}

fn allow(route: &Arc<Route>, rule: &Rule, reason: &'static str) -> Decision {
    Decision {
        outcome: Outcome::Allow,
        route: Some(route.clone()),
        rule: Some(rule.name.clone()),
        reason: reason.into(),
        grants: rule.grants.clone(),
    }
}

fn scope_matches(rule: &Rule, req: &RequestInfo) -> bool {
    rule.scope.as_ref().is_none_or(|s| s.matches(req))
}

fn when(c: &Conditions, cel: &mut Activation<'_>) -> Eval {
    match &c.when {
        None => Eval::Match,
        Some(expr) => match cel.eval(expr) {
            Ok(true) => Eval::Match,
            Ok(false) => Eval::NoMatch("when"),
            Err(e) => Eval::Error(format!("`when: {}`: {e}", expr.source)),
        },
    }
}

fn request_only_when(c: &Conditions, cel: &mut Activation<'_>) -> Eval {
    match &c.when {
        Some(expr) if expr.needs.user == 0 => when(c, cel),
        _ => Eval::Match,
    }
}

/// Facts about the user computed at most once per decision, on first use.
pub(crate) struct UserFacts<'a> {
    user: Option<&'a Identity>,
    /// `Some(None)`: computed, no verified email.
    verified_domain: Option<Option<String>>,
    verified_email: Option<Option<String>>,
}

impl<'a> UserFacts<'a> {
    pub(crate) fn new(user: Option<&'a Identity>) -> Self {
        UserFacts {
            user,
            verified_domain: None,
            verified_email: None,
        }
    }

    fn domain(&mut self) -> Option<&str> {
        let user = self.user;
        self.verified_domain
            .get_or_insert_with(|| user.filter(|u| u.email_verified).and_then(Identity::domain))
            .as_deref()
    }

    fn email(&mut self) -> Option<&str> {
        let user = self.user;
        self.verified_email
            .get_or_insert_with(|| {
                user.filter(|u| u.email_verified)
                    .and_then(|u| u.email.as_deref())
                    .map(str::to_ascii_lowercase)
            })
            .as_deref()
    }
}

/// Fail closed: a rule that cannot be evaluated denies, naming itself and the error.
fn evaluation_failed(
    trace: &mut Trace<'_>,
    route: &Arc<Route>,
    rule: &Rule,
    error: String,
) -> Decision {
    trace.note(rule, StepResult::Error, || error.clone());
    Decision::new(
        Outcome::Deny,
        Some(route),
        Some(&rule.name),
        format!("error evaluating rule: {error}"),
    )
}

/// The rule's conditions against a (possibly absent) user; cheap checks first, CEL last.
fn conditions(c: &Conditions, facts: &mut UserFacts<'_>, cel: &mut Activation<'_>) -> Eval {
    if let Some(user) = facts.user {
        if !c.groups.is_empty() && !c.groups.iter().any(|g| user.groups.contains(g)) {
            return Eval::NoMatch("groups");
        }
        if !c.groups_all.iter().all(|g| user.groups.contains(g)) {
            return Eval::NoMatch("groups_all");
        }
        if !c.providers.is_empty() && !c.providers.contains(&user.provider) {
            return Eval::NoMatch("providers");
        }
        if !c.domains.is_empty() && !facts.domain().is_some_and(|d| c.domains.contains(d)) {
            return Eval::NoMatch("domains");
        }
        if !c.emails.is_empty() && !facts.email().is_some_and(|e| c.emails.contains(e)) {
            return Eval::NoMatch("emails");
        }
    } else if c.needs_user() {
        return Eval::NoMatch("user");
    }
    when(c, cel)
}
