//! Basic auth through the gateway binary: the login form with its CSRF token, wrong
//! passwords, the rate limit, and `Authorization: Basic` for API clients.

mod support;

use http::StatusCode;
use support::browser::{Browser, HTML, hidden_field};

const JSON: &str = "application/json";
use support::gateway::{GatewayProcess, refused_startup_stderr};
use support::upstream::Upstream;

struct Setup {
    upstream: Upstream,
    gateway: GatewayProcess,
    base: String,
}

/// gateway.yaml's `basic_auth:` for most tests: the header on by default, three failures lock
/// a username for a minute.
const BASIC_AUTH: &str = "basic_auth:\n  credentials_file: users.yaml\n  allow_header: true\n  rate_limit: { max_failures: 3, max_failures_per_ip: 50 }\n";

/// A route of the test upstream that admits analysts: `path` is its glob, `extra` more route
/// keys (each line indented four spaces).
fn analysts_route(name: &str, path: &str, extra: &str, upstream: &Upstream) -> String {
    format!(
        "  - name: {name}\n    match: {{ path: \"{path}\" }}\n    upstream: {}\n{extra}    rules:\n      - name: analysts\n        allow: {{ groups: [analysts] }}\n",
        upstream.url()
    )
}

async fn setup() -> Setup {
    setup_with(BASIC_AUTH, |_| String::new()).await
}

/// The `app` route (`/app/**`, analysts) plus the routes `more` writes for the upstream, behind
/// a gateway with `basic_auth` (gateway.yaml's section) and the user alice (group analysts).
async fn setup_with(basic_auth: &str, more: impl FnOnce(&Upstream) -> String) -> Setup {
    let upstream = Upstream::start().await;
    let hash = portcullis::identity::basic::hash_password("alice-password").unwrap();
    let policy = format!(
        "routes:\n{}{}",
        analysts_route("app", "/app/**", "", &upstream),
        more(&upstream)
    );
    let basic_auth = basic_auth.to_owned();
    let gateway = tokio::task::spawn_blocking(move || {
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
            format!("listen: 127.0.0.1:0\npolicies: policies\n{basic_auth}"),
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
    // Another site cannot frame the form (clickjacking), and its URL (`rd`) goes nowhere.
    let headers = page.headers();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["content-security-policy"], "frame-ancestors 'none'");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    hidden_field(&html, "csrf_token").expect("the login form carries a CSRF token")
}

async fn post_login(
    browser: &mut Browser,
    base: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    browser
        .post_form(&format!("{base}/oauth2/login"), HTML, fields)
        .await
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

/// Replicas that share the session secret accept each other's login forms (the CSRF key is
/// derived from it), so a load balancer need not keep a login on one replica; replicas with
/// their own secrets refuse each other's.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_sharing_the_session_secret_accept_each_other_s_login_forms() {
    let shared =
        format!("{BASIC_AUTH}session:\n  secrets: [\"replica-test-secret-0123456789abcdef\"]\n");
    let (one, other) = tokio::join!(
        setup_with(&shared, |_| String::new()),
        setup_with(&shared, |_| String::new())
    );
    // Alice opens the form on one replica and the balancer sends her POST to the other.
    async fn across(one: &Setup, other: &Setup, browser: &mut Browser) -> StatusCode {
        let csrf = login_form(browser, &one.base).await;
        let fields = [
            ("csrf_token", csrf.as_str()),
            ("username", "alice"),
            ("password", "alice-password"),
            ("rd", "/app/home"),
        ];
        post_login(browser, &other.base, &fields).await.status()
    }

    let mut browser = Browser::new();
    let status = across(&one, &other, &mut browser).await;
    assert_eq!(status, StatusCode::FOUND, "{}", other.gateway.logs());
    let page = browser.get(&format!("{}/app/home", one.base), HTML).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the session opens on the first replica"
    );

    let (one, other) = tokio::join!(setup(), setup());
    let status = across(&one, &other, &mut Browser::new()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another secret, another key");
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

/// An API client's GET: JSON wanted, alice's password in `Authorization: Basic`.
async fn get_as_alice(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client
        .get(url)
        .header("accept", JSON)
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap()
}

/// The body of a JSON error answer, after checking its status and content type.
async fn json_error(response: reqwest::Response, status: StatusCode) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], JSON);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(body["error"].is_string(), "{body}");
    body
}

fn seen_count(upstream: &Upstream) -> usize {
    upstream.seen.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_header_false_refuses_the_header_where_the_gateway_allows_it() {
    let setup = setup_with(BASIC_AUTH, |upstream| {
        analysts_route(
            "portal",
            "/portal/**",
            "    basic_header: false\n",
            upstream,
        )
    })
    .await;
    let client = Browser::new().http;

    let accepted = get_as_alice(&client, &format!("{}/app/api", setup.base)).await;
    assert_eq!(
        accepted.status(),
        StatusCode::OK,
        "{}",
        setup.gateway.logs()
    );
    assert_eq!(
        setup.upstream.last().header("x-auth-request-user"),
        Some("alice")
    );

    let before = seen_count(&setup.upstream);
    let refused = get_as_alice(&client, &format!("{}/portal/api", setup.base)).await;
    assert!(
        !refused.headers().contains_key("www-authenticate"),
        "the header was not tried, so nothing invites another"
    );
    let body = json_error(refused, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "login required");
    assert_eq!(
        seen_count(&setup.upstream),
        before,
        "the upstream saw nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_header_true_accepts_the_header_where_the_gateway_does_not() {
    let header_off = "basic_auth:\n  credentials_file: users.yaml\n";
    let setup = setup_with(header_off, |upstream| {
        analysts_route("api", "/api/**", "    basic_header: true\n", upstream)
    })
    .await;
    let client = Browser::new().http;

    let accepted = get_as_alice(&client, &format!("{}/api/items", setup.base)).await;
    assert_eq!(
        accepted.status(),
        StatusCode::OK,
        "{}",
        setup.gateway.logs()
    );
    let seen = setup.upstream.last();
    assert_eq!(seen.header("x-auth-request-user"), Some("alice"));
    assert_eq!(seen.header("authorization"), None);

    let refused = get_as_alice(&client, &format!("{}/app/api", setup.base)).await;
    let body = json_error(refused, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "login required");
}

#[test]
fn basic_header_true_without_basic_auth_stops_the_gateway_at_startup() {
    let stderr = refused_startup_stderr(&[(
        "api.yaml",
        "routes:\n  - name: api\n    upstream: builtin:whoami\n    basic_header: true\n    rules: []\n",
    )]);
    assert!(
        stderr.contains(
            "api.yaml:4:19: `basic_header: true` but gateway.yaml configures no `basic_auth:`"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_api_client_gets_403_json() {
    let setup = setup_with(BASIC_AUTH, |upstream| {
        format!(
            "  - name: admin\n    match: {{ path: \"/admin/**\" }}\n    upstream: {}\n    rules:\n      - name: admins\n        allow: {{ groups: [admins] }}\n",
            upstream.url()
        )
    })
    .await;
    let client = Browser::new().http;
    let denied = get_as_alice(&client, &format!("{}/admin/users", setup.base)).await;
    let body = json_error(denied, StatusCode::FORBIDDEN).await;
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("access denied"), "{body}");
    assert!(body["request_id"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_login_is_a_429_page_or_json_and_recovers() {
    // Three failures in 3 s lock alice for 3 s (max_backoff_seconds is at least the window).
    let limits = "basic_auth:\n  credentials_file: users.yaml\n  rate_limit: { max_failures: 3, max_failures_per_ip: 50, window_seconds: 3, max_backoff_seconds: 3 }\n";
    let setup = setup_with(limits, |_| String::new()).await;
    let mut browser = Browser::new();
    let csrf = login_form(&mut browser, &setup.base).await;
    let wrong = [
        ("csrf_token", csrf.as_str()),
        ("username", "alice"),
        ("password", "nope"),
    ];
    let right = [
        ("csrf_token", csrf.as_str()),
        ("username", "alice"),
        ("password", "alice-password"),
        ("rd", "/app/home"),
    ];
    for _ in 0..3 {
        let refused = post_login(&mut browser, &setup.base, &wrong).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }

    let page = post_login(&mut browser, &setup.base, &right).await;
    assert_eq!(
        page.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        setup.gateway.logs()
    );
    assert!(page.headers().contains_key("retry-after"));
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    for part in [
        // error.html, not the login form shown for a wrong password.
        "<main aria-labelledby=\"error-title\">",
        "<title>429 Too many attempts</title>",
        "Error 429 &middot; Too Many Requests",
        "<h1 id=\"error-title\">Too many attempts</h1>",
        "too many failed attempts; try again in",
    ] {
        assert!(html.contains(part), "missing {part:?} in:\n{html}");
    }
    assert!(!html.contains("csrf_token"), "{html}");

    let api = browser
        .post_form(&format!("{}/oauth2/login", setup.base), JSON, &right)
        .await;
    let retry_after: u64 = api.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    let body = json_error(api, StatusCode::TOO_MANY_REQUESTS).await;
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("too many failed attempts"), "{body}");

    tokio::time::sleep(std::time::Duration::from_millis(retry_after * 1000 + 200)).await;
    let recovered = post_login(&mut browser, &setup.base, &right).await;
    assert_eq!(
        recovered.status(),
        StatusCode::FOUND,
        "the lockout is over: {}",
        setup.gateway.logs()
    );
    assert_eq!(recovered.headers()["location"], "/app/home");
}

/// Logs alice in through the form in a fresh browser and returns its cookies, a session of its
/// own.
async fn logged_in_cookies(base: &str) -> String {
    let mut browser = Browser::new();
    let csrf = login_form(&mut browser, base).await;
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("username", "alice"),
        ("password", "alice-password"),
        ("rd", "/ws/"),
    ];
    let response = post_login(&mut browser, base, &fields).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    browser.cookie_header()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A same-origin WebSocket to the upstream's echo (`/ws/ws`) with `cookies`, checked to echo.
async fn open_socket(gateway: &GatewayProcess, cookies: &str) -> Ws {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let mut request = format!("ws://{}/ws/ws", gateway.addr)
        .into_client_request()
        .unwrap();
    let origin = format!("http://{}", gateway.addr);
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    request
        .headers_mut()
        .insert("cookie", cookies.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("upgrade refused: {e}\n{}", gateway.logs()));
    socket.send(Message::text("ping")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("ping"));
    socket
}

/// The close frame `socket` receives next, within `within`; the closing handshake is then
/// finished (the reply sent, the connection ended).
async fn close_frame(
    socket: &mut Ws,
    within: std::time::Duration,
) -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    loop {
        match tokio::time::timeout(within, socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                while let Some(Ok(_)) = socket.next().await {}
                return frame;
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// A socket opened with a session ends with it: logging out closes the session's sockets
/// (1008), not another session's; the session's expiry closes the rest.
#[tokio::test(flavor = "multi_thread")]
async fn websockets_close_when_their_session_logs_out_or_expires() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let setup = setup_with(
        "basic_auth:\n  credentials_file: users.yaml\nsession:\n  ttl: 5s\n",
        |upstream| analysts_route("ws", "/ws/**", "    websocket: true\n", upstream),
    )
    .await;
    let leaving = logged_in_cookies(&setup.base).await;
    let staying = logged_in_cookies(&setup.base).await;
    let logged_in_at = std::time::Instant::now();
    let mut first = open_socket(&setup.gateway, &leaving).await;
    let mut second = open_socket(&setup.gateway, &leaving).await;
    let mut other = open_socket(&setup.gateway, &staying).await;

    let mut browser = Browser::new();
    let mut follows_own_link = vec![("cookie", leaving.as_str())];
    follows_own_link.extend(FOLLOWED_LINK_ON_THIS_ORIGIN);
    let logout = browser
        .get_with_headers(
            &format!("{}/oauth2/logout", setup.base),
            HTML,
            &follows_own_link,
        )
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert!(logout.text().await.unwrap().contains("You are signed out"));
    for socket in [&mut first, &mut second] {
        let frame = close_frame(socket, std::time::Duration::from_secs(5)).await;
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::Policy, "logged out")
        );
    }
    other.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        other.next().await.unwrap().unwrap(),
        Message::text("still here")
    );

    let frame = close_frame(&mut other, std::time::Duration::from_secs(10)).await;
    assert_eq!(
        (frame.code, frame.reason.as_str()),
        (CloseCode::Policy, "session expired")
    );
    assert!(
        logged_in_at.elapsed() >= std::time::Duration::from_secs(3),
        "closed at its expiry, not before: {:?}",
        logged_in_at.elapsed()
    );
    // Counted once each bridge has finished its closing handshake.
    let counted = "portcullis_websockets_closed_total{route=\"ws\",reason=\"session\"} 3";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", setup.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.lines().any(|line| line == counted) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The fetch metadata a browser sends when a person follows a link on a page of the gateway's
/// own origin.
const FOLLOWED_LINK_ON_THIS_ORIGIN: [(&str, &str); 3] = [
    ("sec-fetch-site", "same-origin"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
];

/// A request's description, method and extra headers.
type Attempt = (
    &'static str,
    reqwest::Method,
    &'static [(&'static str, &'static str)],
);

/// A logout another site could have started (its link, image or form; or a client that does not
/// say where it comes from, on a GET) ends nothing: the person is asked to confirm, with a form
/// that posts back here. Their own POST, or a client that is not a browser, signs out.
#[tokio::test(flavor = "multi_thread")]
async fn a_logout_another_site_could_have_started_asks_first_and_ends_nothing() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let setup = setup_with(BASIC_AUTH, |upstream| {
        analysts_route("ws", "/ws/**", "    websocket: true\n", upstream)
    })
    .await;
    let cookies = logged_in_cookies(&setup.base).await;
    let mut socket = open_socket(&setup.gateway, &cookies).await;
    let logout_url = format!("{}/oauth2/logout", setup.base);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // What another site, or a client that does not say where it comes from, can send.
    let other_sites: [Attempt; 7] = [
        ("a GET that says nothing", reqwest::Method::GET, &[]),
        (
            "another site's link",
            reqwest::Method::GET,
            &[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
            ],
        ),
        (
            "a sibling subdomain's link",
            reqwest::Method::GET,
            &[
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
            ],
        ),
        (
            "an image on a page of this origin",
            reqwest::Method::GET,
            &[
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "no-cors"),
                ("sec-fetch-dest", "image"),
            ],
        ),
        (
            "another site's form",
            reqwest::Method::POST,
            &[("origin", "http://evil.example")],
        ),
        (
            "another port's form",
            reqwest::Method::POST,
            &[("origin", "http://127.0.0.1:1")],
        ),
        (
            "another site's form, with fetch metadata",
            reqwest::Method::POST,
            &[("sec-fetch-site", "cross-site"), ("origin", "null")],
        ),
    ];
    for (what, method, headers) in other_sites {
        let mut request = client
            .request(method, &logout_url)
            .header("accept", HTML)
            .header("cookie", &cookies);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{what}");
        assert!(
            response.headers().get("set-cookie").is_none(),
            "{what}: no cookie is cleared"
        );
        assert_eq!(response.headers()["x-frame-options"], "DENY", "{what}");
        let page = response.text().await.unwrap();
        assert!(page.contains("Sign out?"), "{what}: {page}");
        let action = r#"<form method="post" action="&#x2f;oauth2&#x2f;logout">"#;
        assert!(page.contains(action), "{what}: {page}");
    }
    socket.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("still here"),
        "the session's socket stays open"
    );
    let app = client
        .get(format!("{}/app/page", setup.base))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(app.status(), StatusCode::OK, "the session still works");

    // The confirmation form posted from the page: the browser names this origin.
    let confirmed = client
        .post(&logout_url)
        .header("accept", HTML)
        .header("cookie", &cookies)
        .header("origin", &setup.base)
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(
        confirmed.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"),
        "{:?}",
        confirmed.headers()
    );
    assert!(
        confirmed
            .text()
            .await
            .unwrap()
            .contains("You are signed out")
    );
    let frame = close_frame(&mut socket, std::time::Duration::from_secs(5)).await;
    assert_eq!(
        (frame.code, frame.reason.as_str()),
        (CloseCode::Policy, "logged out")
    );

    // A POST from a client that is not a browser (no `Origin`, no fetch metadata) signs out too:
    // no other site can make it send the person's cookie.
    let script = logged_in_cookies(&setup.base).await;
    let mut socket = open_socket(&setup.gateway, &script).await;
    let response = client
        .post(&logout_url)
        .header("cookie", &script)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let frame = close_frame(&mut socket, std::time::Duration::from_secs(5)).await;
    assert_eq!(frame.code, CloseCode::Policy);
}
