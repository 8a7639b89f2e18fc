use super::super::Outcome::{Allow, Deny};
use super::{req, route_with, set, try_set, user};
use crate::identity::Identity;

#[test]
fn cel_sees_user_request_and_now() {
    let mut u = user("Ana@Example.com", true, &["ops"]);
    u.name = Some("Ana".into());
    u.claims.insert("tier".into(), "gold".into());
    let cases = [
        ("user.email == \"Ana@Example.com\"", true),
        ("user.domain == \"example.com\"", true),
        ("user.email_verified", true),
        ("\"ops\" in user.groups", true),
        ("user.groups.exists(g, g == \"ops\")", true),
        ("user.provider == \"google\" && user.sub == \"Ana\"", true),
        ("user.name == \"Ana\"", true),
        ("user.claims.tier == \"gold\"", true),
        ("has(user.claims.tier) && !has(user.claims.nope)", true),
        (
            "request.method == \"GET\" && request.scheme == \"https\"",
            true,
        ),
        (
            "request.host == \"h.example.com\" && request.path == \"/p\"",
            true,
        ),
        ("request.query == \"a=1\"", true),
        ("request.headers[\"x-team\"] == \"blue\"", true),
        (
            "request.headers[\"X-Team\"] == \"blue\" && \"x-team\" in request.headers",
            true,
        ),
        ("request.headers[\"accept\"] == \"a, b\"", true),
        (
            "!has(request.headers.nope) && has(request.headers.accept)",
            true,
        ),
        ("size(user.groups) == 1 && user.groups[0] == \"ops\"", true),
        ("user.claims.size() == 1", true),
        ("!request.websocket", true),
        ("request.ip == \"10.1.2.3\"", true),
        ("request.ip.inCidr(\"10.0.0.0/8\")", true),
        ("inCidr(request.ip, \"192.168.0.0/16\")", false),
        ("request.path.matches(\"^/p$\")", true),
        ("matches(request.path, \"^/q\")", false),
        ("now > timestamp(\"2020-01-01T00:00:00Z\")", true),
        ("now.getHours(\"Europe/Paris\") >= 0", true),
        ("user.email.lowerAscii().endsWith(\"@example.com\")", true),
    ];
    for (expr, want) in cases {
        let s = set(&route_with(expr));
        let mut r = req("GET https://h.example.com/p?a=1");
        r.headers
            .insert("x-team", http::HeaderValue::from_static("blue"));
        r.headers
            .append("accept", http::HeaderValue::from_static("a"));
        r.headers
            .append("accept", http::HeaderValue::from_static("b"));
        r.ip = "10.1.2.3".parse().expect("ip");
        let d = s.decide(Some(&u), &r);
        assert_eq!(d.outcome == Allow, want, "{expr}: {d}");
    }
}

#[test]
fn runtime_errors_fail_closed_with_the_rule_named() {
    for expr in [
        "user.claims.missing == 1",
        "1 / 0 == 1",
        "request.path",
        "request.path.matches(user.claims.re)",
    ] {
        let s = set(&route_with(expr));
        let mut u = user("a@example.com", true, &[]);
        u.claims.insert("re".into(), "(".into());
        let d = s.decide(Some(&u), &req("GET https://h/"));
        assert_eq!(d.outcome, Deny, "{expr}");
        assert_eq!(d.rule.as_deref(), Some("r"), "{expr}");
        assert!(d.reason.contains("error"), "{expr}: {}", d.reason);
    }
}

#[test]
fn computed_regex_and_cidr_work_at_runtime() {
    let s = set(&route_with(
        "request.path.matches(user.claims.re) && request.ip.inCidr(user.claims.net)",
    ));
    let mut u: Identity = user("a@example.com", true, &[]);
    u.claims.insert("re".into(), "^/ok".into());
    u.claims.insert("net".into(), "127.0.0.0/8".into());
    assert_eq!(s.decide(Some(&u), &req("GET https://h/ok")).outcome, Allow);
    assert_eq!(s.decide(Some(&u), &req("GET https://h/no")).outcome, Deny);
}

#[test]
fn load_rejects_unknown_names_and_bad_literals() {
    let cases = [
        ("usr.email == \"x\"", "unknown variable `usr`"),
        ("request.foo == \"x\"", "unknown field `request.foo`"),
        ("user.mail == \"x\"", "unknown field `user.mail`"),
        ("frobnicate(request.path)", "unknown function `frobnicate`"),
        ("request.path.frob()", "unknown function `frob`"),
        ("request.path.matches(\"(\")", "invalid regex"),
        ("request.ip.inCidr(\"10.0.0.0/99\")", "invalid CIDR"),
        ("request.path ==", "CEL syntax error"),
    ];
    for (expr, want) in cases {
        let err = try_set(&route_with(expr)).expect_err(expr).to_string();
        assert!(err.contains(want), "{expr}: {err}");
        assert!(err.contains("test.yaml:7:"), "{expr}: {err}");
    }
}

#[test]
fn guest_rules_cannot_look_at_the_user() {
    let err = try_set(
        "routes:\n  - name: a\n    upstream: builtin:whoami\n    rules:\n      - name: g\n        guest: true\n        allow: { when: 'user.email == \"x\"' }\n",
    )
    .expect_err("two kinds");
    assert!(err.to_string().contains("exactly one of"), "{err}");
}

#[test]
fn comprehension_variables_are_not_unknown() {
    set(&route_with(
        "user.groups.all(g, g.startsWith(\"t\")) || [1, 2].map(x, x * 2).size() == 2",
    ));
}
