//! Rules and their conditions: one `RuleSpec` → one [`Rule`], CEL compiled, errors collected
//! with the position of the offending key.

use std::path::Path;
use std::sync::Arc;

use serde_saphyr::Spanned;

use super::super::error::{PolicyError, PolicyErrorKind as Kind};
use super::super::expr::Expr;
use super::super::model::{ConditionsSpec, RuleSpec};
use super::super::pattern::HostPattern;
use super::super::set::{Conditions, Rule, RuleKind};
use super::{Compiler, pos};

impl Compiler {
    pub(super) fn rule(
        &mut self,
        file: &Arc<Path>,
        text: &str,
        spec: Spanned<RuleSpec>,
        route: Option<&Arc<str>>,
    ) -> Option<Rule> {
        let at = pos(file, &spec);
        let spec = spec.value;
        let before = self.errors.len();
        let name = spec.name.value.trim().to_owned();
        if name.is_empty() {
            self.err(
                Kind::Invalid,
                &pos(file, &spec.name),
                "rule name is empty",
                "name every rule: it shows in logs and `explain`",
            );
        }
        let kinds = usize::from(spec.guest.is_some())
            + usize::from(spec.allow.is_some())
            + usize::from(spec.deny.is_some());
        if kinds != 1 {
            self.err(
                Kind::Invalid,
                &at,
                format!("rule {name:?} must have exactly one of `guest`, `allow`, `deny` (found {kinds})"),
                "write `guest: true`, `allow: {..conditions..}` or `deny: {..conditions..}`",
            );
            return None;
        }
        let (kind, conditions) = if let Some(g) = &spec.guest {
            if !g.value {
                self.err(
                    Kind::Invalid,
                    &pos(file, g),
                    "`guest: false` means nothing",
                    "remove the rule, or use `allow:`",
                );
            }
            (RuleKind::Guest, Conditions::default())
        } else if let Some(a) = &spec.allow {
            (RuleKind::Allow, self.conditions(file, text, a))
        } else if let Some(d) = &spec.deny {
            (RuleKind::Deny, self.conditions(file, text, d))
        } else {
            return None;
        };
        if kind == RuleKind::Deny && !spec.grants.is_empty() {
            self.err(
                Kind::Invalid,
                &pos(file, &spec.grants[0]),
                "a deny rule cannot have `grants`",
                "move `grants` to an allow rule",
            );
        }
        let grants: Vec<String> = spec
            .grants
            .iter()
            .map(|g| g.value.trim().to_owned())
            .collect();
        if let Some((g, _)) = spec.grants.iter().zip(&grants).find(|(_, s)| s.is_empty()) {
            self.err(
                Kind::Invalid,
                &pos(file, g),
                "empty grant",
                "grants are names such as `read`",
            );
        }
        let scope = match &spec.matcher {
            Some(m) => {
                let s = self.scope(file, m);
                if route.is_some() && s.as_ref().is_some_and(|s| s.host != HostPattern::Any) {
                    self.err(
                        Kind::Invalid,
                        &pos(file, m),
                        "a route's rule cannot match on `host`",
                        "put the host in the route's `match`",
                    );
                }
                s
            }
            None => None,
        };
        if self.errors.len() != before {
            return None;
        }
        let needs_user = conditions.needs_user();
        Some(Rule {
            name: name.into(),
            kind,
            scope,
            conditions,
            grants: grants.into(),
            pos: at,
            needs_user,
        })
    }

    fn conditions(
        &mut self,
        file: &Arc<Path>,
        text: &str,
        spec: &Spanned<ConditionsSpec>,
    ) -> Conditions {
        let c = &spec.value;
        let mut out = Conditions::default();
        for d in &c.domains {
            if let Err(e) = out.domains.insert(&d.value) {
                self.err(
                    Kind::Invalid,
                    &pos(file, d),
                    e,
                    "domains match the verified email's domain, e.g. `example.com`",
                );
            }
        }
        for e in &c.emails {
            let v = e.value.trim().to_ascii_lowercase();
            if v.matches('@').count() != 1 || v.starts_with('@') || v.ends_with('@') {
                self.err(
                    Kind::Invalid,
                    &pos(file, e),
                    format!("invalid email {:?}", e.value),
                    "write a full address, e.g. `ana@example.com`",
                );
            } else {
                out.emails.insert(v);
            }
        }
        for (list, target) in [
            (&c.groups, &mut out.groups),
            (&c.groups_all, &mut out.groups_all),
            (&c.providers, &mut out.providers),
        ] {
            for g in list {
                let v = g.value.trim();
                if v.is_empty() {
                    self.errors.push(PolicyError::new(
                        Kind::Invalid,
                        &pos(file, g),
                        "empty name in list",
                        "remove the empty entry",
                    ));
                } else {
                    target.push(v.to_owned());
                }
            }
        }
        if let Some(w) = &c.when {
            out.when = self.expr(file, text, w, true);
        }
        out
    }

    fn expr(
        &mut self,
        file: &Arc<Path>,
        text: &str,
        source: &Spanned<String>,
        allow_user: bool,
    ) -> Option<Expr> {
        match Expr::compile(&source.value, allow_user, &mut self.literals) {
            Ok(e) => Some(e),
            Err(errors) => {
                let base = pos(file, source);
                let quoted = text
                    .lines()
                    .nth(base.line.saturating_sub(1) as usize)
                    .and_then(|l| l.chars().nth(base.column.saturating_sub(1) as usize))
                    .is_some_and(|c| c == '"' || c == '\'');
                for e in errors {
                    let mut at = base.clone();
                    if e.line == 1 && e.column > 0 {
                        at.column = base.column + e.column - 1 + u64::from(quoted);
                    }
                    let message = format!("in `when: {}`: {}", source.value.trim(), e.message);
                    self.err(Kind::Cel, &at, message, e.hint);
                }
                None
            }
        }
    }
}
