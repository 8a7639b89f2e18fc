//! Telemetry after real traffic: the Prometheus text moved for every outcome, the decision log
//! matches the decisions, and no secret reaches any log line at any level.

mod support;

use std::collections::HashSet;

use http::header::{COOKIE, LOCATION};
use http::{HeaderMap, StatusCode};
use portcullis::session::{SessionCodec, SessionConfig};
use support::browser::{Browser, HTML, hidden_field};
use support::gateway::GatewayProcess;
use support::oidc::{CLIENT_SECRET, start_provider_and_gateway};
use support::policy::{self, EVERYONE};
use support::upstream::Upstream;
use url::Url;

const SESSION_SECRET: &str = "telemetry-session-secret-0123456789abcdefghij";
const MASTER_PASSWORD: &str = "master-password-never-logged-42";
const TRIED_PASSWORD: &str = "tried-password-never-logged-17";

#[tokio::test(flavor = "multi_thread")]
async fn metrics_decision_log_and_logs_after_real_traffic() {
    let upstream = Upstream::start().await;
    let staff = "      - name: staff\n        allow: { domains: [example.com] }\n";
    let policy = policy::routes(&[
        policy::route("app", "/app/**", &upstream.url(), staff),
        policy::dead_route(),
    ]);
    // Access tokens expire at once, so every request with a session refreshes it.
    let (idp, gateway, base) = start_provider_and_gateway(1, move |idp, port| {
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
        GatewayProcess::spawn_with_args(dir, &[("RUST_LOG", "trace")], &["--log-format", "json"])
    })
    .await;

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

    // allow (and refreshes), deny, login, error, and a rejected Basic header. Every cookie, state,
    // code and provider token of the logins is kept on the way, to look for in the logs.
    let mut collected = Secrets::new();
    let mut alice = Browser::new();
    let page = login_keeping_secrets(&mut alice, &base, "/app/page", "alice", &mut collected).await;
    assert_eq!(page.status(), StatusCode::OK, "{}", gateway.logs());
    note(&page);
    let again = alice.get(&format!("{base}/app/again"), HTML).await;
    assert_eq!(again.status(), StatusCode::OK);
    note(&again);
    collected.keep_browser(&alice);
    let session_cookie = alice.session_cookie();

    let mut bob = Browser::new();
    let denied = login_keeping_secrets(&mut bob, &base, "/app/page", "bob", &mut collected).await;
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

    // The capability tokens the upstream received, and what the logins left behind.
    let capabilities: HashSet<String> = upstream
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|seen| seen.header("x-auth-capability").map(str::to_owned))
        .collect();
    assert!(!capabilities.is_empty(), "alice's requests carried a token");
    for token in &capabilities {
        collected.add("capability token", token);
    }
    collected.assert_collected();
    collected.assert_absent_from(&logs);
}

/// Values no log line may hold, each with what it is; values shorter than
/// [`Secrets::MIN_LEN`] are too common to search for.
struct Secrets {
    /// Opens the test browsers' session cookies (the test knows the secret), for the provider's
    /// tokens sealed inside.
    codec: SessionCodec,
    values: Vec<(String, String)>,
}

impl Secrets {
    const MIN_LEN: usize = 16;
    /// Length of the head and tail searched for too, so a cut value is found.
    const PIECE: usize = 24;

    fn new() -> Secrets {
        let config = SessionConfig {
            secrets: vec![SESSION_SECRET.to_owned()],
            ..SessionConfig::default()
        };
        Secrets {
            codec: SessionCodec::new(&config).unwrap(),
            values: Vec::new(),
        }
    }

    fn add(&mut self, what: &str, value: &str) {
        if value.len() >= Self::MIN_LEN && !self.values.iter().any(|(_, v)| v == value) {
            self.values.push((what.to_owned(), value.to_owned()));
        }
    }

    /// Every cookie `browser` holds (the gateway's login state, CSRF and session cookies among
    /// them) and the access, refresh and ID tokens in its session, if one opens.
    fn keep_browser(&mut self, browser: &Browser) {
        for (name, value) in &browser.jar {
            self.add(&format!("cookie {name}"), value);
        }
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, browser.cookie_header().parse().unwrap());
        let Some(session) = self.codec.open(&headers) else {
            return;
        };
        if let Some(tokens) = &session.tokens {
            self.add("access token", &tokens.access_token);
            for (what, token) in [
                ("refresh token", &tokens.refresh_token),
                ("ID token", &tokens.id_token),
            ] {
                if let Some(token) = token {
                    self.add(what, token);
                }
            }
        }
    }

    /// The flow produced every kind of value, so the search below means something.
    fn assert_collected(&self) {
        for what in [
            "access token",
            "refresh token",
            "ID token",
            "state parameter",
            "authorization code",
            "cookie _portcullis_login",
            "cookie _portcullis",
            "capability token",
        ] {
            assert!(
                self.values.iter().any(|(w, _)| w == what),
                "no {what} collected: {:?}",
                self.values.iter().map(|(w, _)| w).collect::<Vec<_>>()
            );
        }
    }

    /// Searches the logs for each value whole, for its head and tail, and for a JWT's payload
    /// and signature apart (its header is the same for every token).
    fn assert_absent_from(&self, logs: &str) {
        for (what, value) in &self.values {
            let mut pieces = vec![value.as_str()];
            let segments: Vec<&str> = value.split('.').collect();
            if segments.len() == 3 {
                pieces.extend(&segments[1..]);
            } else if value.len() > Self::PIECE && value.is_ascii() {
                pieces.push(&value[..Self::PIECE]);
                pieces.push(&value[value.len() - Self::PIECE..]);
            }
            for piece in pieces.into_iter().filter(|p| p.len() >= Self::MIN_LEN) {
                let line = logs.lines().find(|line| line.contains(piece));
                assert!(line.is_none(), "the {what} appears in a log line: {line:?}");
            }
        }
    }
}

/// [`Browser::login_through`] step by step, keeping what each step hands the browser: the login
/// state cookie and `state` (alive only between start and callback), the authorization code,
/// and the session with the provider's first tokens (the next request refreshes them).
async fn login_keeping_secrets(
    browser: &mut Browser,
    base: &str,
    path: &str,
    user: &str,
    secrets: &mut Secrets,
) -> reqwest::Response {
    let location =
        |response: &reqwest::Response| response.headers()[LOCATION].to_str().unwrap().to_owned();
    let query = |url: &str, key: &str| {
        Url::parse(url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {key} in {url}"))
    };
    let first = browser.get(&format!("{base}{path}"), HTML).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let start = location(&first);
    let mut to_provider = browser.get(&format!("{base}{start}"), HTML).await;
    secrets.keep_browser(browser);
    if to_provider.status() == StatusCode::OK {
        // The login page with a choice: follow the first provider's button.
        let page = to_provider.text().await.unwrap();
        let link = support::browser::provider_links(&page)
            .into_iter()
            .next()
            .expect("a provider button");
        to_provider = browser.get(&format!("{base}{link}"), HTML).await;
        secrets.keep_browser(browser);
    }
    assert_eq!(to_provider.status(), StatusCode::FOUND);
    let authorize = location(&to_provider);
    secrets.add("state parameter", &query(&authorize, "state"));
    let callback = browser
        .sign_in(&authorize, user, &format!("{base}/oauth2/callback"))
        .await;
    secrets.add(
        "authorization code",
        &query(&format!("{base}{callback}"), "code"),
    );
    let back = browser.get(&format!("{base}{callback}"), HTML).await;
    assert_eq!(back.status(), StatusCode::FOUND);
    secrets.keep_browser(browser);
    let page = browser
        .get(&format!("{base}{}", location(&back)), HTML)
        .await;
    secrets.keep_browser(browser);
    page
}

// ---------------------------------------------------------------------------------------------
// The separate metrics listener, refusals without a decision, and the request id end to end.

/// A gateway in front of `upstream`: `app` (`/app/**`) admits everyone, `dead` (`/dead/**`)
/// points at a closed port; `extra` is more gateway.yaml. Nothing else has a route.
async fn open_gateway(upstream: &Upstream, extra: &str) -> GatewayProcess {
    let policy = policy::routes(&[
        policy::route("app", "/app/**", &upstream.url(), EVERYONE),
        policy::dead_route(),
    ]);
    GatewayProcess::start_async(extra, &[("app.yaml", &policy)]).await
}

/// `/metrics` on `addr`, parsed (panics on any deviation from the exposition format).
async fn scrape(addr: std::net::SocketAddr) -> (String, Vec<support::metrics::Sample>) {
    let reply = support::http::get(&format!("http://{addr}/metrics"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        reply.headers
    );
    let samples = support::metrics::parse(&reply.body);
    (reply.body, samples)
}

fn requests(
    samples: &[support::metrics::Sample],
    route: &str,
    method_class: &str,
    outcome: &str,
    status: &str,
) -> Option<f64> {
    support::metrics::value(
        samples,
        "portcullis_requests_total",
        &[
            ("route", route),
            ("method_class", method_class),
            ("outcome", outcome),
            ("status", status),
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_listen_on_port_0_serves_the_bound_port_and_the_main_listener_decides_metrics() {
    let upstream = Upstream::start().await;
    let gateway = open_gateway(&upstream, "metrics_listen: 127.0.0.1:0\n").await;
    let metrics_addr = gateway.metrics_addr();
    assert_ne!(
        metrics_addr.port(),
        0,
        "the printed address is the bound one"
    );
    assert_ne!(metrics_addr, gateway.addr);

    let allowed = support::http::get(&gateway.url("/app/page"), &[]).await;
    assert_eq!(allowed.status, 200);

    // On the main listener `/metrics` is no endpoint: an ordinary path, decided by the
    // policies. No route matches it, so it is denied (fail closed) and counted as such.
    let main =
        support::http::get(&gateway.url("/metrics"), &[("accept", "application/json")]).await;
    assert_eq!(main.status, 403, "{}", main.body);
    assert!(!main.body.contains("portcullis_"), "{}", main.body);
    assert!(
        upstream
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|seen| seen.path_and_query != "/metrics")
    );

    let (text, samples) = scrape(metrics_addr).await;
    assert_eq!(
        requests(&samples, "app", "read", "allow", "200"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        requests(&samples, "-", "read", "deny", "403"),
        Some(1.0),
        "the main listener's /metrics was decided:\n{text}"
    );
    assert_eq!(
        support::metrics::value(&samples, "portcullis_policy_generation", &[]),
        Some(1.0),
        "{text}"
    );
    // Scrapes of the metrics listener are not requests: the counts did not move.
    let (_, again) = scrape(metrics_addr).await;
    assert_eq!(requests(&again, "-", "read", "deny", "403"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_refused_without_a_decision_are_counted_without_a_route() {
    let upstream = Upstream::start().await;
    let hash = portcullis::identity::basic::hash_password("alice-password").unwrap();
    let policy = policy::routes(&[policy::route("app", "/app/**", &upstream.url(), EVERYONE)]);
    // One failure locks a username for the window: the next attempt is a 429.
    let gateway = tokio::task::spawn_blocking(move || {
        let dir = GatewayProcess::prepare(
            "127.0.0.1:0",
            "basic_auth:\n  credentials_file: users.yaml\n  rate_limit: { max_failures: 1, max_failures_per_ip: 50, window_seconds: 60, max_backoff_seconds: 60 }\n",
            &[("app.yaml", &policy)],
        );
        std::fs::write(
            dir.path().join("users.yaml"),
            format!("users:\n  alice:\n    password_hash: \"{hash}\"\n    email: alice@example.com\n"),
        )
        .unwrap();
        GatewayProcess::spawn(dir, &[])
    })
    .await
    .unwrap();
    let base = format!("http://{}", gateway.addr);

    // A path that cannot be normalized: 400 before any route is matched.
    let bad = support::http::get(&gateway.url("/app/a%2Fb"), &[]).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(upstream.seen.lock().unwrap().is_empty());

    // The login form: a wrong password (401), then the rate limit (429).
    let mut browser = Browser::new();
    let page = browser
        .get(&format!("{base}/oauth2/start?rd=/app/home"), HTML)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let csrf = hidden_field(&html, "csrf_token").expect("a CSRF token");
    let mut statuses = Vec::new();
    for password in ["wrong-password", "alice-password"] {
        let response = browser
            .http
            .post(format!("{base}/oauth2/login"))
            .header("cookie", browser.cookie_header())
            .header("accept", HTML)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("username", "alice"),
                ("password", password),
                ("rd", "/app/home"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS],
        "{}",
        gateway.logs()
    );

    let (text, samples) = scrape(gateway.addr).await;
    for (method_class, status) in [("read", "400"), ("write", "401"), ("write", "429")] {
        assert_eq!(
            requests(&samples, "-", method_class, "deny", status),
            Some(1.0),
            "no route-less deny sample with status {status}:\n{text}"
        );
    }
    // The login page itself (200) and the scrape are answers, not refusals.
    assert!(
        !samples.iter().any(|s| s.name == "portcullis_requests_total"
            && s.labels.iter().any(|(k, v)| k == "status" && v == "200")),
        "{text}"
    );
    assert!(
        !text.contains("a%2Fb"),
        "label values are bounded: no paths"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incoming_request_id_is_kept_end_to_end_and_an_unusable_one_replaced() {
    const ID: &str = "test-id-123";
    let upstream = Upstream::start().await;
    let gateway = open_gateway(&upstream, "").await;
    let id_of =
        |reply: &support::http::Reply| reply.headers["x-request-id"].to_str().unwrap().to_owned();

    // Allowed: back to the client and on to the upstream.
    let allowed = support::http::get(&gateway.url("/app/page"), &[("x-request-id", ID)]).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(id_of(&allowed), ID);
    assert_eq!(upstream.last().header("x-request-id"), Some(ID));

    // Refused: on the error page and in the JSON error, as well as in the header.
    let failed = support::http::get(
        &gateway.url("/dead/x"),
        &[("x-request-id", ID), ("accept", HTML)],
    )
    .await;
    assert_eq!(failed.status, 502);
    assert_eq!(id_of(&failed), ID);
    assert!(
        failed.body.contains(ID),
        "the 502 page shows the id:\n{}",
        failed.body
    );
    let denied = support::http::get(
        &gateway.url("/nowhere"),
        &[("x-request-id", ID), ("accept", "application/json")],
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(id_of(&denied), ID);
    let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
    assert_eq!(body["request_id"], ID, "{body}");
    let bad_path = support::http::get(
        &gateway.url("/app/a%2Fb"),
        &[("x-request-id", ID), ("accept", "application/json")],
    )
    .await;
    assert_eq!(bad_path.status, 400);
    assert_eq!(id_of(&bad_path), ID);

    // Unusable ids are replaced by a fresh one, which the upstream receives too.
    let too_long = "a".repeat(portcullis::telemetry::MAX_REQUEST_ID_LEN + 1);
    let unusable = [
        ("too long", too_long.as_str()),
        ("a space", "test id"),
        ("a tab", "test\tid"),
    ];
    let mut fresh = HashSet::new();
    for (what, sent) in unusable {
        let reply = support::http::get(&gateway.url("/app/page"), &[("x-request-id", sent)]).await;
        assert_eq!(reply.status, 200, "{what}");
        let id = id_of(&reply);
        assert_ne!(id, sent, "{what}");
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{what}: {id:?}"
        );
        assert_eq!(
            upstream.last().header("x-request-id"),
            Some(id.as_str()),
            "{what}"
        );
        fresh.insert(id);
    }
    assert_eq!(fresh.len(), unusable.len(), "each request gets its own id");
}
