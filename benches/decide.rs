//! `PolicySet::decide` (route lookup, rule walk, CEL) at 10, 100, 1,000 and 10,000 rules, 10
//! rules per route: a route deny rule on groups, eight allow rules that fail on groups, and the
//! matching allow rule with a CEL `when` over `request` and `user`; plus one global CEL deny rule
//! (contractors). So every decision walks 10 rules and asks for two CEL results.
//!
//! Group `decide`: the same request again and again, so both results come from the `when:`
//! memo (what a browser's repeated requests get). Group `decide_evaluated`: the same policy with
//! `now` read in both expressions, which are then never remembered: two full CEL evaluations
//! against a freshly built context per decision. Group `decide_evaluated_header`: the same with
//! a header read instead of `now`, also evaluated every time.

use std::fmt::Write;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis::identity::Identity;
use portcullis::policy::{Outcome, PolicySet, PolicySource, RequestInfo, Scheme};

/// The allocator the gateway binary runs with (src/main.rs), so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Makes a `when:` read `now` (always true), so its result is never remembered.
const READS_NOW: &str = " && now > timestamp(\"2000-01-01T00:00:00Z\")";

/// Makes a `when:` read a header (always true): never remembered either, but no timestamp
/// literal to parse, so this is the plain cost of building the context and evaluating.
const READS_HEADER: &str = " && request.headers[\"user-agent\"] != \"blocked\"";

fn policy(rules: usize, when_suffix: &str) -> PolicySet {
    let routes = rules.div_ceil(10);
    let mut text = format!(
        "rules:\n  - name: no contractors\n    deny:\n      when: 'user.email.endsWith(\"@contractors.example.com\"){when_suffix}'\nroutes:\n",
    );
    for r in 0..routes {
        let _ = write!(
            text,
            "  - name: app{r}\n    match: {{ path: /app{r}/** }}\n    upstream: http://127.0.0.1:{}\n    rules:\n      - name: blocked\n        deny: {{ groups: [suspended] }}\n",
            8000 + r % 1000
        );
        for k in 0..8 {
            let _ = write!(
                text,
                "      - name: team{k}\n        allow: {{ groups: [team{k}], domains: [example.com] }}\n"
            );
        }
        let _ = write!(
            text,
            "      - name: analysts\n        allow:\n          domains: [example.com]\n          groups: [analysts]\n          when: 'request.method in [\"GET\", \"POST\"] && user.email_verified{when_suffix}'\n        grants: [read]\n"
        );
    }
    PolicySet::compile(&[PolicySource {
        path: PathBuf::from("bench.yaml"),
        text,
    }])
    .expect("bench policy compiles")
}

fn request(path: String) -> RequestInfo {
    let mut headers = http::HeaderMap::new();
    headers.insert("user-agent", http::HeaderValue::from_static("bench"));
    headers.insert("accept", http::HeaderValue::from_static("text/html"));
    RequestInfo {
        method: http::Method::GET,
        scheme: Scheme::Https,
        host: "app.example.com".into(),
        path,
        query: Some("x=1".into()),
        headers,
        websocket: false,
        ip: "10.1.2.3".parse().expect("ip"),
    }
}

fn bench(c: &mut Criterion) {
    let user = Identity {
        subject: "ana".into(),
        email: Some("ana@example.com".into()),
        email_verified: true,
        groups: vec!["staff".into(), "analysts".into()],
        provider: "google".into(),
        ..Identity::default()
    };
    for (name, when_suffix) in [
        ("decide", ""),
        ("decide_evaluated", READS_NOW),
        ("decide_evaluated_header", READS_HEADER),
    ] {
        let mut group = c.benchmark_group(name);
        for rules in [10usize, 100, 1_000, 10_000] {
            let set = policy(rules, when_suffix);
            let routes = rules.div_ceil(10);
            let req = request(format!("/app{}/dashboard/view", routes / 2));
            assert_eq!(set.decide(Some(&user), &req).outcome, Outcome::Allow);
            group.bench_with_input(BenchmarkId::from_parameter(rules), &req, |b, req| {
                b.iter(|| black_box(set.decide(black_box(Some(&user)), black_box(req))))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
