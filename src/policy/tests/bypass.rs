//! Bypass shapes from other gateways' advisories. Paths reach the policy already normalized by
//! the server; these check that literal strings of those shapes never match a guest glob they
//! should not, so none reaches the protected part of a route as a guest.

use super::super::Outcome;
use super::{req, set};

const POLICY: &str = r#"
routes:
  - name: panel
    match: { path: /panel/** }
    upstream: http://127.0.0.1:5006
    websocket: true
    rules:
      - name: public assets
        guest: true
        match: { path: /panel/static/** }
      - name: public socket
        guest: true
        match: { path: /panel/ws }
      - name: members
        allow: { domains: [example.com] }
"#;

#[test]
fn lookalike_paths_do_not_reach_protected_routes_as_guest() {
    let s = set(POLICY);
    let protected = [
        "GET https://h/panel/admin?/panel/static/x",
        "GET https://h/panel/admin?x=/panel/static/",
        "GET https://h/panel/admin#/panel/static/x",
        "GET https://h/panel/staticX",
        "GET https://h/panel/staticX/app.js",
        "GET https://h/panel/static..",
        "GET https://h/panel/static%2F..%2Fadmin",
        "GET https://h/panel/static%2f..%2fadmin",
        "GET https://h/panel%2Fstatic/app.js",
        "GET https://h/panel/static;x/../admin",
        "GET https://h/panel/static;jsessionid=1/app.js",
        "GET https://h/panel/ws;x",
        "GET https://h/panel/ws/../admin",
        "GET https://h/panel/ws/x",
        "GET https://h/panel//static/app.js",
        "GET https://h//panel/static/app.js",
        "GET https://h/Panel/static/app.js",
        "GET https://h/panel/Static/app.js",
        "GET https://h/PANEL/STATIC/APP.JS",
        "GET https://h/panel/./static/app.js",
        "GET https://h/panel/admin/..;/static/x",
        "GET https://h/panel/ws%00",
        "GET https://h/panel/%2e%2e/static/x",
    ];
    for line in protected {
        let d = s.decide(None, &req(line));
        assert_ne!(
            d.outcome,
            Outcome::Allow,
            "{line} must not be a guest path: {d}"
        );
    }
}

#[test]
fn the_real_guest_paths_stay_public() {
    let s = set(POLICY);
    for line in [
        "GET https://h/panel/static/app.js",
        "GET https://h/panel/static/",
        "GET https://h/panel/static",
        "GET https://h/panel/static/a/b/c.css?v=1",
        "GET https://h/panel/ws",
        "GET https://h/panel/ws/",
    ] {
        let d = s.decide(None, &req(line));
        assert_eq!(d.outcome, Outcome::Allow, "{line}: {d}");
    }
}

#[test]
fn trailing_slash_cannot_dodge_a_deny_rule() {
    let s = set(r#"
routes:
  - name: app
    upstream: builtin:whoami
    rules:
      - name: no admin
        match: { path: /admin }
        deny: {}
      - name: everyone
        guest: true
"#);
    for line in ["GET https://h/admin", "GET https://h/admin/"] {
        assert_eq!(s.decide(None, &req(line)).outcome, Outcome::Deny, "{line}");
    }
    assert_eq!(
        s.decide(None, &req("GET https://h/administrator")).outcome,
        Outcome::Allow
    );
}
