//! The per-request CEL variables (`user`, `request`, `now`), built lazily: only when a rule's
//! `when:` is evaluated, and only the fields that expressions read.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Value};

use super::RequestInfo;
use super::expr::{Expr, Needs};
use crate::identity::Identity;

pub(crate) struct Activation<'a> {
    root: &'a Context<'static, 'static>,
    scope: Option<Context<'a, 'static>>,
    built: Needs,
    user: Option<&'a Identity>,
    request: &'a RequestInfo,
}

impl<'a> Activation<'a> {
    pub(crate) fn new(
        root: &'a Context<'static, 'static>,
        user: Option<&'a Identity>,
        request: &'a RequestInfo,
    ) -> Self {
        Activation {
            root,
            scope: None,
            built: Needs::default(),
            user,
            request,
        }
    }

    pub(crate) fn eval(&mut self, expr: &Expr) -> Result<bool, String> {
        let scope = self
            .scope
            .get_or_insert_with(|| self.root.new_inner_scope());
        let missing = expr.needs;
        if !self.built.covers(missing) {
            let want = self.built.union(missing);
            if want.user != self.built.user {
                let value = match self.user {
                    Some(user) => user_value(user, want.user),
                    None => Value::Null,
                };
                scope.add_variable_from_value("user", value);
            }
            if want.request != self.built.request {
                scope.add_variable_from_value("request", request_value(self.request, want.request));
            }
            if want.now && !self.built.now {
                scope.add_variable_from_value(
                    "now",
                    Value::Timestamp(chrono::Utc::now().fixed_offset()),
                );
            }
            self.built = want;
        }
        expr.execute(scope)
    }
}

fn key(name: &str) -> Key {
    Key::String(Arc::new(name.to_owned()))
}

fn opt_str(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |s| Value::String(Arc::new(s.to_owned())))
}

fn map(entries: HashMap<Key, Value>) -> Value {
    Value::Map(Map {
        map: Arc::new(entries),
    })
}

/// `user` with the fields in `mask` (bit order of `expr::USER_FIELDS`).
pub(crate) fn user_value(user: &Identity, mask: u16) -> Value {
    let mut m = HashMap::with_capacity(mask.count_ones() as usize);
    let bit = |i: u16| mask & (1 << i) != 0;
    if bit(0) {
        m.insert(key("sub"), Value::String(Arc::new(user.subject.clone())));
    }
    if bit(1) {
        m.insert(key("email"), opt_str(user.email.as_deref()));
    }
    if bit(2) {
        m.insert(key("email_verified"), Value::Bool(user.email_verified));
    }
    if bit(3) {
        m.insert(key("domain"), opt_str(user.domain().as_deref()));
    }
    if bit(4) {
        m.insert(key("name"), opt_str(user.name.as_deref()));
    }
    if bit(5) {
        let groups: Vec<Value> = user
            .groups
            .iter()
            .map(|g| Value::String(Arc::new(g.clone())))
            .collect();
        m.insert(key("groups"), Value::List(Arc::new(groups)));
    }
    if bit(6) {
        m.insert(
            key("provider"),
            Value::String(Arc::new(user.provider.clone())),
        );
    }
    if bit(7) {
        let claims = user.claims.iter().map(|(k, v)| (key(k), json(v))).collect();
        m.insert(key("claims"), map(claims));
    }
    map(m)
}

/// `request` with the fields in `mask` (bit order of `expr::REQUEST_FIELDS`).
pub(crate) fn request_value(req: &RequestInfo, mask: u16) -> Value {
    let mut m = HashMap::with_capacity(mask.count_ones() as usize);
    let bit = |i: u16| mask & (1 << i) != 0;
    if bit(0) {
        m.insert(
            key("method"),
            Value::String(Arc::new(req.method.as_str().to_owned())),
        );
    }
    if bit(1) {
        m.insert(
            key("scheme"),
            Value::String(Arc::new(req.scheme.as_str().to_owned())),
        );
    }
    if bit(2) {
        m.insert(key("host"), Value::String(Arc::new(req.host.clone())));
    }
    if bit(3) {
        m.insert(key("path"), Value::String(Arc::new(req.path.clone())));
    }
    if bit(4) {
        m.insert(
            key("query"),
            Value::String(Arc::new(req.query.clone().unwrap_or_default())),
        );
    }
    if bit(5) {
        let mut headers: HashMap<Key, Value> = HashMap::with_capacity(req.headers.keys_len());
        for name in req.headers.keys() {
            let values: Vec<&str> = req
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if !values.is_empty() {
                headers.insert(
                    key(name.as_str()),
                    Value::String(Arc::new(values.join(", "))),
                );
            }
        }
        m.insert(key("headers"), map(headers));
    }
    if bit(6) {
        m.insert(key("websocket"), Value::Bool(req.websocket));
    }
    if bit(7) {
        m.insert(key("ip"), Value::String(Arc::new(req.ip.to_string())));
    }
    map(m)
}

fn json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => Value::List(Arc::new(a.iter().map(json).collect())),
        serde_json::Value::Object(o) => map(o.iter().map(|(k, v)| (key(k), json(v))).collect()),
    }
}
