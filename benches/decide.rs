//! `PolicySet::decide` (route lookup, rule walk, CEL context built per call) at 10, 100, 1,000
//! and 10,000 rules, 10 rules per route: a route deny rule on groups, eight allow rules that
//! fail on groups, and the matching allow rule with a CEL `when` over `request` and `user`; plus
//! one global CEL deny rule (contractors). So every decision walks 10 rules and evaluates two CEL
//! expressions against a freshly built context.

use std::fmt::Write;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis::identity::Identity;
use portcullis::policy::{Outcome, PolicySet, PolicySource, RequestInfo, Scheme};

/// The allocator the gateway binary runs with (src/main.rs), so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn policy(rules: usize) -> PolicySet {
    let routes = rules.div_ceil(10);
    let mut text = String::from(
        "rules:\n  - name: no contractors\n    deny:\n      when: 'user.email.endsWith(\"@contractors.example.com\")'\nroutes:\n",
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
            "      - name: analysts\n        allow:\n          domains: [example.com]\n          groups: [analysts]\n          when: 'request.method in [\"GET\", \"POST\"] && user.email_verified'\n        grants: [read]\n"
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
    let mut group = c.benchmark_group("decide");
    for rules in [10usize, 100, 1_000, 10_000] {
        let set = policy(rules);
        let routes = rules.div_ceil(10);
        let req = request(format!("/app{}/dashboard/view", routes / 2));
        assert_eq!(set.decide(Some(&user), &req).outcome, Outcome::Allow);
        group.bench_with_input(BenchmarkId::from_parameter(rules), &req, |b, req| {
            b.iter(|| black_box(set.decide(black_box(Some(&user)), black_box(req))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
