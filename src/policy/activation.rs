//! The per-request CEL variables (`user`, `request`, `now`).
//!
//! `user` and `request` are views over the [`Identity`] and [`RequestInfo`] the decision was
//! given: a field is produced only when an expression reads it, borrowing strings instead of
//! copying them. So a decision pays nothing for CEL until a `when:` runs, and then one small
//! allocation per variable reference, not a map of every field.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use cel::common::traits::{Container, Indexer};
use cel::common::types::{CelBool, CelList, CelNull, CelString, CelTimestamp, Type};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::objects::{Key, Map};
use cel::{Context, ExecutionError, Value};

use super::RequestInfo;
use super::expr::Expr;
use super::memo::{self, WhenMemo};
use crate::identity::Identity;

/// The variables of one decision, resolved by name on each lookup: no map is built and no
/// name is allocated; `now` is read once per decision, on first use.
pub(crate) struct Vars<'a> {
    user: Option<&'a Identity>,
    request: &'a RequestInfo,
    now: OnceLock<CelTimestamp>,
}

impl<'a> Vars<'a> {
    pub(crate) fn new(user: Option<&'a Identity>, request: &'a RequestInfo) -> Self {
        Vars {
            user,
            request,
            now: OnceLock::new(),
        }
    }
}

impl VariableResolver for Vars<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        // CEL asks for the whole qualified name first (`user.email`): answering it directly
        // skips boxing the view and indexing it.
        if let Some(field) = variable.strip_prefix("user.") {
            return user_field(self.user?, field).ok();
        }
        if let Some(field) = variable.strip_prefix("request.") {
            return request_field(self.request, field).ok();
        }
        match variable {
            "user" => Some(match self.user {
                Some(u) => CowVal::owned(UserView(u)),
                None => CowVal::owned(CelNull),
            }),
            "request" => Some(CowVal::owned(RequestView(self.request))),
            "now" => Some(CowVal::Borrowed(self.now.get_or_init(|| {
                CelTimestamp::from(chrono::Utc::now().fixed_offset())
            }))),
            _ => None,
        }
    }
}

/// A decision's CEL scope, created on the first `when:` evaluated.
pub(crate) struct Activation<'a> {
    root: &'a Context<'static, 'static>,
    vars: &'a Vars<'a>,
    memo: &'a WhenMemo,
    scope: Option<Context<'a, 'a>>,
}

impl<'a> Activation<'a> {
    pub(crate) fn new(
        root: &'a Context<'static, 'static>,
        vars: &'a Vars<'a>,
        memo: &'a WhenMemo,
    ) -> Self {
        Activation {
            root,
            vars,
            memo,
            scope: None,
        }
    }

    /// The expression's result on this request: remembered, or evaluated (and remembered
    /// when it can be, see [`memo`]).
    pub(crate) fn eval(&mut self, expr: &Expr) -> Result<bool, String> {
        let key = memo::key(expr, self.vars.user, self.vars.request);
        if let Some(key) = &key
            && let Some(result) = self.memo.get(key)
        {
            return Ok(result);
        }
        let (root, vars) = (self.root, self.vars);
        let scope = self.scope.get_or_insert_with(|| {
            let mut scope: Context<'a, 'a> = root.new_inner_scope();
            scope.set_variable_resolver(vars);
            scope
        });
        let result = expr.execute(scope);
        if let (Some(key), Ok(result)) = (key, &result) {
            self.memo.remember(key, *result);
        }
        result
    }
}

static USER_TYPE: Type = Type::new_unspecified_type("portcullis.User");
static REQUEST_TYPE: Type = Type::new_unspecified_type("portcullis.Request");
static HEADERS_TYPE: Type = Type::new_unspecified_type("portcullis.Headers");

fn field(idx: &dyn Val) -> Result<&str, ExecutionError> {
    idx.downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| ExecutionError::UnexpectedType {
            got: idx.get_type().name().to_owned(),
            want: "string".to_owned(),
        })
}

fn text<'b, 'v>(s: &'v str) -> CowVal<'b, 'v> {
    CowVal::owned(CelString::from(s))
}

/// A shared `true` or `false`: no allocation.
fn boolean<'b, 'v>(b: bool) -> CowVal<'b, 'v> {
    static TRUE: CelBool = CelBool::TRUE;
    static FALSE: CelBool = CelBool::FALSE;
    CowVal::Borrowed(if b { &TRUE } else { &FALSE })
}

fn opt_text<'b, 'v>(s: Option<&'v str>) -> CowVal<'b, 'v> {
    match s {
        Some(s) => text(s),
        None => CowVal::owned(CelNull),
    }
}

fn owned<'b, 'v>(value: Value) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let boxed: Box<dyn Val> = value.try_into()?;
    Ok(CowVal::Owned(boxed))
}

/// A CEL object whose fields are produced on access from a borrowed value, so a decision never
/// builds maps for variables its expressions do not read.
macro_rules! lazy_view {
    ($(#[$doc:meta])* $view:ident($inner:ty), $cel_type:expr, $field:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        struct $view<'a>(&'a $inner);

        impl Val for $view<'_> {
            fn get_type(&self) -> &Type {
                &$cel_type
            }

            fn cel_type() -> &'static Type {
                &$cel_type
            }

            fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
            where
                Self: 'v,
            {
                Some(self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
            where
                Self: 'v,
            {
                Box::new($view(self.0))
            }
        }

        impl Indexer for $view<'_> {
            fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
            where
                Self: 'v,
            {
                $field(self.0, field(idx)?)
            }

            fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
            where
                Self: 'v,
            {
                self.get(idx).map(CowVal::into_owned)
            }
        }
    };
}

lazy_view!(
    /// `user`: fields of the [`Identity`], produced on access.
    UserView(Identity),
    USER_TYPE,
    user_field
);
lazy_view!(
    /// `request`: fields of the [`RequestInfo`], produced on access.
    RequestView(RequestInfo),
    REQUEST_TYPE,
    request_field
);

fn user_field<'b, 'v>(user: &'v Identity, name: &str) -> Result<CowVal<'b, 'v>, ExecutionError> {
    match name {
        "sub" => Ok(text(&user.subject)),
        "email" => Ok(opt_text(user.email.as_deref())),
        "email_verified" => Ok(boolean(user.email_verified)),
        "domain" => Ok(match user.domain() {
            Some(d) => CowVal::owned(CelString::from(d)),
            None => CowVal::owned(CelNull),
        }),
        "name" => Ok(opt_text(user.name.as_deref())),
        "groups" => {
            let groups: Vec<Box<dyn Val + 'v>> = user
                .groups
                .iter()
                .map(|g| Box::new(CelString::from(g.as_str())) as Box<dyn Val + 'v>)
                .collect();
            Ok(CowVal::owned(CelList::from(groups)))
        }
        "provider" => Ok(text(&user.provider)),
        "claims" => owned(Value::Map(Map {
            map: Arc::new(
                user.claims
                    .iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), json(v)))
                    .collect(),
            ),
        })),
        other => Err(ExecutionError::no_such_key(other)),
    }
}

fn request_field<'b, 'v>(
    req: &'v RequestInfo,
    name: &str,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    match name {
        "method" => Ok(text(req.method.as_str())),
        "scheme" => Ok(text(req.scheme.as_str())),
        "host" => Ok(text(&req.host)),
        "path" => Ok(text(&req.path)),
        "query" => Ok(text(req.query.as_deref().unwrap_or(""))),
        "headers" => Ok(CowVal::owned(HeadersView(&req.headers))),
        "websocket" => Ok(boolean(req.websocket)),
        "ip" => Ok(CowVal::owned(CelString::from(req.ip.to_string()))),
        other => Err(ExecutionError::no_such_key(other)),
    }
}

/// `request.headers`: a map view, lower-case names; repeated headers joined with `, `.
#[derive(Debug)]
struct HeadersView<'a>(&'a http::HeaderMap);

/// The value of header `name` (lower-case), borrowed when it appears once.
fn header_value<'v>(headers: &'v http::HeaderMap, name: &str) -> Option<Cow<'v, str>> {
    let mut values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    match values.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = format!("{first}, {second}");
            for v in values {
                joined.push_str(", ");
                joined.push_str(v);
            }
            Some(Cow::Owned(joined))
        }
    }
}

impl Val for HeadersView<'_> {
    fn get_type(&self) -> &Type {
        &HEADERS_TYPE
    }

    fn cel_type() -> &'static Type {
        &HEADERS_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(HeadersView(self.0))
    }
}

impl Indexer for HeadersView<'_> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let headers: &'v http::HeaderMap = self.0;
        // `HeaderMap` folds the case of a `&str` name itself
        let name = field(idx)?;
        match header_value(headers, name) {
            Some(value) => Ok(CowVal::owned(CelString::from(value))),
            None => Err(ExecutionError::no_such_key(&name.to_ascii_lowercase())),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for HeadersView<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.0.contains_key(field(value)?))
    }
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
        serde_json::Value::Object(o) => Value::Map(Map {
            map: Arc::new(
                o.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), json(v)))
                    .collect(),
            ),
        }),
    }
}
