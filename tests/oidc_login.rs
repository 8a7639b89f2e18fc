//! The login flow against a real `oidc-provider` process on 127.0.0.1, plus GitHub/Bitbucket
//! mapping against a local server that answers in the shape their APIs document.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::Full;
use portcullis::identity::oidc::{LoginError, PROVIDER_CHECK_INTERVAL, Providers, RefreshError};
use portcullis::identity::providers::ProviderConfig;
use portcullis::session::{Session, SessionCodec, SessionConfig};
use support::browser::{Browser, HTML, is_html, provider_links};
use support::gateway::GatewayProcess;
use support::oidc::{
    CLIENT_ID, CLIENT_SECRET, OidcProvider, free_port, start_provider_and_gateway,
};
use support::policy;
use support::upstream::Upstream;
use url::Url;

const SECRET: &str = "integration-test-secret-0123456789abcdef";

fn public_url() -> Url {
    Url::parse("http://127.0.0.1:18080").unwrap()
}

fn redirect_uri() -> String {
    public_url().join("/oauth2/callback").unwrap().to_string()
}

fn codec() -> SessionCodec {
    SessionCodec::new(&SessionConfig {
        secrets: vec![SECRET.into()],
        ..SessionConfig::default()
    })
    .unwrap()
}

fn provider_config(value: serde_json::Value) -> ProviderConfig {
    serde_json::from_value(value).unwrap()
}

fn oidc_providers(issuer: &str) -> Providers {
    let config = provider_config(serde_json::json!({
        "name": "test",
        "kind": "oidc",
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "email", "profile", "groups", "offline_access"],
        "groups_claim": "groups",
        "extra_params": {"ui_locales": "en"},
    }));
    Providers::new(&[config], &public_url()).unwrap()
}

/// A test provider whose access tokens live `access_token_ttl` seconds, and the gateway's
/// providers logging in there.
fn idp_and_providers(access_token_ttl: u64) -> (OidcProvider, Providers) {
    let idp = OidcProvider::start(&redirect_uri(), access_token_ttl);
    let providers = oidc_providers(&idp.issuer());
    (idp, providers)
}

fn parts(uri: &str, cookies: &HeaderMap) -> http::request::Parts {
    let mut builder = http::Request::builder().uri(uri);
    for value in cookies.get_all(COOKIE) {
        builder = builder.header(COOKIE, value);
    }
    builder.body(()).unwrap().into_parts().0
}

/// The `Cookie` header a browser sends back for these `Set-Cookie` values.
fn cookies_from(set_cookies: &[&HeaderValue]) -> HeaderMap {
    let pairs: Vec<String> = set_cookies
        .iter()
        .map(|v| v.to_str().unwrap())
        .filter(|v| !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .collect();
    let mut headers = HeaderMap::new();
    if !pairs.is_empty() {
        headers.insert(COOKIE, pairs.join("; ").parse().unwrap());
    }
    headers
}

/// What `/oauth2/start` produced: the provider URL and the login cookie.
struct Started {
    authorize: String,
    cookies: HeaderMap,
}

async fn start(
    providers: &Providers,
    codec: &SessionCodec,
    query: &str,
) -> Result<Started, LoginError> {
    let response = providers
        .start(
            &parts(&format!("/oauth2/start{query}"), &HeaderMap::new()),
            codec,
        )
        .await?;
    assert_eq!(response.status(), StatusCode::FOUND);
    let set: Vec<&HeaderValue> = response.headers().get_all(SET_COOKIE).iter().collect();
    Ok(Started {
        authorize: response.headers()[LOCATION].to_str().unwrap().to_owned(),
        cookies: cookies_from(&set),
    })
}

/// `/oauth2/start` with `query`, then `user` signs in at the provider: what the start produced
/// and the callback path the provider sends the browser back to.
async fn start_and_sign_in(
    providers: &Providers,
    codec: &SessionCodec,
    query: &str,
    user: &str,
) -> (Started, String) {
    let started = start(providers, codec, query).await.unwrap();
    let callback = Browser::new()
        .sign_in(&started.authorize, user, &redirect_uri())
        .await;
    (started, callback)
}

/// Full login as `user`; returns the session, rd and the gateway's Set-Cookie values.
async fn login(
    providers: &Providers,
    codec: &SessionCodec,
    user: &str,
    rd: &str,
) -> (Session, String, Vec<HeaderValue>) {
    let query = format!("?rd={}", urlencode(rd));
    let (started, callback) = start_and_sign_in(providers, codec, &query, user).await;
    providers
        .callback(&parts(&callback, &started.cookies), codec)
        .await
        .unwrap()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn full_login_maps_identity_groups_and_session_reopens() {
    let (_idp, providers) = idp_and_providers(30);
    let codec = codec();

    let started = start(&providers, &codec, "?rd=%2Fpanel%2F%3Fx%3D1")
        .await
        .unwrap();
    let authorize = Url::parse(&started.authorize).unwrap();
    let params: HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["redirect_uri"], redirect_uri());
    assert!(params.contains_key("state") && params.contains_key("nonce"));
    assert_eq!(
        params["ui_locales"], "en",
        "extra_params reach the provider"
    );
    assert!(params["scope"].split(' ').any(|s| s == "openid"));

    let callback = Browser::new()
        .sign_in(&started.authorize, "alice", &redirect_uri())
        .await;
    let (session, rd, set_cookies) = providers
        .callback(&parts(&callback, &started.cookies), &codec)
        .await
        .unwrap();
    assert_eq!(rd, "/panel/?x=1");
    let user = &session.identity;
    assert_eq!(user.subject, "alice");
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    assert!(user.email_verified);
    assert_eq!(user.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(user.groups, ["admins", "analysts"]);
    assert_eq!(user.provider, "test");
    assert!(
        set_cookies
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("_portcullis_login=;"))
    );

    let browser_cookies = cookies_from(&set_cookies.iter().collect::<Vec<_>>());
    let reopened = codec.open(&browser_cookies).expect("session cookie opens");
    assert_eq!(*reopened, session);
    assert_eq!(
        codec.open(&browser_cookies).unwrap().id,
        session.id,
        "session is reused"
    );
}

#[tokio::test]
async fn unverified_email_is_reported_as_unverified() {
    let (_idp, providers) = idp_and_providers(30);
    let (session, _, _) = login(&providers, &codec(), "carol", "/").await;
    assert_eq!(session.identity.email.as_deref(), Some("carol@example.com"));
    assert!(!session.identity.email_verified);
}

#[tokio::test]
async fn unsafe_rd_falls_back_to_root() {
    let (_idp, providers) = idp_and_providers(30);
    let (_, rd, _) = login(&providers, &codec(), "bob", "//evil.example/steal").await;
    assert_eq!(rd, "/");
}

#[tokio::test]
async fn tampered_state_is_rejected() {
    let (_idp, providers) = idp_and_providers(30);
    let codec = codec();
    let (started, callback) = start_and_sign_in(&providers, &codec, "", "alice").await;
    let tampered = callback.replace("state=", "state=x");
    let err = providers
        .callback(&parts(&tampered, &started.cookies), &codec)
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::StateMismatch), "{err}");
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn callback_without_login_cookie_is_rejected() {
    let (_idp, providers) = idp_and_providers(30);
    let codec = codec();
    let (_, callback) = start_and_sign_in(&providers, &codec, "", "alice").await;
    let err = providers
        .callback(&parts(&callback, &HeaderMap::new()), &codec)
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::StateMissing), "{err}");
}

#[tokio::test]
async fn replayed_code_is_rejected() {
    let (_idp, providers) = idp_and_providers(30);
    let codec = codec();
    let (started, callback) = start_and_sign_in(&providers, &codec, "", "alice").await;
    providers
        .callback(&parts(&callback, &started.cookies), &codec)
        .await
        .unwrap();
    let err = providers
        .callback(&parts(&callback, &started.cookies), &codec)
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::CodeRejected(_)), "{err}");
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refresh_renews_short_lived_tokens_and_rereads_groups() {
    let (idp, providers) = idp_and_providers(10);
    let codec = codec();
    let (session, _, _) = login(&providers, &codec, "alice", "/").await;
    let tokens = session.tokens.clone().unwrap();
    assert!(
        tokens.refresh_token.is_some(),
        "provider issued a refresh token"
    );
    assert!(
        codec.needs_refresh(&session),
        "a 10 s access token is within the refresh margin"
    );

    set_groups(&idp, "alice", "analysts,auditors").await;
    let refreshed = providers.refresh(&session).await.unwrap();
    let new_tokens = refreshed.tokens.clone().unwrap();
    assert_eq!(refreshed.id, session.id);
    assert_eq!(refreshed.expires_at, session.expires_at);
    assert_ne!(new_tokens.access_token, tokens.access_token);
    assert_ne!(
        new_tokens.refresh_token, tokens.refresh_token,
        "refresh token rotated"
    );
    assert_eq!(refreshed.identity.groups, ["analysts", "auditors"]);

    let again = providers.refresh(&refreshed).await.unwrap();
    assert_ne!(
        again.tokens.unwrap().refresh_token,
        new_tokens.refresh_token
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_session_share_one_rotation() {
    let (_idp, providers) = idp_and_providers(10);
    let (session, _, _) = login(&providers, &codec(), "alice", "/").await;

    let handles: Vec<_> = (0..6)
        .map(|_| {
            let providers = providers.clone();
            let session = session.clone();
            tokio::spawn(async move { providers.refresh(&session).await })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(
            handle
                .await
                .unwrap()
                .expect("every concurrent refresh succeeds"),
        );
    }
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "all callers got the same new session"
    );
    // Had the old refresh token been replayed, the provider would have revoked the grant.
    providers
        .refresh(&results[0])
        .await
        .expect("grant still alive after the concurrent burst");
}

#[tokio::test]
async fn rejected_refresh_token_ends_the_session() {
    let (_idp, providers) = idp_and_providers(10);
    let (mut session, _, _) = login(&providers, &codec(), "alice", "/").await;
    session.tokens.as_mut().unwrap().refresh_token = Some("not-a-real-refresh-token".into());
    let err = providers.refresh(&session).await.unwrap_err();
    assert!(matches!(err, RefreshError::Rejected(_)), "{err}");
    assert!(err.ends_session());
}

#[tokio::test]
async fn logout_points_at_end_session_with_hint_and_return_url() {
    let (_idp, providers) = idp_and_providers(30);
    let (session, _, _) = login(&providers, &codec(), "alice", "/").await;
    let url = providers
        .logout(&session)
        .await
        .expect("provider has end_session_endpoint");
    let url = Url::parse(&url).unwrap();
    assert_eq!(url.path(), "/session/end");
    let params: HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        params["id_token_hint"],
        session.tokens.unwrap().id_token.unwrap()
    );
    assert_eq!(
        params["post_logout_redirect_uri"],
        "http://127.0.0.1:18080/"
    );
    assert_eq!(params["client_id"], CLIENT_ID);
}

#[tokio::test]
async fn post_logout_redirect_uri_is_configurable_per_provider() {
    let idp = OidcProvider::start(&redirect_uri(), 30);
    let with = |value: &str| {
        provider_config(serde_json::json!({
            "name": "test", "kind": "oidc", "issuer": idp.issuer(), "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "post_logout_redirect_uri": value,
        }))
    };
    let codec = codec();
    let cases = [
        ("/signed-out", "http://127.0.0.1:18080/signed-out"),
        ("https://www.example.com/bye", "https://www.example.com/bye"),
    ];
    for (configured, sent) in cases {
        let providers = Providers::new(&[with(configured)], &public_url()).unwrap();
        let (session, _, _) = login(&providers, &codec, "alice", "/").await;
        let url = Url::parse(&providers.logout(&session).await.unwrap()).unwrap();
        let params: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(params["post_logout_redirect_uri"], sent, "{configured}");
    }
    let err = Providers::new(&[with("javascript:alert(1)")], &public_url())
        .expect_err("a non-http post_logout_redirect_uri is a config error");
    assert!(
        err.to_string()
            .contains("providers.test.post_logout_redirect_uri"),
        "{err}"
    );
}

#[tokio::test]
async fn rd_to_an_allowed_host_survives_the_login_and_lookalikes_do_not() {
    let (_idp, providers) = idp_and_providers(30);
    let providers = providers.with_allowed_redirect_hosts(vec![
        "allowed.example.com".into(),
        ".apps.example.org".into(),
    ]);
    let codec = codec();
    let (_, rd, _) = login(
        &providers,
        &codec,
        "alice",
        "https://allowed.example.com/dash?x=1",
    )
    .await;
    assert_eq!(rd, "https://allowed.example.com/dash?x=1");

    let kept = [
        "https://allowed.example.com/",
        "https://team.apps.example.org/x",
        "http://127.0.0.1:18080/on-the-public-host",
        "/a/path",
    ];
    for rd in kept {
        assert!(providers.safe_redirect(rd).is_some(), "{rd}");
    }
    let refused = [
        "https://evil.com/",
        "https://allowed.example.com@evil.com/",
        "https://evil.com/allowed.example.com",
        "https://allowed.example.com.evil.com/",
        "https://evil.com?allowed.example.com",
        "https://evil.com#allowed.example.com",
        "https:%2F%2Fallowed.example.com@evil.com",
        "https://allowed.example.com%40evil.com/",
        "https://allowed.example.com%2F@evil.com/",
        "//allowed.example.com",
        "https://apps.example.org/",
        "http://127.0.0.1:18081/another-port",
    ];
    for rd in refused {
        assert_eq!(providers.safe_redirect(rd), None, "{rd}");
    }
    let (_, rd, _) = login(
        &providers,
        &codec,
        "alice",
        "https://allowed.example.com.evil.com/",
    )
    .await;
    assert_eq!(rd, "/", "a refused rd falls back to the root");
}

#[tokio::test]
async fn key_rotation_at_the_provider_is_picked_up_on_unknown_kid() {
    let (mut idp, providers) = idp_and_providers(30);
    let codec = codec();
    login(&providers, &codec, "alice", "/").await;
    idp.restart();
    // Discovery (and the old JWKS) is cached; the new ID token names a kid it does not know.
    let (session, _, _) = login(&providers, &codec, "alice", "/").await;
    assert_eq!(session.identity.subject, "alice");
}

#[tokio::test]
async fn provider_down_login_is_503_and_existing_sessions_keep_working() {
    let (mut idp, providers) = idp_and_providers(10);
    let codec = codec();
    let (session, _, set_cookies) = login(&providers, &codec, "alice", "/").await;
    idp.stop();

    let cookies = cookies_from(&set_cookies.iter().collect::<Vec<_>>());
    assert_eq!(
        codec.open(&cookies).as_deref(),
        Some(&session),
        "existing session still opens"
    );

    // Never reached: no discovery to fall back on.
    let cold = oidc_providers(&idp.issuer());
    // Reached, discovery cached: once the provider has been quiet for the check interval,
    // the next login probes it instead of trusting the cached document.
    tokio::time::sleep(PROVIDER_CHECK_INTERVAL + Duration::from_secs(1)).await;
    for (case, providers) in [("never reached", &cold), ("discovery cached", &providers)] {
        let err = start(providers, &codec, "")
            .await
            .err()
            .unwrap_or_else(|| panic!("{case}: login must fail while the provider is down"));
        assert!(
            matches!(err, LoginError::ProviderUnavailable { .. }),
            "{case}: {err}"
        );
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE, "{case}");
        assert!(err.user_message().contains("cannot be reached"), "{case}");
    }

    let err = providers.refresh(&session).await.unwrap_err();
    assert!(matches!(err, RefreshError::Unavailable { .. }), "{err}");
    assert!(
        !err.ends_session(),
        "an unreachable provider does not log people out"
    );
}

/// A policy whose `/app/**` route to `upstream` allows example.com.
fn example_com_app(upstream: &str) -> String {
    let example_com_staff =
        "      - name: example.com staff\n        allow:\n          domains: [example.com]\n";
    policy::routes(&[policy::route("app", "/app/**", upstream, example_com_staff)])
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_discovery_does_not_hide_a_provider_outage_from_login() {
    let upstream = Upstream::start().await;
    let policy = example_com_app(&upstream.url());
    let (mut idp, gateway, base) = start_provider_and_gateway(300, move |idp, port| {
        GatewayProcess::start_on(
            &format!("127.0.0.1:{port}"),
            &idp.gateway_config(port, SECRET),
            &[("app.yaml", &policy)],
        )
    })
    .await;

    let mut alice = Browser::new();
    let page = alice.login_through(&base, "/app/page", "alice").await;
    assert_eq!(page.status(), StatusCode::OK, "{}", gateway.logs());

    idp.stop();
    tokio::time::sleep(PROVIDER_CHECK_INTERVAL + Duration::from_secs(1)).await;

    let start_url = format!("{base}/oauth2/start?rd=%2Fapp%2Fpage");
    let started = Instant::now();
    let down = Browser::new().get(&start_url, HTML).await;
    assert_eq!(
        down.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a cached discovery document must not send users to a dead provider"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the probe is short"
    );
    assert!(down.headers().get(LOCATION).is_none());
    assert_eq!(
        down.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    assert!(is_html(&down));
    let body = down.text().await.unwrap();
    assert!(body.contains("cannot be reached"), "{body}");

    let page = alice.get(&format!("{base}/app/other"), HTML).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "an existing session keeps working while the provider is down"
    );
    let seen = upstream.last();
    assert_eq!(seen.path_and_query, "/app/other");
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some("alice@example.com")
    );

    let mut idp = tokio::task::spawn_blocking(move || {
        idp.resume();
        idp
    })
    .await
    .unwrap();
    // A failed probe holds for a few seconds; then the next login probes again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = Browser::new().get(&start_url, HTML).await.status();
        if status == StatusCode::FOUND {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "login still refused after the provider came back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let page = Browser::new()
        .login_through(&base, "/app/page", "alice")
        .await;
    assert_eq!(page.status(), StatusCode::OK, "{}", gateway.logs());
    idp.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_providers_get_the_chooser_page_whose_links_carry_rd_and_log_in() {
    let upstream = Upstream::start().await;
    let policy = example_com_app(&upstream.url());
    let (idp, gateway, base) = start_provider_and_gateway(300, move |idp, port| {
        let gateway_url = format!("http://127.0.0.1:{port}");
        let provider = |name: &str, display: &str| {
            format!(
                "  - name: {name}\n    display_name: {display}\n    kind: oidc\n    issuer: {}\n    \
                 client_id: {CLIENT_ID}\n    client_secret: {CLIENT_SECRET}\n    \
                 scopes: [openid, email, profile]\n",
                idp.issuer()
            )
        };
        let config = format!(
            "public_url: {gateway_url}\nsession:\n  secrets: [\"{SECRET}\"]\nproviders:\n{}{}",
            provider("corp", "Corp SSO"),
            provider("partners", "Partner Login"),
        );
        GatewayProcess::start_on(
            &format!("127.0.0.1:{port}"),
            &config,
            &[("app.yaml", &policy)],
        )
    })
    .await;

    let mut browser = Browser::new();
    let page = browser
        .get(
            &format!("{base}/oauth2/start?rd=%2Fapp%2Fpage%3Fx%3D1"),
            HTML,
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK, "{}", gateway.logs());
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Corp SSO") && html.contains("Partner Login"),
        "{html}"
    );
    let links = provider_links(&html);
    assert_eq!(links.len(), 2, "{html}");
    for (link, name) in links.iter().zip(["corp", "partners"]) {
        let url = Url::parse(&base).unwrap().join(link).unwrap();
        assert_eq!(url.path(), "/oauth2/start", "{link}");
        let params: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(params["provider"], name, "{link}");
        assert_eq!(params["rd"], "/app/page?x=1", "{link}");
        let to_provider = Browser::new().get(url.as_str(), HTML).await;
        assert_eq!(to_provider.status(), StatusCode::FOUND, "{link}");
        let location = to_provider.headers()[LOCATION].to_str().unwrap();
        assert!(location.starts_with(&idp.issuer()), "{link} → {location}");
    }

    // The second button logs in all the way and comes back to rd.
    let to_provider = browser.get(&format!("{base}{}", links[1]), HTML).await;
    let back = browser.complete_login(&base, to_provider, "alice").await;
    assert_eq!(back.status(), StatusCode::FOUND, "{}", gateway.logs());
    assert_eq!(back.headers()[LOCATION], "/app/page?x=1");
    let page = browser.get(&format!("{base}/app/page?x=1"), HTML).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        upstream.last().header("x-auth-request-email"),
        Some("alice@example.com")
    );
}

#[tokio::test]
async fn tampered_or_truncated_session_cookie_is_no_session() {
    let (_idp, providers) = idp_and_providers(30);
    let codec = codec();
    let (_, _, set_cookies) = login(&providers, &codec, "alice", "/").await;
    let cookie = cookies_from(&set_cookies.iter().collect::<Vec<_>>());
    let text = cookie[COOKIE].to_str().unwrap().to_owned();
    let (name, value) = text.split_once('=').unwrap();
    let mut flipped = value.to_owned().into_bytes();
    flipped[40] = if flipped[40] == b'x' { b'y' } else { b'x' };
    for bad in [
        String::from_utf8(flipped).unwrap(),
        value[..value.len() - 10].to_owned(),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, format!("{name}={bad}").parse().unwrap());
        assert_eq!(codec.open(&headers), None);
    }
}

#[tokio::test]
async fn several_providers_need_a_choice_and_list_for_the_chooser() {
    let config = |name: &str, display: &str| {
        provider_config(serde_json::json!({
            "name": name, "kind": "oidc", "issuer": "http://127.0.0.1:1", "client_id": "c", "display_name": display
        }))
    };
    let providers = Providers::new(
        &[config("a", "Corp SSO"), config("b", "Partners")],
        &public_url(),
    )
    .unwrap();
    assert_eq!(
        providers.list(),
        [
            ("a".into(), "Corp SSO".into()),
            ("b".into(), "Partners".into())
        ]
    );
    let err = start(&providers, &codec(), "").await.err().unwrap();
    assert!(matches!(err, LoginError::NoProviderChosen));
    let err = start(&providers, &codec(), "?provider=zzz")
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), StatusCode::NOT_FOUND);
}

async fn set_groups(idp: &OidcProvider, user: &str, groups: &str) {
    let url = format!(
        "{}/__admin/groups?user={user}&groups={groups}",
        idp.issuer()
    );
    let response = reqwest::Client::new().post(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

// ---- GitHub and Bitbucket against a local server in their documented response shapes ----

/// The JSON body for a method and path with query, and the `Link` header to send with it.
type Routes = Arc<dyn Fn(&str, &str) -> Option<(Option<String>, String)> + Send + Sync>;

/// Serves `routes(method, path_and_query)` as JSON; requires `Bearer test-token` on API calls.
async fn api_server(routes: Routes) -> u16 {
    let port = free_port();
    api_server_on(port, routes).await;
    port
}

/// [`api_server`] on a chosen port, for routes that name the server's own URLs.
async fn api_server_on(port: u16, routes: Routes) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let routes = routes.clone();
                        async move {
                            let path = request
                                .uri()
                                .path_and_query()
                                .map(|p| p.as_str())
                                .unwrap_or("/")
                                .to_owned();
                            let is_token = path.contains("access_token");
                            let authorized = request
                                .headers()
                                .get(http::header::AUTHORIZATION)
                                .is_some_and(|v| v == "Bearer test-token");
                            let (status, link, body) =
                                match routes(request.method().as_str(), &path) {
                                    Some((link, body)) if is_token || authorized => {
                                        (StatusCode::OK, link, body)
                                    }
                                    Some(_) => (StatusCode::UNAUTHORIZED, None, "{}".into()),
                                    None => (StatusCode::NOT_FOUND, None, "{}".into()),
                                };
                            let mut response = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json");
                            if let Some(link) = link {
                                response = response.header(http::header::LINK, link);
                            }
                            let response = response.body(Full::new(Bytes::from(body))).unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
}

const TOKEN: &str = r#"{"access_token":"test-token","token_type":"bearer","scope":"read:user,user:email,read:org"}"#;

/// Starts a login with `rd=/x` and comes back with a code, as the provider would send it.
async fn oauth2_callback(providers: &Providers) -> Result<Session, LoginError> {
    let codec = codec();
    let started = start(providers, &codec, "?rd=/x").await.unwrap();
    let authorize = Url::parse(&started.authorize).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let callback = format!("/oauth2/callback?code=abc&state={}", urlencode(&state));
    let (session, rd, _) = providers
        .callback(&parts(&callback, &started.cookies), &codec)
        .await?;
    assert_eq!(rd, "/x");
    Ok(session)
}

async fn oauth2_login(providers: &Providers) -> Session {
    oauth2_callback(providers).await.unwrap()
}

/// A Bitbucket provider whose every endpoint is on `base`.
fn bitbucket_at(base: &str) -> Providers {
    let config = provider_config(serde_json::json!({
        "name": "bb", "kind": "bitbucket", "client_id": "c", "client_secret": "s",
        "auth_url": format!("{base}/site/oauth2/authorize"),
        "token_url": format!("{base}/site/oauth2/access_token"),
        "api_url": format!("{base}/2.0"),
    }));
    Providers::new(&[config], &public_url()).unwrap()
}

#[tokio::test]
async fn github_identity_comes_from_user_emails_orgs_and_teams() {
    let port = api_server(Arc::new(|method, path| {
        let body = match (method, path.split('?').next().unwrap()) {
            ("POST", "/login/oauth/access_token") => TOKEN,
            ("GET", "/api/v3/user") => r#"{"login":"octocat","id":583231,"name":"The Octocat","email":null,"type":"User"}"#,
            ("GET", "/api/v3/user/emails") => {
                r#"[{"email":"old@example.com","primary":false,"verified":true,"visibility":null},
                    {"email":"octocat@github.com","primary":true,"verified":true,"visibility":"public"}]"#
            }
            ("GET", "/api/v3/user/orgs") => r#"[{"login":"github","id":1,"url":"https://api.github.com/orgs/github"}]"#,
            ("GET", "/api/v3/user/teams") => {
                r#"[{"id":1,"name":"Justice League","slug":"justice-league","organization":{"login":"github","id":1}}]"#
            }
            _ => return None,
        };
        Some((None, body.to_owned()))
    }))
    .await;
    let config = provider_config(serde_json::json!({
        "name": "gh", "kind": "github", "client_id": "c", "client_secret": "s", "url": format!("http://127.0.0.1:{port}")
    }));
    let providers = Providers::new(&[config], &public_url()).unwrap();
    let session = oauth2_login(&providers).await;
    let user = session.identity;
    let started = start(&providers, &codec(), "").await.unwrap();
    let authorize = Url::parse(&started.authorize).unwrap();
    assert_eq!(authorize.path(), "/login/oauth/authorize");
    let scope = authorize
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(scope, "read:user user:email read:org");
    assert_eq!(user.subject, "583231");
    assert_eq!(user.preferred_username.as_deref(), Some("octocat"));
    assert_eq!(user.email.as_deref(), Some("octocat@github.com"));
    assert!(user.email_verified);
    assert_eq!(user.groups, ["github", "github/justice-league"]);
    assert_eq!(user.provider, "gh");
}

#[tokio::test]
async fn bitbucket_identity_comes_from_user_emails_and_workspaces() {
    let port = api_server(Arc::new(|method, path| {
        let body = match (method, path.split('?').next().unwrap()) {
            ("POST", "/site/oauth2/access_token") => {
                r#"{"access_token":"test-token","token_type":"bearer","expires_in":7200,"refresh_token":"r1","scopes":"account email"}"#
            }
            ("GET", "/2.0/user") => {
                r#"{"uuid":"{d301aafa-d676-4ee0-88be-962be7417567}","username":"tutorials","display_name":"Tutorials","account_id":"557058:ab"}"#
            }
            ("GET", "/2.0/user/emails") => {
                r#"{"pagelen":10,"values":[{"email":"tutorials@example.com","is_primary":true,"is_confirmed":false,"type":"email"}],"page":1,"size":1}"#
            }
            ("GET", "/2.0/user/permissions/workspaces") => {
                r#"{"pagelen":10,"values":[{"permission":"owner","workspace":{"slug":"atlassian","name":"Atlassian"}},
                    {"permission":"member","workspace":{"slug":"tutorials","name":"Tutorials"}}],"page":1,"size":2}"#
            }
            _ => return None,
        };
        Some((None, body.to_owned()))
    }))
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let providers = bitbucket_at(&base);
    let session = oauth2_login(&providers).await;
    let user = &session.identity;
    assert_eq!(user.subject, "{d301aafa-d676-4ee0-88be-962be7417567}");
    assert_eq!(user.email.as_deref(), Some("tutorials@example.com"));
    assert!(
        !user.email_verified,
        "unconfirmed primary email is not verified"
    );
    assert_eq!(user.groups, ["atlassian", "tutorials"]);
    assert_eq!(
        session.tokens.as_ref().unwrap().refresh_token.as_deref(),
        Some("r1")
    );
}

/// A GitHub API whose team list comes in two pages, the second one named by `next_page` (a URL
/// with `{base}` standing for this server's origin).
async fn github_with_two_team_pages(next_page: &'static str) -> Providers {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let served_base = base.clone();
    let routes: Routes = Arc::new(move |method, path| {
        let (link, body) = match (method, path) {
            ("POST", p) if p.starts_with("/login/oauth/access_token") => (None, TOKEN),
            ("GET", "/api/v3/user") => (None, r#"{"login":"octocat","id":583231,"name":null}"#),
            ("GET", "/api/v3/user/emails?per_page=100") => (None, "[]"),
            ("GET", "/api/v3/user/orgs?per_page=100") => (None, r#"[{"login":"github"}]"#),
            ("GET", "/api/v3/user/teams?per_page=100") => (
                Some(format!(
                    "<{}>; rel=\"next\", <{served_base}/api/v3/user/teams?per_page=100&page=9>; rel=\"last\"",
                    next_page.replace("{base}", &served_base)
                )),
                r#"[{"slug":"one","organization":{"login":"github"}}]"#,
            ),
            ("GET", "/api/v3/user/teams?per_page=100&page=2") => (
                None,
                r#"[{"slug":"two","organization":{"login":"github"}}]"#,
            ),
            _ => return None,
        };
        Some((link, body.to_owned()))
    });
    api_server_on(port, routes).await;
    let config = provider_config(serde_json::json!({
        "name": "gh", "kind": "github", "client_id": "c", "client_secret": "s", "url": base
    }));
    Providers::new(&[config], &public_url()).unwrap()
}

#[tokio::test]
async fn github_lists_are_read_across_pages() {
    let providers =
        github_with_two_team_pages("{base}/api/v3/user/teams?per_page=100&page=2").await;
    let session = oauth2_login(&providers).await;
    assert_eq!(
        session.identity.groups,
        ["github", "github/one", "github/two"]
    );
}

#[tokio::test]
async fn a_next_page_on_another_origin_fails_the_login() {
    let providers =
        github_with_two_team_pages("https://evil.example/api/v3/user/teams?page=2").await;
    let error = oauth2_callback(&providers)
        .await
        .expect_err("the login fails");
    let message = error.to_string();
    assert!(message.contains("gh"), "{message}");
    assert!(
        format!("{error:?}").contains("evil.example"),
        "the error names the foreign origin: {error:?}"
    );
}

#[tokio::test]
async fn bitbucket_lists_are_read_across_pages() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let next = format!("{base}/2.0/user/permissions/workspaces?pagelen=100&page=2");
    let routes: Routes = Arc::new(move |method, path| {
        let body = match (method, path) {
            ("POST", "/site/oauth2/access_token") => TOKEN.to_owned(),
            ("GET", "/2.0/user") => r#"{"uuid":"{u}","username":"tutorials"}"#.to_owned(),
            ("GET", "/2.0/user/emails?pagelen=100") => r#"{"values":[]}"#.to_owned(),
            ("GET", "/2.0/user/permissions/workspaces?pagelen=100") => {
                format!(r#"{{"values":[{{"workspace":{{"slug":"one"}}}}],"next":"{next}"}}"#)
            }
            ("GET", "/2.0/user/permissions/workspaces?pagelen=100&page=2") => {
                r#"{"values":[{"workspace":{"slug":"two"}}]}"#.to_owned()
            }
            _ => return None,
        };
        Some((None, body))
    });
    api_server_on(port, routes).await;
    let providers = bitbucket_at(&base);
    let session = oauth2_login(&providers).await;
    assert_eq!(session.identity.groups, ["one", "two"]);
}

/// GitHub and Bitbucket need no discovery, so their token endpoint is what `/oauth2/start`
/// probes: while it is down the browser gets the 503 page, not a redirect to a dead provider,
/// and the login starts again once it answers (after the failure is remembered for 5 s).
#[tokio::test]
async fn github_login_waits_for_its_token_endpoint_to_answer() {
    let port = free_port();
    let config = provider_config(serde_json::json!({
        "name": "gh", "kind": "github", "client_id": "c", "client_secret": "s",
        "url": format!("http://127.0.0.1:{port}")
    }));
    let providers = Providers::new(&[config], &public_url()).unwrap();
    let down = start(&providers, &codec(), "").await;
    assert!(
        matches!(&down, Err(LoginError::ProviderUnavailable { provider, .. }) if provider == "gh"),
        "{:?}",
        down.err()
    );

    api_server_on(port, Arc::new(|_, _| None)).await;
    let remembered = start(&providers, &codec(), "").await;
    assert!(remembered.is_err(), "the failure holds for a few seconds");
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    let up = start(&providers, &codec(), "").await.expect("redirects");
    assert_eq!(
        Url::parse(&up.authorize).unwrap().path(),
        "/login/oauth/authorize"
    );
}

#[test]
fn free_port_is_loopback_bindable() {
    assert!(free_port() > 0);
}
