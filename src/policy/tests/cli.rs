use std::fs;
use std::path::Path;

use super::super::cli;

fn policies_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
}

fn run(f: impl FnOnce(&mut Vec<u8>) -> bool) -> (bool, String) {
    let mut out = Vec::new();
    let ok = f(&mut out);
    (ok, String::from_utf8(out).expect("utf-8"))
}

#[test]
fn shipped_policies_check_and_pass_their_tests() {
    let (ok, text) = run(|o| cli::check(policies_dir(), o));
    assert!(ok, "{text}");
    assert!(text.starts_with("ok: "), "{text}");
    let (ok, text) = run(|o| cli::test(policies_dir(), o));
    assert!(ok, "{text}");
    assert!(text.trim_end().ends_with(" passed, 0 failed"), "{text}");
}

#[test]
fn check_lists_every_error_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("a.yaml"),
        "routes:\n  - name: a\n    upstream: nope\n",
    )
    .expect("write");
    fs::write(
        dir.path().join("b.yaml"),
        "rules: [{ name: r, deny: { when: 'x' } }]\n",
    )
    .expect("write");
    let (ok, text) = run(|o| cli::check(dir.path(), o));
    assert!(!ok);
    assert!(text.contains("a.yaml:3:15: "), "{text}");
    assert!(text.contains("b.yaml:1:"), "{text}");
    assert!(text.contains("hint: "), "{text}");
    let empty = tempfile::tempdir().expect("tempdir");
    let (ok, text) = run(|o| cli::check(empty.path(), o));
    assert!(!ok);
    assert!(text.contains("no policy files in"), "{text}");
}

#[test]
fn failing_test_cases_are_reported_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("p.yaml"), "routes:\n  - name: a\n    upstream: builtin:whoami\n    rules: [{ name: g, guest: true }]\n").expect("write");
    fs::write(
        dir.path().join("p_test.yaml"),
        "cases:\n  - name: right\n    request: GET http://h/\n    expect: { outcome: allow, rule: g }\n  - name: wrong\n    request: GET http://h/\n    expect: { outcome: deny }\n",
    )
    .expect("write");
    let (ok, text) = run(|o| cli::test(dir.path(), o));
    assert!(!ok);
    assert!(
        text.contains("FAIL ") && text.contains("p_test.yaml:5: wrong"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("1 passed, 1 failed"), "{text}");
}

#[test]
fn explain_prints_the_decision_and_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = dir.path().join("ana.yaml");
    fs::write(
        &user,
        "sub: ana\nemail: ana@example.com\nemail_verified: true\ngroups: [analysts]\n",
    )
    .expect("write");
    let (ok, text) = run(|o| {
        cli::explain(
            policies_dir(),
            Some(&user),
            "GET https://localhost/panel/app",
            o,
        )
    });
    assert!(ok, "{text}");
    assert!(
        text.contains("decision: allow route=panel rule=\"analysts at example.com\""),
        "{text}"
    );
    assert!(text.contains("no contractors"), "{text}");
    let (ok, text) =
        run(|o| cli::explain(policies_dir(), None, "GET https://localhost/panel/app", o));
    assert!(ok, "{text}");
    assert!(text.contains("decision: login"), "{text}");
    let (ok, _) = run(|o| cli::explain(policies_dir(), None, "nonsense", o));
    assert!(!ok);
}
