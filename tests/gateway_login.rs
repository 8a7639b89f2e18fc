//! Login through the gateway binary with a real OpenID provider (`oidc-provider` on
//! 127.0.0.1), a real upstream, and the policies deciding on the identity that came back.

mod support;

use http::StatusCode;
use support::browser::{Browser, HTML};
use support::gateway::GatewayProcess;
use support::oidc::{OidcProvider, free_port};
use support::upstream::Upstream;

const SESSION_SECRET: &str = "gateway-login-test-secret-0123456789abcdef";

struct Setup {
    _idp: OidcProvider,
    upstream: Upstream,
    gateway: GatewayProcess,
    base: String,
}

async fn setup() -> Setup {
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
    websocket: true
    rules:
      - name: example.com staff
        allow:
          domains: [example.com]
        grants: [read]
  - name: admin
    match: {{ path: "/admin/**" }}
    upstream: {upstream}
    rules:
      - name: admins only
        allow:
          groups: [admins]
"#,
        upstream = upstream.url()
    );
    let (idp, gateway) = tokio::task::spawn_blocking(move || {
        let idp = OidcProvider::start(&redirect_uri, 300);
        let config = idp.gateway_config(port, SESSION_SECRET);
        let gateway = GatewayProcess::start_on(
            &format!("127.0.0.1:{port}"),
            &config,
            &[("app.yaml", &policy)],
        );
        (idp, gateway)
    })
    .await
    .unwrap();
    Setup {
        _idp: idp,
        upstream,
        gateway,
        base,
    }
}

/// A browser in which alice has logged in and reached `/app/page`.
async fn alice_logged_in(setup: &Setup) -> Browser {
    let mut browser = Browser::new();
    let page = browser
        .login_through(&setup.base, "/app/page", "alice")
        .await;
    assert_eq!(page.status(), StatusCode::OK, "{}", setup.gateway.logs());
    browser
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_user_logs_in_and_the_upstream_learns_who_it_is() {
    let setup = setup().await;
    let mut browser = Browser::new();
    let page = browser
        .login_through(&setup.base, "/app/page", "alice")
        .await;
    assert_eq!(page.status(), StatusCode::OK, "{}", setup.gateway.logs());

    let seen = setup.upstream.last();
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some("alice@example.com")
    );
    assert_eq!(
        seen.header("x-auth-request-groups"),
        Some("admins,analysts")
    );
    assert!(
        seen.header("x-auth-request-user")
            .is_some_and(|sub| !sub.is_empty())
    );
    let cookie = seen.header("cookie").unwrap_or_default();
    assert!(
        !cookie.contains("_portcullis"),
        "the session cookie reached the upstream: {cookie}"
    );

    // The session is reused: no second trip to the provider.
    let again = browser
        .get(&format!("{}/app/other", setup.base), HTML)
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let admin = browser
        .get(&format!("{}/admin/panel", setup.base), HTML)
        .await;
    assert_eq!(
        admin.status(),
        StatusCode::OK,
        "alice is in the admins group"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn user_from_another_domain_gets_the_403_page() {
    let setup = setup().await;
    let mut browser = Browser::new();
    let page = browser.login_through(&setup.base, "/app/page", "bob").await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = page.text().await.unwrap();
    assert!(body.contains("403"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unverified_email_never_matches_a_domain_rule() {
    let setup = setup().await;
    let mut browser = Browser::new();
    let page = browser
        .login_through(&setup.base, "/app/page", "carol")
        .await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_calls_and_websockets_without_a_session_get_401_with_the_login_url() {
    let setup = setup().await;
    let mut browser = Browser::new();
    let api = browser
        .get(&format!("{}/app/data?x=1", setup.base), "application/json")
        .await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let json: serde_json::Value = api.json().await.unwrap();
    assert_eq!(json["login_url"], "/oauth2/start?rd=/app/data%3Fx%3D1");

    let url = format!("ws://{}/app/ws", setup.gateway.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("an anonymous WebSocket upgrade was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_session_cookie_is_no_session() {
    let setup = setup().await;
    let mut browser = alice_logged_in(&setup).await;
    let sealed = browser
        .jar
        .get("_portcullis")
        .cloned()
        .expect("session cookie");
    let mut tampered = sealed.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    browser
        .jar
        .insert("_portcullis".into(), String::from_utf8(tampered).unwrap());
    let page = browser.get(&format!("{}/app/page", setup.base), HTML).await;
    assert_eq!(
        page.status(),
        StatusCode::FOUND,
        "a tampered cookie must send the user to log in"
    );
    browser
        .jar
        .insert("_portcullis".into(), sealed[..sealed.len() / 2].to_string());
    let page = browser.get(&format!("{}/app/page", setup.base), HTML).await;
    assert_eq!(
        page.status(),
        StatusCode::FOUND,
        "a truncated cookie must send the user to log in"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_clears_the_session_and_ends_it_at_the_provider() {
    let setup = setup().await;
    let mut browser = alice_logged_in(&setup).await;
    let logout = browser
        .get(&format!("{}/oauth2/logout", setup.base), HTML)
        .await;
    assert_eq!(logout.status(), StatusCode::FOUND);
    let location = logout.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("id_token_hint="),
        "RP-initiated logout at the provider: {location}"
    );
    assert!(
        !browser.jar.contains_key("_portcullis"),
        "the session cookie is cleared"
    );
    let page = browser.get(&format!("{}/app/page", setup.base), HTML).await;
    assert_eq!(page.status(), StatusCode::FOUND);
}
