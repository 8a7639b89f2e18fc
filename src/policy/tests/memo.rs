//! `when:` results are remembered by the values read, and only where that is safe.

use super::super::Outcome::{Allow, Deny};
use super::super::memo;
use super::{req, route_with, set, user};

#[test]
fn remembered_results_follow_every_value_the_expression_reads() {
    let s = set(&route_with(
        r#"request.method in ["GET", "HEAD"] && user.email.endsWith("@example.com")"#,
    ));
    let alice = user("alice@example.com", true, &[]);
    let mallory = user("mallory@evil.test", true, &[]);
    for _ in 0..3 {
        assert_eq!(
            s.decide(Some(&alice), &req("GET https://h/")).outcome,
            Allow
        );
        assert_eq!(
            s.decide(Some(&mallory), &req("GET https://h/")).outcome,
            Deny
        );
        assert_eq!(
            s.decide(Some(&alice), &req("DELETE https://h/")).outcome,
            Deny
        );
    }
    // The path is not read, so another path reuses alice's GET result.
    assert_eq!(
        s.decide(Some(&alice), &req("GET https://h/x")).outcome,
        Allow
    );
    assert_eq!(s.when_memo.len(), 3);
}

#[test]
fn expressions_reading_time_headers_claims_or_whole_objects_are_always_evaluated() {
    for expr in [
        "now > timestamp(\"2000-01-01T00:00:00Z\")",
        "request.headers[\"x-team\"] == \"blue\"",
        "user.claims.tier == \"gold\"",
        "user != null",
        "request != null",
    ] {
        let s = set(&route_with(expr));
        let mut u = user("a@example.com", true, &[]);
        u.claims.insert("tier".into(), "gold".into());
        let mut r = req("GET https://h/");
        r.headers.insert("x-team", "blue".parse().unwrap());
        for _ in 0..2 {
            assert_eq!(s.decide(Some(&u), &r).outcome, Allow, "{expr}");
        }
        assert_eq!(s.when_memo.len(), 0, "{expr}");
        u.claims.insert("tier".into(), "lead".into());
        r.headers.insert("x-team", "red".parse().unwrap());
        let changed = s.decide(Some(&u), &r).outcome;
        if expr.contains("claims") || expr.contains("headers") {
            assert_eq!(changed, Deny, "{expr}: a changed value must be seen");
        }
    }
}

#[test]
fn errors_are_not_remembered() {
    let s = set(&route_with("user.name.startsWith(\"A\")"));
    let nameless = user("a@example.com", true, &[]);
    for _ in 0..2 {
        assert_eq!(
            s.decide(Some(&nameless), &req("GET https://h/")).outcome,
            Deny
        );
    }
    assert_eq!(s.when_memo.len(), 0);
    let mut named = nameless.clone();
    named.name = Some("Ana".into());
    assert_eq!(
        s.decide(Some(&named), &req("GET https://h/")).outcome,
        Allow
    );
    assert_eq!(s.when_memo.len(), 1);
}

#[test]
fn keys_cannot_run_one_value_into_the_next() {
    let s = set(&route_with("user.email + user.name == \"abc\""));
    let mut first = user("a", true, &[]);
    first.name = Some("bc".into());
    let mut second = user("ab", true, &[]);
    second.name = Some("c".into());
    let expr = first_when(&s);
    let r = req("GET https://h/");
    assert_ne!(
        memo::key(expr, Some(&first), &r),
        memo::key(expr, Some(&second), &r)
    );
    assert_ne!(memo::key(expr, None, &r), memo::key(expr, Some(&first), &r));

    let groups = set(&route_with("size(user.groups) > 0"));
    let expr = first_when(&groups);
    assert_ne!(
        memo::key(expr, Some(&user("a", true, &["x,y"])), &r),
        memo::key(expr, Some(&user("a", true, &["x", "y"])), &r)
    );
}

#[test]
fn values_too_long_for_a_key_are_evaluated_every_time() {
    let s = set(&route_with("request.path.startsWith(\"/ok\")"));
    let alice = user("a@example.com", true, &[]);
    let long_ok = format!("GET https://h/ok/{}", "x".repeat(600));
    let long_other = format!("GET https://h/no/{}", "x".repeat(600));
    for _ in 0..2 {
        assert_eq!(s.decide(Some(&alice), &req(&long_ok)).outcome, Allow);
        assert_eq!(s.decide(Some(&alice), &req(&long_other)).outcome, Deny);
    }
    assert_eq!(s.when_memo.len(), 0, "no key past the length limit");
    assert!(memo::key(first_when(&s), Some(&alice), &req(&long_ok)).is_none());
    assert_eq!(
        s.decide(Some(&alice), &req("GET https://h/ok")).outcome,
        Allow
    );
    assert_eq!(s.when_memo.len(), 1);
}

fn first_when(set: &super::PolicySet) -> &super::super::expr::Expr {
    set.routes[0].permit[0]
        .conditions
        .when
        .as_ref()
        .expect("the rule has a when")
}
