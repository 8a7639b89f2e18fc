//! Login through the gateway binary with a real OpenID provider (`oidc-provider` on
//! 127.0.0.1), a real upstream, and the policies deciding on the identity that came back.

mod support;

use std::collections::HashMap;

use http::StatusCode;
use support::browser::{Browser, HTML, SESSION_COOKIE, hidden_field, is_html};
use support::gateway::GatewayProcess;
use support::oidc::{OidcProvider, start_provider_and_gateway};
use support::upstream::Upstream;

const SESSION_SECRET: &str = "gateway-login-test-secret-0123456789abcdef";

struct Setup {
    idp: OidcProvider,
    upstream: Upstream,
    gateway: GatewayProcess,
    base: String,
}

async fn setup() -> Setup {
    setup_with(Options::default()).await
}

/// What a test changes about the default setup.
struct Options {
    /// gateway.yaml lines appended to the provider's.
    extra_config: &'static str,
    /// The provider's access-token lifetime; under the 60 s refresh margin every request refreshes.
    access_token_ttl: u64,
    /// A `users.yaml` for `basic_auth` (dave, password `dave-password`, dave@example.com).
    basic_users: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_config: "",
            access_token_ttl: 300,
            basic_users: false,
        }
    }
}

async fn setup_with(options: Options) -> Setup {
    let upstream = Upstream::start().await;
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
  - name: whoami
    match: {{ path: "/whoami/**" }}
    upstream: builtin:whoami
    rules:
      - name: example.com staff
        allow:
          domains: [example.com]
"#,
        upstream = upstream.url()
    );
    let ttl = options.access_token_ttl;
    let (idp, gateway, base) = start_provider_and_gateway(ttl, move |idp, port| {
        let mut config = idp.gateway_config(port, SESSION_SECRET);
        config.push_str(options.extra_config);
        let dir = GatewayProcess::prepare(
            &format!("127.0.0.1:{port}"),
            &config,
            &[("app.yaml", &policy)],
        );
        if options.basic_users {
            let hash = portcullis::identity::basic::hash_password("dave-password").unwrap();
            let users = format!(
                "users:\n  dave:\n    password_hash: \"{hash}\"\n    email: dave@example.com\n    email_verified: true\n"
            );
            std::fs::write(dir.path().join("users.yaml"), users).unwrap();
        }
        GatewayProcess::spawn(dir, &[])
    })
    .await;
    Setup {
        idp,
        upstream,
        gateway,
        base,
    }
}

/// A new browser in which `user` has logged in on the way to `/app/page`, and that page.
async fn logged_in(setup: &Setup, user: &str) -> (Browser, reqwest::Response) {
    let mut browser = Browser::new();
    let page = browser.login_through(&setup.base, "/app/page", user).await;
    (browser, page)
}

/// A browser in which alice has logged in and reached `/app/page`.
async fn alice_logged_in(setup: &Setup) -> Browser {
    let (browser, page) = logged_in(setup, "alice").await;
    assert_eq!(page.status(), StatusCode::OK, "{}", setup.gateway.logs());
    browser
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_user_logs_in_and_the_upstream_learns_who_it_is() {
    let setup = setup().await;
    let mut browser = alice_logged_in(&setup).await;

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
    let (_browser, page) = logged_in(&setup, "bob").await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(is_html(&page));
    let body = page.text().await.unwrap();
    assert!(body.contains("403"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unverified_email_never_matches_a_domain_rule() {
    let setup = setup().await;
    let (_browser, page) = logged_in(&setup, "carol").await;
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
    let sealed = browser.session_cookie();
    let mut tampered = sealed.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    browser
        .jar
        .insert(SESSION_COOKIE.into(), String::from_utf8(tampered).unwrap());
    let page = browser.get(&format!("{}/app/page", setup.base), HTML).await;
    assert_eq!(
        page.status(),
        StatusCode::FOUND,
        "a tampered cookie must send the user to log in"
    );
    browser.jar.insert(
        SESSION_COOKIE.into(),
        sealed[..sealed.len() / 2].to_string(),
    );
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
    let logout_url = format!("{}/oauth2/logout", setup.base);
    // A GET that does not show it is the person's own (no fetch metadata) only asks.
    let asked = browser.get(&logout_url, HTML).await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(asked.text().await.unwrap().contains("Sign out?"));
    assert!(browser.jar.contains_key(SESSION_COOKIE));
    let page = browser.get(&format!("{}/app/page", setup.base), HTML).await;
    assert_eq!(page.status(), StatusCode::OK, "the session still works");

    // The confirmation form posted from that page.
    let logout = browser
        .post_with_headers(&logout_url, HTML, &[("origin", &setup.base)])
        .await;
    assert_eq!(logout.status(), StatusCode::FOUND);
    let location = logout.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("id_token_hint="),
        "RP-initiated logout at the provider: {location}"
    );
    assert!(
        !browser.jar.contains_key(SESSION_COOKIE),
        "the session cookie is cleared"
    );
    let page = browser.get(&format!("{}/app/page", setup.base), HTML).await;
    assert_eq!(page.status(), StatusCode::FOUND);

    // The provider accepts what the gateway sends by default (the public root): it asks to
    // confirm the logout instead of showing an error, and then returns the browser there.
    let end_session = url::Url::parse(&location).unwrap();
    let params: HashMap<_, _> = end_session.query_pairs().into_owned().collect();
    let public_root = format!("{}/", setup.base);
    assert_eq!(params["post_logout_redirect_uri"], public_root);
    let confirm = browser.get(&location, HTML).await;
    let status = confirm.status();
    let form = confirm.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{form}");
    assert!(!form.contains("post_logout_redirect_uri"), "{form}");
    let xsrf = hidden_field(&form, "xsrf").expect("the provider's logout confirmation form");
    let action = end_session.join("/session/end/confirm").unwrap();
    let done = browser
        .http
        .post(action.as_str())
        .header("cookie", browser.cookie_header())
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert!(done.status().is_redirection(), "{}", done.status());
    assert_eq!(done.headers()["location"].to_str().unwrap(), public_root);
}

const ACCESS_TOKEN: &str = "x-auth-request-access-token";

/// The `sub` the provider's userinfo endpoint answers for `token`, if it accepts the token.
async fn userinfo_subject(idp: &OidcProvider, token: &str) -> Option<String> {
    let client = reqwest::Client::new();
    let discovery: serde_json::Value = client
        .get(format!("{}/.well-known/openid-configuration", idp.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = discovery["userinfo_endpoint"].as_str().unwrap();
    let response = client
        .get(endpoint)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if !response.status().is_success() {
        return None;
    }
    let claims: serde_json::Value = response.json().await.unwrap();
    claims["sub"].as_str().map(str::to_owned)
}

/// The `rd` the login page's provider button carries to `/oauth2/start`.
fn provider_button_rd(base: &str, html: &str) -> String {
    let href = support::browser::provider_links(html)
        .into_iter()
        .next()
        .expect("a provider button");
    let url = url::Url::parse(base).unwrap().join(&href).unwrap();
    let rd = url.query_pairs().find(|(name, _)| name == "rd");
    rd.map(|(_, value)| value.into_owned()).unwrap_or_default()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn access_token_is_not_passed_by_default_and_a_client_copy_never_arrives() {
    let setup = setup().await;
    let mut browser = alice_logged_in(&setup).await;
    assert_eq!(setup.upstream.last().header(ACCESS_TOKEN), None);
    let url = format!("{}/app/page", setup.base);
    let page = browser
        .get_with_headers(&url, HTML, &[(ACCESS_TOKEN, "forged")])
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(setup.upstream.last().header(ACCESS_TOKEN), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn passed_access_token_is_the_one_the_provider_issued() {
    let setup = setup_with(Options {
        extra_config: "identity_headers:\n  pass_access_token: true\n",
        ..Options::default()
    })
    .await;
    let mut browser = alice_logged_in(&setup).await;
    let token = setup
        .upstream
        .last()
        .header(ACCESS_TOKEN)
        .expect("the upstream gets the access token")
        .to_owned();
    assert!(!token.is_empty());
    assert_eq!(
        userinfo_subject(&setup.idp, &token).await.as_deref(),
        Some("alice"),
        "the provider accepts the token at its userinfo endpoint"
    );

    let url = format!("{}/app/other", setup.base);
    let page = browser
        .get_with_headers(&url, HTML, &[(ACCESS_TOKEN, "forged")])
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let seen = setup.upstream.last();
    let sent: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(name, _)| name == ACCESS_TOKEN)
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(
        sent,
        [token.as_str()],
        "the same token until a refresh; the client's copy is gone"
    );
    assert!(
        !setup.gateway.logs().contains(&token),
        "the access token is never logged"
    );

    // The demo upstream shows every header it got but the access token.
    let shown = browser
        .get(&format!("{}/whoami/", setup.base), "application/json")
        .await;
    assert_eq!(shown.status(), StatusCode::OK);
    let text = shown.text().await.unwrap();
    assert!(
        !text.contains(&token),
        "whoami shows the access token: {text}"
    );
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let headers = &report["headers"];
    assert_eq!(
        headers[ACCESS_TOKEN].as_str(),
        Some(format!("(not shown: {} bytes)", token.len()).as_str())
    );
    assert_eq!(headers["x-auth-request-user"].as_str(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread")]
async fn passed_access_token_follows_refresh_under_a_configured_name() {
    let setup = setup_with(Options {
        extra_config: "identity_headers:\n  pass_access_token: true\n  access_token: X-Access-Token\n",
        access_token_ttl: 30,
        ..Options::default()
    })
    .await;
    let mut browser = alice_logged_in(&setup).await;
    let first = setup
        .upstream
        .last()
        .header("x-access-token")
        .expect("the token under the configured name")
        .to_owned();
    let url = format!("{}/app/page", setup.base);
    let forged = [("x-access-token", "forged"), (ACCESS_TOKEN, "forged")];
    let page = browser.get_with_headers(&url, HTML, &forged).await;
    assert_eq!(page.status(), StatusCode::OK, "{}", setup.gateway.logs());
    let seen = setup.upstream.last();
    let second = seen.header("x-access-token").unwrap().to_owned();
    assert_ne!(
        second, first,
        "a 30 s token is refreshed on every request (60 s margin); the upstream gets the new one"
    );
    assert_ne!(second, "forged");
    assert_eq!(
        seen.header(ACCESS_TOKEN),
        None,
        "nothing under the default name"
    );
    assert_eq!(
        userinfo_subject(&setup.idp, &second).await.as_deref(),
        Some("alice")
    );
}

/// Options for a gateway with both login methods, the access token passed and an `rd`
/// allowlist.
fn both_methods() -> Options {
    Options {
        extra_config: r#"basic_auth:
  credentials_file: users.yaml
identity_headers:
  pass_access_token: true
allowed_redirect_hosts: [allowed.example.com, "*.apps.example.org"]
"#,
        basic_users: true,
        ..Options::default()
    }
}

/// Opens the login page for `rd`: the page, and the `rd` its form carries.
async fn login_page(browser: &mut Browser, base: &str, rd: &str) -> (String, String) {
    let page = browser
        .get(&format!("{base}/oauth2/start?rd={}", urlencode(rd)), HTML)
        .await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the login page with both methods"
    );
    let html = page.text().await.unwrap();
    let carried = hidden_field(&html, "rd").expect("the form carries rd");
    (html, carried)
}

/// Logs dave in with the password form, asking to go to `rd`; the redirect's target.
async fn basic_login(browser: &mut Browser, base: &str, rd: &str) -> String {
    let (html, _) = login_page(browser, base, "/").await;
    let csrf = hidden_field(&html, "csrf_token").unwrap();
    let response = browser
        .post_form(
            &format!("{base}/oauth2/login"),
            HTML,
            &[
                ("csrf_token", csrf.as_str()),
                ("username", "dave"),
                ("password", "dave-password"),
                ("rd", rd),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Logs alice in at the provider, asking to go to `rd`; where the callback sends the browser.
async fn oidc_login(setup: &Setup, rd: &str) -> String {
    let mut browser = Browser::new();
    let start = format!(
        "{}/oauth2/start?provider=test&rd={}",
        setup.base,
        urlencode(rd)
    );
    let to_provider = browser.get(&start, HTML).await;
    let back = browser
        .complete_login(&setup.base, to_provider, "alice")
        .await;
    assert_eq!(back.status(), StatusCode::FOUND, "{}", setup.gateway.logs());
    back.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_sessions_pass_no_access_token() {
    let setup = setup_with(both_methods()).await;
    let mut browser = Browser::new();
    assert_eq!(
        basic_login(&mut browser, &setup.base, "/app/page").await,
        "/app/page"
    );
    let url = format!("{}/app/page", setup.base);
    let page = browser
        .get_with_headers(&url, HTML, &[(ACCESS_TOKEN, "forged")])
        .await;
    assert_eq!(page.status(), StatusCode::OK, "{}", setup.gateway.logs());
    let seen = setup.upstream.last();
    assert_eq!(seen.header("x-auth-request-user"), Some("dave"));
    assert_eq!(seen.header(ACCESS_TOKEN), None);
}

/// `rd` values that point off the public host: what every login path makes of them.
const RD_CASES: &[(&str, &str)] = &[
    (
        "https://allowed.example.com/dash?x=1",
        "https://allowed.example.com/dash?x=1",
    ),
    (
        "https://team.apps.example.org/",
        "https://team.apps.example.org/",
    ),
    ("https://evil.com/", "/"),
    ("https://allowed.example.com@evil.com/", "/"),
    ("https://evil.com/allowed.example.com", "/"),
    ("https://allowed.example.com.evil.com/", "/"),
    ("https://allowed.example.com%40evil.com/", "/"),
    ("https://apps.example.org/", "/"),
];

#[tokio::test(flavor = "multi_thread")]
async fn rd_to_an_allowed_host_is_honoured_on_every_login_path_and_lookalikes_are_refused() {
    let setup = setup_with(both_methods()).await;
    for (rd, want) in RD_CASES {
        assert_eq!(oidc_login(&setup, rd).await, *want, "OIDC login, rd {rd}");

        let mut browser = Browser::new();
        let (html, carried) = login_page(&mut browser, &setup.base, rd).await;
        assert_eq!(carried, *want, "login page form, rd {rd}");
        let button = provider_button_rd(&setup.base, &html);
        assert_eq!(button, *want, "login page provider button, rd {rd}");

        let mut browser = Browser::new();
        assert_eq!(
            basic_login(&mut browser, &setup.base, rd).await,
            *want,
            "password form, rd {rd}"
        );
    }
}

/// A session the provider ends (its grant is gone, so the refresh is refused) closes the
/// session's open sockets too, as a logout does: 1008 `session ended`.
#[tokio::test(flavor = "multi_thread")]
async fn websockets_close_when_the_provider_ends_their_session() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let mut setup = setup_with(Options {
        access_token_ttl: 30,
        ..Options::default()
    })
    .await;
    let mut browser = alice_logged_in(&setup).await;
    let mut request = format!("ws://{}/app/ws", setup.gateway.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", setup.base.parse().unwrap());
    headers.insert("cookie", browser.cookie_header().parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("upgrade refused: {e}\n{}", setup.gateway.logs()));
    // The upgrade refreshed the 30 s token: the browser keeps the renewed session, as a page would.
    browser.keep_cookies(response.headers());
    socket.send(Message::text("ping")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("ping"));

    // The provider forgets every grant: the next refresh is refused.
    setup.idp.restart();
    let page = browser.get(&format!("{}/app/page", setup.base), HTML).await;
    assert_eq!(page.status(), StatusCode::FOUND, "sent to log in again");
    let frame = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}\n{}", setup.gateway.logs()),
        }
    };
    assert_eq!(frame.code, CloseCode::Policy);
    assert_eq!(frame.reason.as_str(), "session ended");
}
