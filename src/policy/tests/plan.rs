//! The rewritten plan of an expression answers exactly what the parsed expression answers:
//! every case is evaluated both ways against the same context, values and errors compared.

use std::sync::Arc;

use cel::Value;

use super::super::activation::Vars;
use super::super::expr::{Literals, env};
use super::super::functions::root_context;
use super::super::plan::{Constants, plan};
use super::{req, route_with, try_set, user};

const CASES: &[&str] = &[
    "user.email.endsWith(\"@example.com\")",
    "user.domain == \"example.com\" && user.email_verified",
    "request.method in [\"GET\", \"POST\"]",
    "request.method in [\"PUT\"]",
    "[\"GET\", \"POST\"] == [\"GET\", \"POST\"]",
    "request.path in {\"/p\": 1, \"/q\": 2}",
    "{\"a\": [1, 2], \"b\": {\"c\": true}}.b.c",
    "{\"a\": [1, 2]}[\"a\"][1] == 2",
    "[[1], [2, 3]][1].size() == 2",
    "[] == []",
    "size([1, 2, 3]) == 3",
    "now > timestamp(\"2000-01-01T00:00:00Z\")",
    "timestamp(\"2030-01-01T00:00:00Z\") - now > duration(\"1h\")",
    "duration(\"90s\") == duration(\"1m30s\")",
    "request.headers[\"user-agent\"] != \"blocked\"",
    "request.headers[\"User-Agent\"] == \"bench\"",
    "request.headers[\"missing\"] == \"x\"",
    "request.headers[\"not a name\"] == \"x\"",
    "\"not a name\" in request.headers",
    "\"accept\" in request.headers",
    "\"Accept\" in request.headers && !(\"Nope\" in request.headers)",
    "has(request.headers.accept) && !has(request.headers.nope)",
    "user.claims.tier == \"gold\"",
    "user.claims.nope == \"gold\"",
    "has(user.claims.tier)",
    "user.groups.exists(g, g in [\"ops\", \"admins\"])",
    "[\"ops\"].exists(user, user == \"ops\")",
    "[{\"email\": \"x\"}].all(user, user.email == \"x\")",
    "[1, 2].map(request, request * 2) == [2, 4]",
    "user.name == null",
    "user.email.size() > 3 ? request.websocket : true",
    "request.ip.inCidr(\"10.0.0.0/8\")",
    "request.path.matches(\"^/p\")",
    "user.sub + \"@\" + user.provider == \"ana@google\"",
    "user.email",
    "request.query.size()",
    "user.groups[5] == \"x\"",
];

#[test]
fn every_case_answers_as_the_parsed_expression_does() {
    let mut u = user("ana@Example.com", true, &["ops"]);
    u.claims.insert("tier".into(), "gold".into());
    let mut r = req("GET https://h.example.com/p?a=1");
    r.headers
        .insert("user-agent", http::HeaderValue::from_static("bench"));
    r.headers
        .append("accept", http::HeaderValue::from_static("a"));
    r.ip = "10.1.2.3".parse().expect("ip");

    for source in CASES {
        let program = env().compile(source).expect("case parses");
        let mut literals = Literals::default();
        let planned = plan(program.expression(), &mut literals.constants)
            .unwrap_or_else(|e| panic!("{source}: plan failed: {}", e.message));
        let root = root_context(Arc::new(literals));
        let vars = Vars::new(Some(&u), &r);
        let mut scope = root.new_inner_scope();
        scope.set_variable_resolver(&vars);

        let parsed = program.execute(&scope);
        let rewritten = Value::resolve(&planned, &scope);
        match (&parsed, &rewritten) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{source}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{source}: parsed gave {parsed:?}, plan gave {rewritten:?}"),
        }
    }
}

#[test]
fn variable_fields_become_one_name_and_constants_are_bound_once() {
    let program = env()
        .compile("request.method in [\"GET\"] && user.email == \"a\" && now > timestamp(\"2000-01-01T00:00:00Z\")")
        .expect("parses");
    let mut constants = Constants::default();
    let planned = format!(
        "{:?}",
        plan(program.expression(), &mut constants).expect("plans")
    );
    assert!(planned.contains("Ident(\"request.method\")"), "{planned}");
    assert!(planned.contains("Ident(\"user.email\")"), "{planned}");
    assert!(!planned.contains("Select"), "{planned}");
    let names: Vec<&str> = constants.values.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["@c0", "@c1"]);
    assert!(matches!(constants.values[1].1, Value::Timestamp(_)));
}

#[test]
fn a_constant_that_does_not_evaluate_fails_the_load_at_its_column() {
    for (when, culprit) in [
        ("now > timestamp(\"yesterday\")", "\"yesterday"),
        ("now - duration(\"forever\") < now", "\"forever"),
        ("request.path in {\"a\": 1, \"a\": 2}", "{"),
    ] {
        let column = when.find(culprit).expect("culprit") + 1;
        let errors = try_set(&route_with(when))
            .err()
            .unwrap_or_else(|| panic!("{when} must fail the load"))
            .to_string();
        assert!(errors.contains("does not evaluate"), "{when}: {errors}");
        // the expression starts at column 18 of its line, after `when: '`
        assert!(
            errors.contains(&format!("test.yaml:7:{}:", 17 + column)),
            "{when}: {errors}"
        );
    }
}
