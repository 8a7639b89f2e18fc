//! CEL `when:` expressions: compiled once at load against a fixed environment, checked for
//! unknown variables, fields and functions, and evaluated per request against an activation
//! that holds only the variables and fields the expression reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr, LiteralValue};
use cel::common::types::CelBool;
use cel::{Context, Env, Program, Value};

use super::functions;
use super::plan::{self, Constants};

/// `user` fields CEL may read.
pub(crate) const USER_FIELDS: [&str; 8] = [
    "sub",
    "email",
    "email_verified",
    "domain",
    "name",
    "groups",
    "provider",
    "claims",
];
/// `request` fields CEL may read.
pub(crate) const REQUEST_FIELDS: [&str; 8] = [
    "method",
    "scheme",
    "host",
    "path",
    "query",
    "headers",
    "websocket",
    "ip",
];
const ALL: u16 = 0xFF;

/// What an expression reads: bit `i` of `user` is `USER_FIELDS[i]`, likewise for `request`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    pub user: u16,
    pub request: u16,
    pub now: bool,
}

/// A compiled `when:` expression.
#[derive(Debug)]
pub(crate) struct Expr {
    /// Unique in the process: names the expression in memo keys.
    pub id: u64,
    pub source: Arc<str>,
    /// What the interpreter runs: the parsed expression after [`plan`].
    plan: IdedExpr,
    pub needs: Needs,
}

/// A problem found in an expression: what, and where inside the expression (1-based column
/// within the expression text, 0 when unknown).
#[derive(Debug)]
pub(crate) struct ExprError {
    pub message: String,
    pub hint: &'static str,
    pub line: u64,
    pub column: u64,
}

/// Literals found in every expression of a set, compiled or evaluated once: regexes, and the
/// constants the plans refer to.
#[derive(Debug, Default)]
pub(crate) struct Literals {
    pub regexes: HashMap<String, regex::Regex>,
    pub constants: Constants,
}

/// The shared CEL environment: the standard library plus the `strings` extension. Functions
/// that need state (the regex cache) live on each set's root [`Context`].
pub(crate) fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Both only add overloads with fresh ids; they cannot fail on a fresh stdlib env, and
        // a failure would show as "unknown function" at load, never as a wrong decision.
        let _ = env.add_extension(cel::extensions::strings);
        let _ = functions::declare(&mut env);
        Arc::new(env)
    })
}

/// Whether `name` is a function a program may call.
fn known_function(name: &str) -> bool {
    static KNOWN: OnceLock<parking_lot::Mutex<HashMap<String, bool>>> = OnceLock::new();
    if functions::NAMES.contains(&name) || is_operator(name) {
        return true;
    }
    let cache = KNOWN.get_or_init(Default::default);
    if let Some(&known) = cache.lock().get(name) {
        return known;
    }
    // `add_function` refuses a name the environment declares overloads for: exactly the set
    // of functions the environment knows.
    let mut probe = Context::with_env(env().clone());
    let known = probe.add_function(name, || true).is_err();
    cache.lock().insert(name.to_owned(), known);
    known
}

fn is_operator(name: &str) -> bool {
    use cel::common::ast::operators as op;
    [
        op::CONDITIONAL,
        op::LOGICAL_AND,
        op::LOGICAL_OR,
        op::LOGICAL_NOT,
        op::SUBSTRACT,
        op::ADD,
        op::MULTIPLY,
        op::DIVIDE,
        op::MODULO,
        op::EQUALS,
        op::NOT_EQUALS,
        op::GREATER_EQUALS,
        op::LESS_EQUALS,
        op::GREATER,
        op::LESS,
        op::NEGATE,
        op::INDEX,
        op::OPT_INDEX,
        op::OPT_SELECT,
        op::NOT_STRICTLY_FALSE,
        op::IN,
    ]
    .contains(&name)
}

impl Expr {
    /// Parses and checks `source`. `allow_user` is false for guest rules, which decide before
    /// anyone logged in. Regex and CIDR literals are compiled into `literals`.
    pub(crate) fn compile(
        source: &str,
        allow_user: bool,
        literals: &mut Literals,
    ) -> Result<Expr, Vec<ExprError>> {
        let program = env().compile(source).map_err(|errs| {
            errs.errors
                .iter()
                .map(|e| ExprError {
                    message: format!("CEL syntax error: {}", e.msg),
                    hint: "check the expression's syntax: strings in quotes, `&&`/`||`, `in [..]`",
                    line: u64::try_from(e.pos.0).unwrap_or(0),
                    column: u64::try_from(e.pos.1).map(|c| c + 1).unwrap_or(0),
                })
                .collect::<Vec<_>>()
        })?;
        let mut walk = Walk {
            source,
            program: &program,
            scope: Vec::new(),
            needs: Needs::default(),
            errors: Vec::new(),
            literals,
            allow_user,
        };
        walk.expr(program.expression());
        let Walk { needs, errors, .. } = walk;
        if !errors.is_empty() {
            return Err(errors);
        }
        let plan = plan::plan(program.expression(), &mut literals.constants).map_err(|e| {
            let (line, column) = position(source, &program, e.id);
            vec![ExprError {
                message: format!("this constant does not evaluate: {}", e.message),
                hint: "timestamps are RFC 3339 (\"2026-01-01T00:00:00Z\"), durations e.g. \"90s\", \"1h30m\"",
                line,
                column,
            }]
        })?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(Expr {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            source: source.into(),
            plan,
            needs,
        })
    }

    pub(crate) fn execute(&self, context: &Context<'_, '_>) -> Result<bool, String> {
        match Value::resolve_val(&self.plan, context) {
            Ok(value) => match value.downcast_ref::<CelBool>() {
                Some(b) => Ok(*b.inner()),
                None => Err(format!(
                    "expression returned {}, not a bool",
                    value.get_type().name()
                )),
            },
            Err(e) => Err(e.to_string()),
        }
    }
}

/// 1-based line and column of node `id` within the expression text.
fn position(source: &str, program: &Program, id: u64) -> (u64, u64) {
    let Some((start, _)) = program.source_info().offset_for(id) else {
        return (0, 0);
    };
    let before: String = source.chars().take(start as usize).collect();
    let line = before.matches('\n').count() as u64 + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, column)
}

struct Walk<'a> {
    source: &'a str,
    program: &'a Program,
    scope: Vec<String>,
    needs: Needs,
    errors: Vec<ExprError>,
    literals: &'a mut Literals,
    allow_user: bool,
}

impl Walk<'_> {
    fn error(&mut self, id: u64, message: String, hint: &'static str) {
        let (line, column) = self.position(id);
        self.errors.push(ExprError {
            message,
            hint,
            line,
            column,
        });
    }

    fn position(&self, id: u64) -> (u64, u64) {
        position(self.source, self.program, id)
    }

    fn variable(&mut self, id: u64, name: &str, field: Option<&str>) {
        if self.scope.iter().any(|s| s == name) {
            return;
        }
        match name {
            "now" => self.needs.now = true,
            "user" if !self.allow_user => self.error(
                id,
                "a guest rule cannot look at `user`: guests are not logged in".into(),
                "use an `allow` rule for conditions on the user",
            ),
            "user" | "request" => {
                let fields: &[&str] = if name == "user" {
                    &USER_FIELDS
                } else {
                    &REQUEST_FIELDS
                };
                let bits = match field {
                    None => ALL,
                    Some(f) => match fields.iter().position(|k| *k == f) {
                        Some(i) => 1 << i,
                        None => {
                            self.error(
                                id,
                                format!("unknown field `{name}.{f}`"),
                                if name == "user" {
                                    "`user` has: sub, email, email_verified, domain, name, groups, provider, claims"
                                } else {
                                    "`request` has: method, scheme, host, path, query, headers, websocket, ip"
                                },
                            );
                            0
                        }
                    },
                };
                if name == "user" {
                    self.needs.user |= bits;
                } else {
                    self.needs.request |= bits;
                }
            }
            other => self.error(
                id,
                format!("unknown variable `{other}`"),
                "CEL sees `user`, `request` and `now`",
            ),
        }
    }

    fn expr(&mut self, e: &IdedExpr) {
        match &e.expr {
            Ast::Ident(name) => self.variable(e.id, name, None),
            Ast::Select(select) => match &select.operand.expr {
                Ast::Ident(name) if !self.scope.iter().any(|s| s == name) => {
                    self.variable(select.operand.id, name, Some(&select.field));
                }
                _ => self.expr(&select.operand),
            },
            Ast::Call(call) => {
                if !known_function(&call.func_name) {
                    self.error(
                        e.id,
                        format!("unknown function `{}`", call.func_name),
                        "see docs/policy.md for the functions CEL offers here",
                    );
                }
                self.literal_argument(call);
                if let Some(target) = &call.target {
                    self.expr(target);
                }
                for arg in &call.args {
                    self.expr(arg);
                }
            }
            Ast::Comprehension(c) => {
                self.expr(&c.iter_range);
                self.expr(&c.accu_init);
                let pushed = 2 + usize::from(c.iter_var2.is_some());
                self.scope.push(c.iter_var.clone());
                self.scope.push(c.accu_var.clone());
                if let Some(v) = &c.iter_var2 {
                    self.scope.push(v.clone());
                }
                self.expr(&c.loop_cond);
                self.expr(&c.loop_step);
                self.expr(&c.result);
                self.scope.truncate(self.scope.len() - pushed);
            }
            Ast::List(list) => list.elements.iter().for_each(|x| self.expr(x)),
            Ast::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.expr(&m.key);
                        self.expr(&m.value);
                    }
                }
            }
            Ast::Struct(s) => self.error(
                e.id,
                format!(
                    "message construction `{}{{..}}` is not supported",
                    s.type_name
                ),
                "use maps and lists",
            ),
            Ast::Literal(_) | Ast::Unspecified => {}
        }
    }

    /// `matches` and `inCidr` with a literal pattern: compile it now, so a bad one fails the
    /// load and a good one is never compiled again.
    fn literal_argument(&mut self, call: &cel::common::ast::CallExpr) {
        let pattern = match (&call.target, call.args.as_slice()) {
            (Some(_), [p]) | (None, [_, p]) => p,
            _ => return,
        };
        let Ast::Literal(LiteralValue::String(text)) = &pattern.expr else {
            return;
        };
        let text = text.inner().to_owned();
        match call.func_name.as_str() {
            "matches" if !self.literals.regexes.contains_key(&text) => {
                match functions::build_regex(&text) {
                    Ok(re) => {
                        self.literals.regexes.insert(text, re);
                    }
                    Err(e) => self.error(
                        pattern.id,
                        format!("invalid regex {text:?}: {e}"),
                        "RE2 syntax: no look-around or back-references",
                    ),
                }
            }
            "inCidr" => match text.parse::<ipnet::IpNet>() {
                Ok(_) => {}
                Err(_) => self.error(
                    pattern.id,
                    format!("invalid CIDR {text:?}"),
                    "write e.g. \"10.0.0.0/8\" or \"2001:db8::/32\"",
                ),
            },
            _ => {}
        }
    }
}
