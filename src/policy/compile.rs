//! Policy files → [`PolicySet`]: YAML parsed with positions, every part validated and turned
//! into a type that cannot hold an invalid state, every CEL expression compiled once. All
//! errors are collected, not just the first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_saphyr::Spanned;

use super::error::{PolicyError, PolicyErrorKind as Kind, PolicyErrors, Pos};
use super::expr::Literals;
use super::features::Features;
use super::index::RouteIndex;
use super::model::{MatchSpec, PolicyFile, RouteSpec};
use super::pattern::{HostPattern, PathGlob};
use super::set::{PolicySet, RouteEntry, Rule, RuleKind, Scope};
use super::{BasicHeader, Route, Upstream, functions};

mod rules;

/// One policy file's name and text.
#[derive(Clone, Debug)]
pub struct PolicySource {
    pub path: PathBuf,
    pub text: String,
}

struct Compiler {
    features: Features,
    errors: Vec<PolicyError>,
    literals: Literals,
    routes: Vec<RouteEntry>,
    global_deny: Vec<Rule>,
    global_permit: Vec<Rule>,
    route_names: HashMap<String, Pos>,
    global_rule_names: HashMap<String, Pos>,
}

impl PolicySet {
    /// Compiles `sources` into a set, or returns every error found. Sources are taken in path
    /// order, which is the tie-break order of routes and of global rules. Every gateway
    /// feature is assumed; [`compile_for`](Self::compile_for) checks routes against a gateway.
    pub fn compile(sources: &[PolicySource]) -> Result<PolicySet, PolicyErrors> {
        PolicySet::compile_for(sources, Features::ALL)
    }

    /// Like [`compile`](Self::compile); a route that asks for a feature missing from
    /// `features` (`basic_header: true` without `basic_auth:`) is an error.
    pub fn compile_for(
        sources: &[PolicySource],
        features: Features,
    ) -> Result<PolicySet, PolicyErrors> {
        if sources.is_empty() {
            return Err(PolicyErrors::single(PolicyError::new(
                Kind::Io,
                &Pos::file(&Arc::from(Path::new("<policies>"))),
                "no policy files",
                "add at least one *.yaml file with `routes:`",
            )));
        }
        let mut sorted: Vec<&PolicySource> = sources.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        let mut c = Compiler {
            features,
            errors: Vec::new(),
            literals: Literals::default(),
            routes: Vec::new(),
            global_deny: Vec::new(),
            global_permit: Vec::new(),
            route_names: HashMap::new(),
            global_rule_names: HashMap::new(),
        };
        for source in &sorted {
            c.file(source);
        }
        c.check_ambiguous_routes();
        if !c.errors.is_empty() {
            return Err(PolicyErrors(c.errors));
        }
        let index = RouteIndex::build(&c.routes);
        Ok(PolicySet {
            index,
            routes: c.routes,
            global_deny: c.global_deny,
            global_permit: c.global_permit,
            cel: functions::root_context(Arc::new(c.literals)),
            when_memo: Default::default(),
            files: sorted.iter().map(|s| s.path.clone()).collect(),
        })
    }
}

fn pos<T>(file: &Arc<Path>, s: &Spanned<T>) -> Pos {
    Pos::at(file, s.referenced)
}

/// True when the text holds nothing but comments and blank lines.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

/// serde-saphyr's message without its own location prefix and snippet.
fn yaml_message(error: &serde_saphyr::Error) -> String {
    let text = error.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    // Drop a trailing " at line X column Y" the renderer may add: we print our own.
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_owned(),
        None => first.to_owned(),
    }
}

impl Compiler {
    fn err(&mut self, kind: Kind, at: &Pos, message: impl Into<String>, hint: &'static str) {
        self.errors.push(PolicyError::new(kind, at, message, hint));
    }

    fn file(&mut self, source: &PolicySource) {
        let file: Arc<Path> = Arc::from(source.path.as_path());
        let parsed: PolicyFile = if is_blank_yaml(&source.text) {
            PolicyFile::default()
        } else {
            match serde_saphyr::from_str(&source.text) {
                Ok(f) => f,
                Err(e) => {
                    let at = match e.location() {
                        Some(loc) => Pos::at(&file, loc),
                        None => Pos::file(&file),
                    };
                    let message = yaml_message(&e);
                    let hint = if message.contains("unknown field") {
                        "check the spelling; docs/policy.md lists every key"
                    } else {
                        "fix the YAML syntax (indentation, quoting, `key: value`)"
                    };
                    self.err(Kind::Yaml, &at, message, hint);
                    return;
                }
            }
        };
        for rule in parsed.rules {
            if let Some(rule) = self.rule(&file, &source.text, rule, None) {
                let name = rule.name.to_string();
                if let Some(first) = self.global_rule_names.get(&name) {
                    let message =
                        format!("duplicate global rule name {name:?} (first defined at {first})");
                    self.err(
                        Kind::Conflict,
                        &rule.pos,
                        message,
                        "give every global rule its own name",
                    );
                    continue;
                }
                self.global_rule_names.insert(name, rule.pos.clone());
                match rule.kind {
                    RuleKind::Deny => self.global_deny.push(rule),
                    _ => self.global_permit.push(rule),
                }
            }
        }
        for route in parsed.routes {
            self.route(&file, &source.text, route);
        }
    }

    fn route(&mut self, file: &Arc<Path>, text: &str, spec: Spanned<RouteSpec>) {
        let at = pos(file, &spec);
        let spec = spec.value;
        let name = spec.name.value.trim().to_owned();
        let name_at = pos(file, &spec.name);
        if name.is_empty() {
            self.err(
                Kind::Invalid,
                &name_at,
                "route name is empty",
                "name every route, e.g. `name: panel`",
            );
        }
        if let Some(first) = self.route_names.get(&name) {
            let message = format!("duplicate route name {name:?} (first defined at {first})");
            self.err(
                Kind::Conflict,
                &name_at,
                message,
                "route names must be unique across all policy files",
            );
        } else {
            self.route_names.insert(name.clone(), name_at.clone());
        }
        let upstream = match Upstream::parse(spec.upstream.value.trim()) {
            Ok(u) => Some(u),
            Err(e) => {
                self.err(
                    Kind::Invalid,
                    &pos(file, &spec.upstream),
                    e,
                    "write `http://127.0.0.1:5006` or `builtin:whoami`",
                );
                None
            }
        };
        let mut allowed_origins = Vec::new();
        for origin in &spec.allowed_origins {
            match parse_origin(&origin.value) {
                Ok(o) => allowed_origins.push(o),
                Err(e) => self.err(
                    Kind::Invalid,
                    &pos(file, origin),
                    e,
                    "write `https://app.example.com` (scheme://host[:port])",
                ),
            }
        }
        if !allowed_origins.is_empty() && !spec.websocket {
            self.err(
                Kind::Invalid,
                &at,
                "`allowed_origins` is set but `websocket` is not true",
                "set `websocket: true` or remove `allowed_origins`",
            );
        }
        if let Some(flag) = &spec.basic_header
            && flag.value
            && !self.features.basic_auth
        {
            self.err(
                Kind::Invalid,
                &pos(file, flag),
                "`basic_header: true` but gateway.yaml configures no `basic_auth:`",
                "add a `basic_auth:` section to gateway.yaml or remove `basic_header`",
            );
        }
        let scope = match &spec.matcher {
            Some(m) => self.scope(file, m),
            None => Some(Scope {
                host: HostPattern::Any,
                paths: Vec::new(),
                methods: None,
            }),
        };
        let mut scope = match scope {
            Some(s) => s,
            None => return,
        };
        if scope.paths.is_empty() {
            scope.paths.push(PathGlob::any());
        }
        let route_name: Arc<str> = name.as_str().into();
        let mut deny = Vec::new();
        let mut permit = Vec::new();
        let mut names: HashMap<String, Pos> = HashMap::new();
        for rule in spec.rules {
            if let Some(rule) = self.rule(file, text, rule, Some(&route_name)) {
                let n = rule.name.to_string();
                if let Some(first) = names.get(&n) {
                    let message = format!(
                        "duplicate rule name {n:?} in route {name:?} (first defined at {first})"
                    );
                    self.err(
                        Kind::Conflict,
                        &rule.pos,
                        message,
                        "give every rule of a route its own name",
                    );
                    continue;
                }
                names.insert(n, rule.pos.clone());
                match rule.kind {
                    RuleKind::Deny => deny.push(rule),
                    _ => permit.push(rule),
                }
            }
        }
        let Some(upstream) = upstream else { return };
        self.routes.push(RouteEntry {
            route: Arc::new(Route {
                name: route_name,
                upstream,
                websocket: spec.websocket,
                allowed_origins,
                basic_header: BasicHeader::from_flag(spec.basic_header.map(|flag| flag.value)),
            }),
            scope,
            deny,
            permit,
            pos: at,
        });
    }

    fn scope(&mut self, file: &Arc<Path>, spec: &Spanned<MatchSpec>) -> Option<Scope> {
        let before = self.errors.len();
        let m = &spec.value;
        let host = match &m.host {
            None => HostPattern::Any,
            Some(h) => match HostPattern::parse(&h.value) {
                Ok(p) => p,
                Err(e) => {
                    self.err(
                        Kind::Invalid,
                        &pos(file, h),
                        e,
                        "write `app.example.com` or `*.example.com`",
                    );
                    HostPattern::Any
                }
            },
        };
        let mut paths = Vec::new();
        for p in m.path.iter().chain(m.paths.iter()) {
            match PathGlob::parse(p.value.trim()) {
                Ok(g) => paths.push(g),
                Err(e) => self.err(
                    Kind::Invalid,
                    &pos(file, p),
                    e,
                    "globs look like `/app/**`, `/app/*/edit`, `/assets/*.css`",
                ),
            }
        }
        let methods = if m.methods.is_empty() {
            None
        } else {
            let mut out = Vec::new();
            for method in &m.methods {
                let upper = method.value.trim().to_ascii_uppercase();
                match http::Method::from_bytes(upper.as_bytes()) {
                    Ok(v) if !upper.is_empty() => out.push(v),
                    _ => self.err(
                        Kind::Invalid,
                        &pos(file, method),
                        format!("invalid HTTP method {:?}", method.value),
                        "write e.g. GET, POST",
                    ),
                }
            }
            Some(out)
        };
        (self.errors.len() == before).then_some(Scope {
            host,
            paths,
            methods,
        })
    }

    /// Two routes with the same host pattern and the same path glob, whose methods overlap,
    /// would be told apart only by file order: reject them.
    fn check_ambiguous_routes(&mut self) {
        let mut seen: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut found = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            for g in &r.scope.paths {
                let key = (
                    r.scope.host.to_string(),
                    g.as_str().trim_end_matches('/').to_owned(),
                );
                let list = seen.entry(key.clone()).or_default();
                for &j in list.iter() {
                    if methods_overlap(&self.routes[j].scope, &r.scope) {
                        found.push((j, i, key.0.clone(), g.as_str().to_owned()));
                    }
                }
                list.push(i);
            }
        }
        for (j, i, host, glob) in found {
            let first = self.routes[j].pos.clone();
            let (a, b) = (
                self.routes[j].route.name.clone(),
                self.routes[i].route.name.clone(),
            );
            let at = self.routes[i].pos.clone();
            self.err(
                Kind::Conflict,
                &at,
                format!("route {b:?} matches the same host `{host}` and path `{glob}` as route {a:?} ({first})"),
                "make one route's host or path more specific, or split them by `methods`",
            );
        }
    }
}

fn methods_overlap(a: &Scope, b: &Scope) -> bool {
    match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        _ => true,
    }
}

fn parse_origin(text: &str) -> Result<String, String> {
    let t = text.trim().to_ascii_lowercase();
    let uri: http::Uri = t.parse().map_err(|_| format!("invalid origin {text:?}"))?;
    let ok = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some()
        && uri
            .path_and_query()
            .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/");
    if !ok {
        return Err(format!(
            "invalid origin {text:?}: scheme://host[:port] only"
        ));
    }
    Ok(t.trim_end_matches('/').to_owned())
}
