//! Telemetry after real traffic: the Prometheus text moved for every outcome, the decision log
//! matches the decisions, and no secret reaches any log line at any level.

mod support;

use std::collections::HashSet;

use http::StatusCode;
use support::browser::{Browser, HTML};
use support::gateway::GatewayProcess;
use support::oidc::{CLIENT_SECRET, OidcProvider, free_port};
use support::upstream::Upstream;

const SESSION_SECRET: &str = "telemetry-session-secret-0123456789abcdefghij";
const MASTER_PASSWORD: &str = "master-password-never-logged-42";
const TRIED_PASSWORD: &str = "tried-password-never-logged-17";

#[tokio::test(flavor = "multi_thread")]
async fn metrics_decision_log_and_logs_after_real_traffic() {
    let upstream = Upstream::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect_uri = format!("{base}/oauth2/callback");
    let policy = format!(
        r#"
routes:
  - name: app
    match: {{ path: "/app/**" }}
    upstream: {upstream}
    rules:
      - name: staff
        allow: {{ domains: [example.com] }}
  - name: dead
    match: {{ path: "/dead/**" }}
    upstream: http://127.0.0.1:1
    rules:
      - name: everyone
        guest: true
"#,
        upstream = upstream.url()
    );
    let (idp, gateway) = tokio::task::spawn_blocking(move || {
        // Access tokens expire at once, so every request with a session refreshes it.
        let idp = OidcProvider::start(&redirect_uri, 1);
        let config = idp.gateway_config(port, SESSION_SECRET)
            + &format!(
                r#"basic_auth:
  master_password: "{MASTER_PASSWORD}"
  allow_header: true
decision_log:
  path: decisions.jsonl
  sample_allows: 1.0
"#
            );
        let dir = GatewayProcess::prepare(
            &format!("127.0.0.1:{port}"),
            &config,
            &[("app.yaml", &policy)],
        );
        // Everything, at every level, as JSON lines.
        let gateway = GatewayProcess::spawn_with_args(
            dir,
            &[("RUST_LOG", "trace")],
            &["--log-format", "json"],
        );
        (idp, gateway)
    })
    .await
    .unwrap();

    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let mut request_ids = HashSet::new();
    let mut note = |response: &reqwest::Response| {
        request_ids.insert(id_of(response));
    };

    // allow (and refreshes), deny, login, error, and a rejected Basic header.
    let mut alice = Browser::new();
    let page = alice.login_through(&base, "/app/page", "alice").await;
    assert_eq!(page.status(), StatusCode::OK, "{}", gateway.logs());
    note(&page);
    let again = alice.get(&format!("{base}/app/again"), HTML).await;
    assert_eq!(again.status(), StatusCode::OK);
    note(&again);
    let session_cookie = alice.jar.get("_portcullis").cloned().unwrap();

    let mut bob = Browser::new();
    let denied = bob.login_through(&base, "/app/page", "bob").await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    note(&denied);

    let anonymous = Browser::new()
        .get(&format!("{base}/app/api"), "application/json")
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    note(&anonymous);
    let failed = Browser::new()
        .get(&format!("{base}/dead/x"), "application/json")
        .await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    note(&failed);
    let wrong = Browser::new()
        .http
        .get(format!("{base}/app/api"))
        .basic_auth("mallory", Some(TRIED_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (failed_id, wrong_id) = (id_of(&failed), id_of(&wrong));

    // Metrics: valid exposition text, and a sample for each outcome.
    let metrics = Browser::new()
        .get(&format!("{base}/metrics"), "text/plain")
        .await
        .text()
        .await
        .unwrap();
    let samples = support::metrics::parse(&metrics);
    let value =
        |name: &str, labels: &[(&str, &str)]| support::metrics::value(&samples, name, labels);
    let has = |name: &str, label: (&str, &str)| {
        samples.iter().any(|s| {
            s.name == name
                && s.labels
                    .iter()
                    .any(|(k, v)| (k.as_str(), v.as_str()) == label)
        })
    };
    for outcome in ["allow", "deny", "login", "error"] {
        assert!(
            has("portcullis_requests_total", ("outcome", outcome)),
            "no requests_total sample with outcome {outcome}:\n{metrics}"
        );
    }
    // The startup load counts: the serving generation is published from the first scrape on.
    assert_eq!(
        value("portcullis_policy_generation", &[]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value("portcullis_policy_reloads_total", &[("result", "ok")]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value(
            "portcullis_logins_total",
            &[("provider", "test"), ("result", "ok")]
        ),
        Some(2.0),
        "alice and bob logged in:\n{metrics}"
    );
    assert_eq!(
        value(
            "portcullis_logins_total",
            &[("provider", "basic"), ("result", "invalid")]
        ),
        Some(1.0),
        "mallory's wrong Basic password:\n{metrics}"
    );
    assert!(
        value("portcullis_token_refreshes_total", &[("result", "ok")]).is_some_and(|n| n >= 1.0),
        "alice's second request refreshed:\n{metrics}"
    );
    assert!(
        value("portcullis_capability_minted_total", &[]).is_some_and(|n| n >= 1.0),
        "alice's allowed requests carry a token:\n{metrics}"
    );
    assert!(
        has(
            "portcullis_decision_duration_seconds_bucket",
            ("le", "+Inf")
        ),
        "{metrics}"
    );
    assert!(
        has(
            "portcullis_upstream_duration_seconds_bucket",
            ("route", "app")
        ),
        "{metrics}"
    );
    assert!(
        !metrics.contains("/app/page"),
        "label values are bounded: no paths"
    );

    // The decision log: one JSON line per decision, all ids known.
    let log_path = gateway.dir.path().join("decisions.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let lines: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        if lines.iter().any(|l| l["outcome"] == "error") || std::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    for outcome in ["allow", "deny", "login", "error"] {
        assert!(
            lines.iter().any(|l| l["outcome"] == outcome),
            "no {outcome} line in {lines:?}"
        );
    }
    for id in &request_ids {
        assert!(
            lines.iter().any(|l| l["request_id"] == id.as_str()),
            "request {id} has no decision line"
        );
    }
    let deny = lines.iter().find(|l| l["outcome"] == "deny").unwrap();
    assert_eq!(deny["route"], "app");
    assert_eq!(deny["status"], 403);
    assert!(deny["subject"].is_string());

    // No secret in any log line, at trace level.
    drop(idp);
    let logs = gateway.logs();
    assert!(logs.lines().count() > 20, "trace logging produced lines");
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    // Every line a request logs carries its id: the proxied path's own events name it, the
    // branches that log (login, Basic, refresh) run in the request span.
    let json_lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let logged = |message: &str, id_at: [&str; 2], id: Option<&str>| {
        json_lines.iter().any(|l| {
            let field = &l[id_at[0]][id_at[1]];
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
                && id.map_or(field.is_string(), |id| field == id)
        })
    };
    assert!(
        logged(
            "request refused",
            ["fields", "request_id"],
            Some(&failed_id)
        ),
        "{logs}"
    );
    assert!(
        logged(
            "basic login failed",
            ["span", "request_id"],
            Some(&wrong_id)
        ),
        "{logs}"
    );
    assert!(
        logged("login succeeded", ["span", "request_id"], None),
        "{logs}"
    );

    let secrets = [
        ("session secret", SESSION_SECRET),
        ("client secret", CLIENT_SECRET),
        ("master password", MASTER_PASSWORD),
        ("tried password", TRIED_PASSWORD),
        ("alice's password", "alice-password"),
        (
            "session cookie",
            &session_cookie[..40.min(session_cookie.len())],
        ),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(secret), "the {what} appears in the logs");
    }
}
