//! What the interpreter runs for a `when:`: the parsed expression, rewritten once at load so
//! each evaluation does less. The `cel` crate still evaluates every node; the rewrites only
//! hand it forms it answers faster, with the same results:
//!
//! - `user.email`, `request.headers`: one field of a variable becomes one identifier with the
//!   dotted name, which [`Vars`](super::activation::Vars) answers directly. The interpreter
//!   would otherwise collect the name's segments, join them and try each prefix (two
//!   allocations and several lookups per reference).
//! - Constant lists and maps (`["GET", "POST"]`) and `timestamp("…")` / `duration("…")` of a
//!   literal are evaluated once and bound on the set's root context under a name no
//!   expression can spell (`@c0`, …), instead of being rebuilt or re-parsed per request. A
//!   literal that does not parse is a load error, not a deny at request time.

use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr};
use cel::{Context, Value};

use super::expr::env;

/// Values the plans of one policy set refer to by name, bound on its root context.
#[derive(Debug, Default)]
pub(crate) struct Constants {
    pub values: Vec<(String, Value)>,
}

impl Constants {
    fn bind(&mut self, value: Value) -> String {
        let name = format!("@c{}", self.values.len());
        self.values.push((name.clone(), value));
        name
    }

    /// Adds every constant to the set's root context.
    pub(crate) fn install(&self, root: &mut Context<'static, 'static>) {
        for (name, value) in &self.values {
            root.add_variable_from_value(name.clone(), value.clone());
        }
    }
}

/// A constant sub-expression that does not evaluate: its node id and the interpreter's error.
#[derive(Debug)]
pub(crate) struct FoldError {
    pub id: u64,
    pub message: String,
}

/// The rewritten form of `expr` (see the module doc).
pub(crate) fn plan(expr: &IdedExpr, constants: &mut Constants) -> Result<IdedExpr, FoldError> {
    let mut planner = Planner {
        constants,
        scope: Vec::new(),
        evaluator: Context::with_env(env().clone()),
    };
    planner.rewrite(expr)
}

struct Planner<'a> {
    constants: &'a mut Constants,
    /// Comprehension variables in scope: they shadow `user` and `request`.
    scope: Vec<String>,
    evaluator: Context<'static, 'static>,
}

impl Planner<'_> {
    fn rewrite(&mut self, e: &IdedExpr) -> Result<IdedExpr, FoldError> {
        if is_constant(&e.expr) {
            return self.fold(e);
        }
        let expr = match &e.expr {
            Ast::Select(select) => match &select.operand.expr {
                // not a presence test (`has(user.email)`): that one asks the field's parent
                Ast::Ident(root)
                    if !select.test
                        && (root == "user" || root == "request")
                        && !self.scope.iter().any(|s| s == root) =>
                {
                    Ast::Ident(format!("{root}.{}", select.field))
                }
                _ => {
                    let mut select = select.clone();
                    select.operand = Box::new(self.rewrite(&select.operand)?);
                    Ast::Select(select)
                }
            },
            Ast::Call(call) => {
                let mut call = call.clone();
                if let Some(target) = &call.target {
                    call.target = Some(Box::new(self.rewrite(target)?));
                }
                for arg in &mut call.args {
                    *arg = self.rewrite(arg)?;
                }
                Ast::Call(call)
            }
            Ast::List(list) => {
                let mut list = list.clone();
                for element in &mut list.elements {
                    *element = self.rewrite(element)?;
                }
                Ast::List(list)
            }
            Ast::Map(map) => {
                let mut map = map.clone();
                for entry in &mut map.entries {
                    if let EntryExpr::MapEntry(m) = &mut entry.expr {
                        m.key = self.rewrite(&m.key)?;
                        m.value = self.rewrite(&m.value)?;
                    }
                }
                Ast::Map(map)
            }
            Ast::Comprehension(c) => {
                let mut c = c.clone();
                c.iter_range = self.rewrite(&c.iter_range)?;
                c.accu_init = self.rewrite(&c.accu_init)?;
                let pushed = 2 + usize::from(c.iter_var2.is_some());
                self.scope.push(c.iter_var.clone());
                self.scope.push(c.accu_var.clone());
                if let Some(v) = &c.iter_var2 {
                    self.scope.push(v.clone());
                }
                let body = (|| {
                    c.loop_cond = self.rewrite(&c.loop_cond)?;
                    c.loop_step = self.rewrite(&c.loop_step)?;
                    c.result = self.rewrite(&c.result)?;
                    Ok(())
                })();
                self.scope.truncate(self.scope.len() - pushed);
                body?;
                Ast::Comprehension(c)
            }
            other => other.clone(),
        };
        Ok(IdedExpr { id: e.id, expr })
    }

    /// Evaluates a constant sub-expression now; a bare literal stays as it is (the
    /// interpreter borrows it from the tree at no cost).
    fn fold(&mut self, e: &IdedExpr) -> Result<IdedExpr, FoldError> {
        if matches!(e.expr, Ast::Literal(_)) {
            return Ok(e.clone());
        }
        let value = self.evaluator.resolve(e).map_err(|err| FoldError {
            // point at the literal that does not parse, not at the call's parenthesis
            id: match &e.expr {
                Ast::Call(call) => call.args.first().map_or(e.id, |a| a.id),
                _ => e.id,
            },
            message: err.to_string(),
        })?;
        Ok(IdedExpr {
            id: e.id,
            expr: Ast::Ident(self.constants.bind(value)),
        })
    }
}

/// Whether `e` evaluates to the same value on every request: a literal, a list or map of
/// constants, or `timestamp`/`duration` of a string literal.
fn is_constant(e: &Ast) -> bool {
    match e {
        Ast::Literal(_) => true,
        Ast::List(list) => {
            list.optional_indices.is_empty() && list.elements.iter().all(|x| is_constant(&x.expr))
        }
        Ast::Map(map) => map.entries.iter().all(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => {
                !m.optional && is_constant(&m.key.expr) && is_constant(&m.value.expr)
            }
            EntryExpr::StructField(_) => false,
        }),
        Ast::Call(call) => {
            call.target.is_none()
                && (call.func_name == "timestamp" || call.func_name == "duration")
                && matches!(
                    call.args.as_slice(),
                    [IdedExpr {
                        expr: Ast::Literal(cel::common::ast::LiteralValue::String(_)),
                        ..
                    }]
                )
        }
        _ => false,
    }
}
