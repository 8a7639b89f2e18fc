use super::super::Outcome::{self, Allow, Deny, Login};
use super::{req, set, user};
use crate::identity::Identity;

const POLICY: &str = r#"
rules:
  - name: no contractors
    deny: { when: 'user.domain == "contractors.example.com"' }
  - name: global health
    guest: true
    match: { path: /healthz }
routes:
  - name: app
    match: { path: /app/** }
    upstream: http://127.0.0.1:9000
    rules:
      - name: blocked path
        match: { path: /app/secret/** }
        deny: {}
      - name: public
        guest: true
        match: { path: /app/public/**, methods: [GET] }
      - name: by domain
        allow: { domains: [example.com, "*.corp.example.org"] }
        grants: [read]
      - name: by email
        allow: { emails: [Guest@Partner.com] }
        grants: [guest]
      - name: by any group
        allow: { groups: [a, b] }
      - name: by all groups
        allow: { groups_all: [x, y] }
      - name: by provider
        allow: { providers: [github] }
      - name: by cel
        allow: { when: 'has(user.claims.level) && user.claims.level >= 3' }
  - name: later
    match: { path: /later/** }
    upstream: http://127.0.0.1:9001
    rules:
      - name: first allow
        allow: { groups: [g] }
        grants: [one]
      - name: second allow
        allow: { groups: [g] }
        grants: [two]
  - name: catch-all
    match: { path: /** }
    upstream: builtin:whoami
    rules:
      - name: members
        allow: {}
"#;

/// Name, user, request line, expected outcome and rule.
type Case = (
    &'static str,
    Option<Identity>,
    &'static str,
    Outcome,
    Option<&'static str>,
);

fn with_claim(mut u: Identity, level: i64) -> Identity {
    u.claims.insert("level".into(), level.into());
    u
}

#[test]
fn every_rule_kind_and_the_ordering() {
    let s = set(POLICY);
    let other = |email: &str, groups: &[&str]| user(email, true, groups);
    let cases: Vec<Case> = vec![
        (
            "guest rule admits anonymous",
            None,
            "GET https://h/app/public/x",
            Allow,
            Some("public"),
        ),
        (
            "guest rule limited by method",
            None,
            "POST https://h/app/public/x",
            Login,
            Some("by domain"),
        ),
        (
            "anonymous on protected path must log in",
            None,
            "GET https://h/app/x",
            Login,
            Some("by domain"),
        ),
        (
            "global guest rule",
            None,
            "GET https://h/healthz",
            Allow,
            Some("global health"),
        ),
        (
            "verified domain",
            Some(other("a@example.com", &[])),
            "GET https://h/app/x",
            Allow,
            Some("by domain"),
        ),
        (
            "domain is case-insensitive",
            Some(other("a@Example.COM", &[])),
            "GET https://h/app/x",
            Allow,
            Some("by domain"),
        ),
        (
            "unverified email never matches a domain",
            Some(user("a@example.com", false, &[])),
            "GET https://h/app/x",
            Deny,
            None,
        ),
        (
            "lookalike prefix domain",
            Some(other("a@evil-example.com", &[])),
            "GET https://h/app/x",
            Deny,
            None,
        ),
        (
            "lookalike suffix domain",
            Some(other("a@example.com.evil.org", &[])),
            "GET https://h/app/x",
            Deny,
            None,
        ),
        (
            "subdomain wildcard",
            Some(other("a@eu.corp.example.org", &[])),
            "GET https://h/app/x",
            Allow,
            Some("by domain"),
        ),
        (
            "wildcard excludes apex",
            Some(other("a@corp.example.org", &[])),
            "GET https://h/app/x",
            Deny,
            None,
        ),
        (
            "email case-insensitive",
            Some(other("guest@partner.com", &[])),
            "GET https://h/app/x",
            Allow,
            Some("by email"),
        ),
        (
            "unverified email never matches emails",
            Some(user("guest@partner.com", false, &[])),
            "GET https://h/app/x",
            Deny,
            None,
        ),
        (
            "any group",
            Some(other("z@z.com", &["b"])),
            "GET https://h/app/x",
            Allow,
            Some("by any group"),
        ),
        (
            "all groups",
            Some(other("z@z.com", &["y", "x"])),
            "GET https://h/app/x",
            Allow,
            Some("by all groups"),
        ),
        (
            "not all groups",
            Some(other("z@z.com", &["x"])),
            "GET https://h/app/x",
            Deny,
            None,
        ),
        (
            "provider",
            Some(Identity {
                provider: "github".into(),
                ..other("z@z.com", &[])
            }),
            "GET https://h/app/x",
            Allow,
            Some("by provider"),
        ),
        (
            "cel on claims",
            Some(with_claim(other("z@z.com", &[]), 3)),
            "GET https://h/app/x",
            Allow,
            Some("by cel"),
        ),
        (
            "cel on claims false",
            Some(with_claim(other("z@z.com", &[]), 2)),
            "GET https://h/app/x",
            Deny,
            None,
        ),
        (
            "route deny beats allow",
            Some(other("a@example.com", &[])),
            "GET https://h/app/secret/k",
            Deny,
            Some("blocked path"),
        ),
        (
            "route deny applies to anonymous",
            None,
            "GET https://h/app/secret/k",
            Deny,
            Some("blocked path"),
        ),
        (
            "global deny beats guest",
            Some(other("c@contractors.example.com", &[])),
            "GET https://h/app/public/x",
            Deny,
            Some("no contractors"),
        ),
        (
            "global deny beats allow",
            Some(other("c@contractors.example.com", &["a"])),
            "GET https://h/app/x",
            Deny,
            Some("no contractors"),
        ),
        (
            "first matching allow wins",
            Some(other("z@z.com", &["g"])),
            "GET https://h/later/x",
            Allow,
            Some("first allow"),
        ),
        (
            "catch-all route for any logged-in user",
            Some(other("z@z.com", &[])),
            "GET https://h/else",
            Allow,
            Some("members"),
        ),
        (
            "catch-all anonymous logs in",
            None,
            "GET https://h/else",
            Login,
            Some("members"),
        ),
    ];
    for (name, u, line, outcome, rule) in cases {
        let d = s.decide(u.as_ref(), &req(line));
        assert_eq!(d.outcome, outcome, "{name}: {d}");
        assert_eq!(d.rule.as_deref(), rule, "{name}: {d}");
    }
}

#[test]
fn grants_come_from_the_matching_allow_rule() {
    let s = set(POLICY);
    let d = s.decide(
        Some(&user("a@example.com", true, &[])),
        &req("GET https://h/app/x"),
    );
    assert_eq!(&*d.grants, ["read".to_owned()]);
    let d = s.decide(
        Some(&user("z@z.com", true, &["g"])),
        &req("GET https://h/later/x"),
    );
    assert_eq!(&*d.grants, ["one".to_owned()]);
    let d = s.decide(None, &req("GET https://h/app/public/x"));
    assert!(d.grants.is_empty());
}

#[test]
fn no_route_is_denied() {
    let s = set(
        "routes:\n  - name: a\n    match: { path: /a/** }\n    upstream: builtin:whoami\n    rules: [{ name: g, guest: true }]\n",
    );
    let d = s.decide(None, &req("GET https://h/b"));
    assert_eq!(d.outcome, Deny);
    assert!(d.route.is_none());
    assert!(d.reason.contains("no route"));
}

#[test]
fn a_route_without_rules_denies() {
    let s = set("routes:\n  - name: a\n    upstream: builtin:whoami\n");
    assert_eq!(
        s.decide(
            Some(&user("a@example.com", true, &[])),
            &req("GET https://h/")
        )
        .outcome,
        Deny
    );
    assert_eq!(s.decide(None, &req("GET https://h/")).outcome, Deny);
}

#[test]
fn websocket_needs_the_route_flag() {
    let s = set(
        "routes:\n  - name: a\n    upstream: builtin:whoami\n    rules: [{ name: g, guest: true }]\n",
    );
    let mut r = req("GET https://h/ws");
    r.websocket = true;
    let d = s.decide(None, &r);
    assert_eq!(d.outcome, Deny);
    assert!(d.reason.contains("WebSocket"));
}

#[test]
fn anonymous_login_only_when_an_allow_rule_could_admit() {
    let s = set(r#"
routes:
  - name: a
    upstream: builtin:whoami
    rules:
      - name: posts only
        allow: { groups: [x], when: 'request.method == "POST"' }
"#);
    assert_eq!(s.decide(None, &req("GET https://h/")).outcome, Deny);
    assert_eq!(s.decide(None, &req("POST https://h/")).outcome, Login);
}

#[test]
fn route_order_is_host_then_literal_prefix_then_file_order() {
    let s = set(r#"
routes:
  - name: any
    match: { path: /** }
    upstream: builtin:whoami
  - name: app
    match: { path: /app/** }
    upstream: builtin:whoami
  - name: app-exact
    match: { path: /app/login }
    upstream: builtin:whoami
  - name: app-deep
    match: { path: /app/api/** }
    upstream: builtin:whoami
  - name: wild-host
    match: { host: "*.example.com" }
    upstream: builtin:whoami
  - name: deeper-wild-host
    match: { host: "*.eu.example.com" }
    upstream: builtin:whoami
  - name: exact-host
    match: { host: shop.example.com, path: /** }
    upstream: builtin:whoami
  - name: by-method-get
    match: { path: /m/**, methods: [GET] }
    upstream: builtin:whoami
  - name: by-method-post
    match: { path: /m/**, methods: [POST] }
    upstream: builtin:whoami
  - name: star
    match: { path: /s/*/x }
    upstream: builtin:whoami
  - name: star-literal
    match: { path: /s/a/** }
    upstream: builtin:whoami
"#);
    let cases = [
        ("GET https://h/", "any"),
        ("GET https://h/app", "app"),
        ("GET https://h/app/login", "app-exact"),
        ("GET https://h/app/login/x", "app"),
        ("GET https://h/app/api/v1", "app-deep"),
        ("GET https://h/appx", "any"),
        ("GET https://a.example.com/app/login", "wild-host"),
        ("GET https://a.eu.example.com/", "deeper-wild-host"),
        ("GET https://shop.example.com/app", "exact-host"),
        ("GET https://example.com/app", "app"),
        ("GET https://h/m/1", "by-method-get"),
        ("POST https://h/m/1", "by-method-post"),
        ("PUT https://h/m/1", "any"),
        ("GET https://h/s/a/x", "star-literal"),
        ("GET https://h/s/b/x", "star"),
    ];
    for (line, want) in cases {
        let d = s.decide(None, &req(line));
        assert_eq!(d.route.as_ref().map(|r| &*r.name), Some(want), "{line}");
    }
}

#[test]
fn explain_traces_every_rule_tried() {
    let s = set(POLICY);
    let e = s.explain(
        Some(&user("z@z.com", true, &["g"])),
        &req("GET https://h/later/x"),
    );
    assert_eq!(e.decision.rule.as_deref(), Some("first allow"));
    let names: Vec<&str> = e.steps.iter().map(|s| &*s.rule).collect();
    assert_eq!(names, ["no contractors", "global health", "first allow"]);
    let text = e.to_string();
    assert!(text.contains("MATCH"), "{text}");
    assert!(text.contains("outside the rule's `match`"), "{text}");
}

#[test]
fn embedded_policies_compile_and_serve_the_demo() {
    let mut sources = Vec::new();
    for (name, text) in super::super::EMBEDDED_POLICIES {
        sources.push(super::super::PolicySource {
            path: name.into(),
            text: (*text).to_owned(),
        });
    }
    let s = super::super::PolicySet::compile(&sources).unwrap_or_else(|e| panic!("{e}"));
    let d = s.decide(None, &req("GET http://localhost/"));
    assert_eq!(d.outcome, Allow);
    let route = d.route.expect("demo route");
    assert_eq!(route.upstream, super::super::Upstream::Whoami);
    assert!(route.websocket);
    assert_eq!(
        super::super::PolicySet::embedded().routes().count(),
        s.routes().count()
    );
}
