//! `portcullis check | test | explain` as library functions: each writes its report to `out`
//! and returns whether it succeeded, so `main` maps the result to the exit code.

use std::io::Write;
use std::path::Path;

use super::load::{is_test_file, list};
use super::testfile::{TestFile, TestUser, parse_request_line};
use super::{Outcome, PolicySet};
use crate::identity::Identity;

/// Compiles every policy in `dir` and reports every error at once.
pub fn check(dir: &Path, out: &mut dyn Write) -> bool {
    match PolicySet::load_dir(dir) {
        Ok(set) => {
            let _ = writeln!(
                out,
                "ok: {} file(s), {} route(s), {} rule(s) in {}",
                set.files().len(),
                set.routes().count(),
                set.rule_count(),
                dir.display()
            );
            true
        }
        Err(errors) => {
            let _ = writeln!(out, "{errors}");
            false
        }
    }
}

/// Runs every `*_test.yaml` in `dir` against the policies of `dir`; ends with
/// `N passed, M failed`.
pub fn test(dir: &Path, out: &mut dyn Write) -> bool {
    let set = match PolicySet::load_dir(dir) {
        Ok(set) => set,
        Err(errors) => {
            let _ = writeln!(out, "{errors}");
            let _ = writeln!(out, "0 passed, 0 failed (policies do not compile)");
            return false;
        }
    };
    let files = match list(dir, is_test_file) {
        Ok(files) => files,
        Err(errors) => {
            let _ = writeln!(out, "{errors}");
            return false;
        }
    };
    let (mut passed, mut failed, mut broken) = (0usize, 0usize, 0usize);
    for file in &files {
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_saphyr::from_str::<TestFile>(&text).map_err(|e| locate(&e)));
        let cases = match parsed {
            Ok(t) => t.cases,
            Err(e) => {
                let _ = writeln!(out, "ERROR {}:{e}", file.display());
                broken += 1;
                continue;
            }
        };
        for case in cases {
            let at = format!("{}:{}", file.display(), case.referenced.line());
            let case = case.value;
            let request =
                match parse_request_line(&case.request, &case.headers, case.ip, case.websocket) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = writeln!(out, "FAIL {at}: {}: {e}", case.name);
                        failed += 1;
                        continue;
                    }
                };
            let user: Option<Identity> = case.user.map(Identity::from);
            let decision = set.decide(user.as_ref(), &request);
            let mut problems = Vec::new();
            let want: Outcome = case.expect.outcome.into();
            if decision.outcome != want {
                problems.push(format!("outcome {} (want {want})", decision.outcome));
            }
            if let Some(rule) = &case.expect.rule {
                let got = decision.rule.as_deref().unwrap_or("");
                if got != rule {
                    problems.push(format!("rule {got:?} (want {rule:?})"));
                }
            }
            if let Some(grants) = &case.expect.grants
                && decision.grants.as_ref() != grants.as_slice()
            {
                problems.push(format!("grants {:?} (want {grants:?})", decision.grants));
            }
            if problems.is_empty() {
                passed += 1;
                let _ = writeln!(out, "ok   {at}: {}", case.name);
            } else {
                failed += 1;
                let _ = writeln!(
                    out,
                    "FAIL {at}: {}: got {} [{}]",
                    case.name,
                    problems.join(", "),
                    decision.reason
                );
            }
        }
    }
    if files.is_empty() {
        let _ = writeln!(out, "no *_test.yaml files in {}", dir.display());
    }
    if broken > 0 {
        let _ = writeln!(out, "{broken} test file(s) could not be read");
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    failed == 0 && broken == 0 && !files.is_empty()
}

fn locate(e: &serde_saphyr::Error) -> String {
    let message = e.without_snippet().to_string();
    let first = message.lines().next().unwrap_or("invalid YAML");
    match e.location() {
        Some(l) => format!("{}:{}: {first}", l.line(), l.column()),
        None => format!(" {first}"),
    }
}

/// Decides `request_line` (`GET https://host/path?q`) as `user_yaml` (absent: anonymous) and
/// prints the decision and the trace of rules tried.
pub fn explain(
    dir: &Path,
    user_yaml: Option<&Path>,
    request_line: &str,
    out: &mut dyn Write,
) -> bool {
    let set = match PolicySet::load_dir(dir) {
        Ok(set) => set,
        Err(errors) => {
            let _ = writeln!(out, "{errors}");
            return false;
        }
    };
    explain_with(&set, user_yaml, request_line, out)
}

pub(crate) fn explain_with(
    set: &PolicySet,
    user_yaml: Option<&Path>,
    request_line: &str,
    out: &mut dyn Write,
) -> bool {
    let user = match user_yaml.map(read_user).transpose() {
        Ok(u) => u,
        Err(e) => {
            let _ = writeln!(out, "{e}");
            return false;
        }
    };
    let request = match parse_request_line(request_line, &Default::default(), None, false) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "{e}");
            return false;
        }
    };
    let _ = writeln!(
        out,
        "request: {} {}://{}{}{} as {}",
        request.method,
        request.scheme.as_str(),
        request.host,
        request.path,
        request
            .query
            .as_ref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default(),
        user.as_ref().map_or("anonymous".to_owned(), |u| format!(
            "{:?}",
            u.email.as_deref().unwrap_or(&u.subject)
        ))
    );
    let explanation = set.explain(user.as_ref(), &request);
    let _ = write!(out, "{explanation}");
    true
}

fn read_user(path: &Path) -> Result<Identity, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read user file: {e}", path.display()))?;
    serde_saphyr::from_str::<TestUser>(&text)
        .map(Identity::from)
        .map_err(|e| format!("{}:{}", path.display(), locate(&e)))
}
