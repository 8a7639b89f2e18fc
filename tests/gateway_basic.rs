//! Basic auth through the gateway binary: the login form with its CSRF token, wrong
//! passwords, the rate limit, and `Authorization: Basic` for API clients.

mod support;

use std::collections::HashMap;

use http::StatusCode;
use support::browser::{Browser, HTML};
use support::gateway::GatewayProcess;
use support::upstream::Upstream;

struct Setup {
    upstream: Upstream,
    gateway: GatewayProcess,
    base: String,
}

async fn setup() -> Setup {
    let upstream = Upstream::start().await;
    let hash = portcullis::identity::basic::hash_password("alice-password").unwrap();
    let policy = format!(
        "routes:\n  - name: app\n    match: {{ path: \"/app/**\" }}\n    upstream: {}\n    rules:\n      - name: analysts\n        allow: {{ groups: [analysts] }}\n",
        upstream.url()
    );
    let gateway = tokio::task::spawn_blocking(move || {
        let config = "basic_auth:\n  credentials_file: users.yaml\n  allow_header: true\n  rate_limit: { max_failures: 3, max_failures_per_ip: 50 }\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users.yaml"),
            format!("users:\n  alice:\n    password_hash: \"{hash}\"\n    email: alice@example.com\n    email_verified: true\n    groups: [analysts]\n"),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/app.yaml"), &policy).unwrap();
        std::fs::write(
            dir.path().join("gateway.yaml"),
            format!("listen: 127.0.0.1:0\npolicies: policies\n{config}"),
        )
        .unwrap();
        GatewayProcess::spawn(dir, &[])
    })
    .await
    .unwrap();
    let base = format!("http://{}", gateway.addr);
    Setup {
        upstream,
        gateway,
        base,
    }
}

/// Opens the login page and returns the hidden CSRF token of its form.
async fn login_form(browser: &mut Browser, base: &str) -> String {
    let page = browser
        .get(&format!("{base}/oauth2/start?rd=/app/home"), HTML)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = html
        .find(marker)
        .expect("the login form carries a CSRF token")
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

async fn post_login(
    browser: &mut Browser,
    base: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let form: HashMap<&str, &str> = fields.iter().copied().collect();
    let response = browser
        .http
        .post(format!("{base}/oauth2/login"))
        .header("cookie", browser.cookie_header())
        .header("accept", HTML)
        .form(&form)
        .send()
        .await
        .unwrap();
    browser.keep_cookies(response.headers());
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn login_form_creates_a_session_and_the_upstream_sees_the_user() {
    let setup = setup().await;
    let mut browser = Browser::new();
    let csrf = login_form(&mut browser, &setup.base).await;
    let response = post_login(
        &mut browser,
        &setup.base,
        &[
            ("csrf_token", &csrf),
            ("username", "alice"),
            ("password", "alice-password"),
            ("rd", "/app/home"),
        ],
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "{}",
        setup.gateway.logs()
    );
    assert_eq!(response.headers()["location"], "/app/home");
    let page = browser.get(&format!("{}/app/home", setup.base), HTML).await;
    assert_eq!(page.status(), StatusCode::OK);
    let seen = setup.upstream.last();
    assert_eq!(seen.header("x-auth-request-user"), Some("alice"));
    assert_eq!(seen.header("x-auth-request-groups"), Some("analysts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_missing_csrf_and_the_rate_limit_are_refused() {
    let setup = setup().await;
    let mut browser = Browser::new();
    let csrf = login_form(&mut browser, &setup.base).await;

    let no_csrf = post_login(
        &mut browser,
        &setup.base,
        &[("username", "alice"), ("password", "alice-password")],
    )
    .await;
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);

    for _ in 0..3 {
        let wrong = post_login(
            &mut browser,
            &setup.base,
            &[
                ("csrf_token", &csrf),
                ("username", "alice"),
                ("password", "nope"),
            ],
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(
            wrong
                .text()
                .await
                .unwrap()
                .contains("Wrong username or password")
        );
    }
    let limited = post_login(
        &mut browser,
        &setup.base,
        &[
            ("csrf_token", &csrf),
            ("username", "alice"),
            ("password", "alice-password"),
        ],
    )
    .await;
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits out the lockout"
    );
    assert!(limited.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_basic_header_admits_api_clients() {
    let setup = setup().await;
    let client = Browser::new().http;
    let url = format!("{}/app/api", setup.base);
    let ok = client
        .get(&url)
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let seen = setup.upstream.last();
    assert_eq!(seen.header("x-auth-request-user"), Some("alice"));
    assert_eq!(
        seen.header("authorization"),
        None,
        "the password never reaches the upstream"
    );

    let wrong = client
        .get(&url)
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().contains_key("www-authenticate"));
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
