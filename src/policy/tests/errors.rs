//! Malformed files: each error names file:line:col, says what is wrong and hints at the fix.

use std::path::PathBuf;

use super::super::{BasicHeader, Features, PolicyErrorKind, PolicySet, PolicySource};
use super::try_set;

#[test]
fn malformed_files_report_file_line_and_message() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "bad yaml",
            "routes:\n  - name: a\n    upstream: [unclosed\n",
            "test.yaml:3:15: expected string scalar",
        ),
        (
            "unclosed quote",
            "routes:\n  - name: \"a\n    upstream: builtin:whoami\n",
            "test.yaml:2:11: unclosed quote",
        ),
        (
            "unknown top-level key",
            "routse: []\n",
            "test.yaml:1:1: unknown field `routse`",
        ),
        (
            "unknown route key",
            "routes:\n  - name: a\n    upstream: builtin:whoami\n    websockets: true\n",
            "test.yaml:4:5: unknown field `websockets`",
        ),
        (
            "unknown condition key",
            "routes:\n  - name: a\n    upstream: builtin:whoami\n    rules:\n      - name: r\n        allow: { domain: [x.com] }\n",
            "test.yaml:6:18: unknown field `domain`",
        ),
        (
            "bad cel",
            "routes:\n  - name: a\n    upstream: builtin:whoami\n    rules:\n      - name: r\n        allow: { when: 'user.email ==' }\n",
            "test.yaml:6:",
        ),
        (
            "unknown variable",
            "routes:\n  - name: a\n    upstream: builtin:whoami\n    rules:\n      - name: r\n        allow: { when: 'usr.groups' }\n",
            "test.yaml:6:25: in `when: usr.groups`: unknown variable `usr`",
        ),
        (
            "upstream with a path",
            "routes:\n  - name: a\n    upstream: http://127.0.0.1:8000/app\n",
            "test.yaml:3:15: upstream `http://127.0.0.1:8000/app` has a path",
        ),
        (
            "bad glob",
            "routes:\n  - name: a\n    match: { path: panel/** }\n    upstream: builtin:whoami\n",
            "test.yaml:3:20: path glob `panel/**` must start with `/`",
        ),
        (
            "rule without kind",
            "routes:\n  - name: a\n    upstream: builtin:whoami\n    rules:\n      - name: r\n        grants: [x]\n",
            "test.yaml:5:9: rule \"r\" must have exactly one of",
        ),
        (
            "deny with grants",
            "rules:\n  - name: r\n    deny: {}\n    grants: [x]\n",
            "test.yaml:4:14: a deny rule cannot have `grants`",
        ),
        (
            "bad domain",
            "rules:\n  - name: r\n    allow: { domains: [\"@example.com\"] }\n",
            "invalid email domain `@example.com`",
        ),
        (
            "bad method",
            "routes:\n  - name: a\n    match: { methods: [\"G T\"] }\n    upstream: builtin:whoami\n",
            "invalid HTTP method",
        ),
        (
            "duplicate rule names",
            "rules:\n  - name: r\n    deny: {}\n  - name: r\n    deny: {}\n",
            "test.yaml:4:5: duplicate global rule name \"r\" (first defined at test.yaml:2:5)",
        ),
    ];
    for (name, yaml, want) in cases {
        let err = try_set(yaml).expect_err(name).to_string();
        assert!(err.contains(want), "{name}: want {want:?} in:\n{err}");
        assert!(err.contains("hint: "), "{name}: no hint in:\n{err}");
    }
}

#[test]
fn duplicate_route_names_name_both_files() {
    let a = PolicySource {
        path: PathBuf::from("a.yaml"),
        text: "routes:\n  - name: app\n    match: { path: /a/** }\n    upstream: builtin:whoami\n"
            .into(),
    };
    let b = PolicySource {
        path: PathBuf::from("b.yaml"),
        text:
            "\nroutes:\n  - name: app\n    match: { path: /b/** }\n    upstream: builtin:whoami\n"
                .into(),
    };
    let err = PolicySet::compile(&[b, a]).expect_err("duplicate");
    assert_eq!(err.len(), 1);
    assert_eq!(err.0[0].kind, PolicyErrorKind::Conflict);
    let text = err.to_string();
    assert!(
        text.contains("b.yaml:3:11: duplicate route name \"app\" (first defined at a.yaml:2:11)"),
        "{text}"
    );
}

#[test]
fn ambiguous_routes_are_rejected() {
    let yaml = "routes:\n  - name: a\n    match: { path: /x/** }\n    upstream: builtin:whoami\n  - name: b\n    match: { path: /x/**/ }\n    upstream: builtin:whoami\n";
    let err = try_set(yaml).expect_err("ambiguous").to_string();
    assert!(
        err.contains("route \"b\" matches the same host `*` and path"),
        "{err}"
    );
    let split_by_method = "routes:\n  - name: a\n    match: { path: /x/**, methods: [GET] }\n    upstream: builtin:whoami\n  - name: b\n    match: { path: /x/**, methods: [POST] }\n    upstream: builtin:whoami\n";
    assert!(try_set(split_by_method).is_ok());
}

#[test]
fn every_error_is_reported_at_once() {
    let yaml = "routes:\n  - name: a\n    upstream: ftp://x\n    rules:\n      - name: r\n        allow: { when: 'nope', domains: ['bad domain'] }\n  - name: a\n    upstream: builtin:whoami\n";
    let err = try_set(yaml).expect_err("errors");
    assert!(err.len() >= 4, "{err}");
    let text = err.to_string();
    assert!(
        text.ends_with(&format!("{} policy errors", err.len())),
        "{text}"
    );
}

#[test]
fn no_sources_is_an_error() {
    let err = PolicySet::compile(&[]).expect_err("empty");
    assert!(err.to_string().contains("no policy files"));
}

#[test]
fn comment_only_files_are_empty_not_broken() {
    let ok = PolicySource {
        path: PathBuf::from("a.yaml"),
        text: "# nothing yet\n".into(),
    };
    let routes = PolicySource {
        path: PathBuf::from("b.yaml"),
        text: "routes:\n  - name: a\n    upstream: builtin:whoami\n".into(),
    };
    assert!(PolicySet::compile(&[ok, routes]).is_ok());
}

#[test]
fn basic_header_takes_a_bool_and_reports_where() {
    let route = |value: &str| {
        format!("routes:\n  - name: a\n    upstream: builtin:whoami\n    basic_header: {value}\n")
    };
    for (value, want) in [
        ("maybe", "test.yaml:4:19: invalid boolean"),
        ("1", "test.yaml:4:19: invalid boolean"),
        ("[true]", "test.yaml:4:19: expected string scalar"),
        ("{ on: true }", "test.yaml:4:19: expected string scalar"),
    ] {
        let err = try_set(&route(value)).expect_err(value);
        assert_eq!(err.0[0].kind, PolicyErrorKind::Yaml, "{value}: {err}");
        let text = err.to_string();
        assert!(text.contains(want), "{value}: want {want:?} in:\n{text}");
    }
    let misspelt = "routes:\n  - name: a\n    upstream: builtin:whoami\n    basic_headers: true\n";
    let text = try_set(misspelt).expect_err("unknown key").to_string();
    assert!(
        text.contains("test.yaml:4:5: unknown field `basic_headers`"),
        "{text}"
    );
}

#[test]
fn basic_header_true_needs_basic_auth_in_the_gateway() {
    let source = |value: &str| PolicySource {
        path: PathBuf::from("api.yaml"),
        text: format!(
            "routes:\n  - name: api\n    upstream: builtin:whoami\n    basic_header: {value}\n"
        ),
    };
    let without = Features { basic_auth: false };
    let err = PolicySet::compile_for(&[source("true")], without).expect_err("no basic_auth");
    assert_eq!(err.len(), 1);
    assert_eq!(err.0[0].kind, PolicyErrorKind::Invalid);
    let text = err.to_string();
    assert!(
        text.contains(
            "api.yaml:4:19: `basic_header: true` but gateway.yaml configures no `basic_auth:`"
        ),
        "{text}"
    );
    assert!(text.contains("hint: add a `basic_auth:` section"), "{text}");

    let with = Features { basic_auth: true };
    let accept = PolicySet::compile_for(&[source("true")], with).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        accept.routes().next().unwrap().basic_header,
        BasicHeader::Accept
    );
    // Refusing the header, or not saying, asks nothing of the gateway.
    for (value, want) in [
        ("false", BasicHeader::Refuse),
        ("~", BasicHeader::FollowGateway),
    ] {
        let set =
            PolicySet::compile_for(&[source(value)], without).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.routes().next().unwrap().basic_header, want, "{value}");
    }
}
