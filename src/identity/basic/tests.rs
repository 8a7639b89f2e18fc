use std::net::Ipv4Addr;

use super::ratelimit::ManualClock;
use super::*;
use crate::telemetry::test_support::LogBuffer;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// Cheap argon2 parameters so debug-build tests stay fast.
fn cheap() -> Params {
    Params::new(256, 1, 1, None).unwrap()
}

fn hash(password: &str) -> String {
    credentials::hash_with(password.as_bytes(), cheap()).unwrap()
}

fn users_yaml(entries: &[(&str, &str)]) -> String {
    let mut text = String::from("users:\n");
    for (name, password) in entries {
        text.push_str(&format!(
            "  {name}:\n    password_hash: \"{}\"\n    email: {name}@example.com\n    groups: [analysts]\n",
            hash(password)
        ));
    }
    text
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    basic: Arc<BasicAuth>,
}

fn fixture(yaml: &str, tweak: impl FnOnce(&mut BasicAuthConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut config = BasicAuthConfig {
        credentials_file: Some(path),
        ..BasicAuthConfig::default()
    };
    tweak(&mut config);
    let clock = ManualClock::new();
    let basic = BasicAuth::load_with(&config, clock.clone(), cheap(), Vec::new()).unwrap();
    Fixture { dir, clock, basic }
}

fn load_err(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = BasicAuthConfig {
        credentials_file: Some(path),
        ..BasicAuthConfig::default()
    };
    BasicAuth::load_with(&config, Arc::new(SystemClock), cheap(), Vec::new())
        .unwrap_err()
        .to_string()
}

#[tokio::test]
async fn hashed_user_logs_in_with_identity_from_the_file() {
    let yaml = format!(
        "users:\n  alice:\n    password_hash: \"{}\"\n    email: alice@example.com\n    email_verified: true\n    name: Alice\n    groups: [analysts, admins]\n  bob:\n    password_hash: \"{}\"\n    email: bob@example.com\n",
        hash("correct horse"),
        hash("battery staple")
    );
    let f = fixture(&yaml, |_| {});
    let alice = f
        .basic
        .authenticate("alice", "correct horse", IP)
        .await
        .unwrap();
    assert_eq!(alice.subject, "alice");
    assert_eq!(alice.provider, "basic");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert!(alice.email_verified);
    assert_eq!(alice.name.as_deref(), Some("Alice"));
    assert_eq!(alice.groups, ["analysts", "admins"]);
    let bob = f
        .basic
        .authenticate("bob", "battery staple", IP)
        .await
        .unwrap();
    assert!(!bob.email_verified, "unmarked emails are not verified");
}

#[tokio::test]
async fn wrong_password_is_invalid_credentials() {
    let f = fixture(&users_yaml(&[("alice", "correct horse")]), |_| {});
    let err = f
        .basic
        .authenticate("alice", "wrong", IP)
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials);
    assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
    let err = f
        .basic
        .authenticate("Alice", "correct horse", IP)
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials, "usernames are exact");
}

#[tokio::test]
async fn unknown_user_is_checked_against_a_dummy_hash_of_the_same_cost() {
    let user_params = Params::new(512, 2, 1, None).unwrap();
    let yaml = format!(
        "users:\n  alice:\n    password_hash: \"{}\"\n",
        credentials::hash_with(b"pw", user_params.clone()).unwrap()
    );
    let f = fixture(&yaml, |_| {});
    for name in ["mallory", "", "bad\nname"] {
        let Check::Dummy { phc } = f.basic.plan(name) else {
            panic!("{name:?} must take the dummy path")
        };
        let dummy = Params::try_from(&PasswordHash::new(&phc).unwrap()).unwrap();
        assert_eq!(
            (dummy.m_cost(), dummy.t_cost(), dummy.p_cost()),
            (512, 2, 1)
        );
    }
    let err = f.basic.authenticate("mallory", "pw", IP).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials);
}

#[test]
fn plain_text_passwords_are_refused_at_load_with_file_and_line() {
    let yaml = format!(
        "users:\n  alice:\n    password: hunter2\n  bob:\n    password_hash: hunter2\n  carol:\n    password_hash: \"{}\"\n  dave:\n    email: d@example.com\n",
        hash("ok")
    );
    let err = load_err(&yaml);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "every problem at once: {err}");
    assert!(lines[0].contains("users.yaml:3:"), "{err}");
    assert!(lines[0].contains("plain-text passwords are refused"));
    assert!(lines[0].contains("portcullis hash-password"));
    assert!(lines[1].contains("users.yaml:5:"), "{err}");
    assert!(lines[1].contains("plain-text password"));
    assert!(
        lines[2].contains("users.yaml:9:") && lines[2].contains("password_hash` is missing"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the refused password is not echoed"
    );
}

#[test]
fn yaml_errors_and_unknown_keys_name_the_line() {
    let err = load_err("users:\n  alice:\n    password_hash: \"$argon2id$x\"\n    role: admin\n");
    assert!(err.contains("users.yaml:4:"), "{err}");
    let err = load_err("users:\n  alice: [unclosed\n");
    assert!(err.contains("users.yaml:"), "{err}");
    let err = load_err(&format!(
        "users:\n  alice:\n    password_hash: \"{}\"\n",
        "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA"
    ));
    assert!(
        err.contains("users.yaml:3:") && err.contains("not supported"),
        "{err}"
    );
}

#[test]
fn config_without_a_login_method_or_with_bad_limits_is_refused() {
    let err = BasicAuth::load(&BasicAuthConfig::default(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("credentials_file"), "{err}");
    let config = BasicAuthConfig {
        master_password: Some("x".into()),
        rate_limit: RateLimitConfig {
            max_failures: 0,
            ..RateLimitConfig::default()
        },
        ..BasicAuthConfig::default()
    };
    assert!(BasicAuth::load(&config, Vec::new()).is_err());
    let config = BasicAuthConfig {
        master_password: Some(String::new()),
        ..BasicAuthConfig::default()
    };
    assert!(
        BasicAuth::load_with(&config, Arc::new(SystemClock), cheap(), Vec::new())
            .unwrap_err()
            .to_string()
            .contains("environment variable")
    );
}

#[cfg(not(feature = "pam"))]
#[test]
fn pam_section_without_the_feature_is_refused() {
    let config = BasicAuthConfig {
        pam: Some(PamConfig {
            service: "login".into(),
        }),
        ..BasicAuthConfig::default()
    };
    let err = BasicAuth::load(&config, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("--features pam"), "{err}");
}

#[tokio::test]
async fn rate_limit_refuses_then_recovers() {
    let f = fixture(&users_yaml(&[("alice", "right")]), |_| {});
    for _ in 0..5 {
        assert_eq!(
            f.basic.authenticate("alice", "wrong", IP).await,
            Err(AuthError::InvalidCredentials)
        );
    }
    let err = f
        .basic
        .authenticate("alice", "right", IP)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::RateLimited {
            retry_after: Duration::from_secs(60)
        }
    );
    assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err.retry_after_secs(), Some(60));
    f.clock.advance(Duration::from_secs(30));
    assert!(matches!(
        f.basic.authenticate("alice", "right", IP).await,
        Err(AuthError::RateLimited { retry_after }) if retry_after == Duration::from_secs(30)
    ));
    f.clock.advance(Duration::from_secs(31));
    assert!(f.basic.authenticate("alice", "right", IP).await.is_ok());
}

#[tokio::test]
async fn csrf_missing_or_forged_is_refused() {
    let f = fixture(&users_yaml(&[("alice", "right")]), |_| {});
    let token = f.basic.csrf_token(&http::HeaderMap::new(), false);
    let cookie_pair = token.set_cookie.split(';').next().unwrap().to_owned();
    let mut with_cookie = http::HeaderMap::new();
    with_cookie.insert(http::header::COOKIE, cookie_pair.parse().unwrap());

    assert_eq!(
        f.basic.check_csrf(&with_cookie, Some(&token.form_token)),
        Ok(())
    );
    assert_eq!(
        f.basic.check_csrf(&with_cookie, None),
        Err(CsrfError::Missing)
    );
    assert_eq!(
        f.basic
            .check_csrf(&http::HeaderMap::new(), Some(&token.form_token)),
        Err(CsrfError::Missing)
    );
    let mut forged = token.form_token.clone();
    forged.replace_range(0..1, if forged.starts_with('A') { "B" } else { "A" });
    assert_eq!(
        f.basic.check_csrf(&with_cookie, Some(&forged)),
        Err(CsrfError::Forged)
    );
    let mut attacker_cookie = http::HeaderMap::new();
    attacker_cookie.insert(
        http::header::COOKIE,
        "portcullis_csrf=attacker.1795355820".parse().unwrap(),
    );
    assert_eq!(
        f.basic
            .check_csrf(&attacker_cookie, Some(&token.form_token)),
        Err(CsrfError::Forged)
    );
}

#[test]
fn broken_edit_keeps_the_last_good_file() {
    let f = fixture(&users_yaml(&[("alice", "one")]), |_| {});
    let path = f.dir.path().join("users.yaml");
    assert!(
        !f.basic.reload().unwrap(),
        "unchanged content is not reloaded"
    );
    std::fs::write(&path, "users:\n  alice:\n    password: plain\n").unwrap();
    let err = f.basic.reload().unwrap_err();
    assert!(err.to_string().contains("users.yaml:3:"), "{err}");
    assert!(
        f.basic
            .loaded
            .load()
            .credentials
            .users
            .contains_key("alice")
    );
    std::fs::remove_file(&path).unwrap();
    assert!(f.basic.reload().is_err());
    assert!(
        f.basic
            .loaded
            .load()
            .credentials
            .users
            .contains_key("alice")
    );
}

#[tokio::test]
async fn credentials_hot_reload_through_the_watcher() {
    let f = fixture(&users_yaml(&[("alice", "one")]), |_| {});
    let _watch = f
        .basic
        .watch()
        .unwrap()
        .expect("a credentials file is watched");
    let path = f.dir.path().join("users.yaml");
    let replace = |text: &str| {
        let staged = f.dir.path().join(".users.yaml.tmp");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, &path).unwrap();
    };

    replace(&users_yaml(&[("alice", "two"), ("bob", "three")]));
    let mut reloaded = false;
    for _ in 0..100 {
        if f.basic.loaded.load().credentials.users.contains_key("bob") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new file must be picked up");
    assert!(f.basic.authenticate("alice", "two", IP).await.is_ok());

    replace("users:\n  alice: [broken\n");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        f.basic.last_seen.lock().as_deref(),
        Some(read(&path).unwrap().1.as_slice()),
        "the broken edit was seen"
    );
    assert!(
        f.basic.authenticate("bob", "three", IP).await.is_ok(),
        "last good file keeps serving"
    );
}

#[tokio::test]
async fn master_password_admits_any_other_username() {
    let f = fixture(&users_yaml(&[("alice", "own")]), |config| {
        config.master_password = Some("demo-master".into());
    });
    let guest = f
        .basic
        .authenticate("visitor", "demo-master", IP)
        .await
        .unwrap();
    assert_eq!(guest.subject, "visitor");
    assert!(guest.email.is_none() && !guest.email_verified);
    assert_eq!(
        f.basic.authenticate("alice", "demo-master", IP).await,
        Err(AuthError::InvalidCredentials),
        "file users keep their own password"
    );
}

#[test]
fn no_password_or_failed_username_reaches_the_logs() {
    const MASTER: &str = "s3cret-master-value";
    const ATTEMPT: &str = "typed-password-9f2";
    const TYPO_USER: &str = "password-in-username-field";
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buffer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let f = fixture(&users_yaml(&[("alice", ATTEMPT)]), |config| {
            config.master_password = Some(MASTER.into());
        });
        let _ = f.basic.authenticate("alice", "wrong-guess-77", IP).await;
        let _ = f.basic.authenticate(TYPO_USER, ATTEMPT, IP).await;
        let _ = f.basic.authenticate("visitor", MASTER, IP).await;
        let _ = f.basic.authenticate("alice", ATTEMPT, IP).await;
        for _ in 0..6 {
            let _ = f.basic.authenticate("alice", "wrong-guess-77", IP).await;
        }
        let _ = format!(
            "{:?} {:?}",
            f.basic,
            BasicAuthConfig {
                master_password: Some(MASTER.into()),
                ..BasicAuthConfig::default()
            }
        );
    });
    let logs = buffer.contents();
    assert!(logs.contains("master_password is set"), "{logs}");
    assert!(logs.contains("basic login failed"), "{logs}");
    assert!(logs.contains("too many failures"), "{logs}");
    for secret in [MASTER, ATTEMPT, TYPO_USER, "wrong-guess-77"] {
        assert!(!logs.contains(secret), "{secret} leaked into:\n{logs}");
    }
}

#[test]
fn hash_password_makes_a_verifiable_argon2id_hash() {
    let phc = hash_password("correct horse").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(verify(&phc, "correct horse"));
    assert!(!verify(&phc, "correct horsE"));
    assert!(matches!(hash_password(""), Err(HashError::Empty)));
}

#[cfg(feature = "pam")]
#[tokio::test]
async fn pam_checks_users_missing_from_the_file() {
    let service = "portcullis-test-basic";
    let body = "auth required pam_succeed_if.so user = pam-friend\nauth required pam_permit.so\naccount required pam_permit.so\n";
    if std::fs::write(Path::new("/etc/pam.d").join(service), body).is_err() {
        eprintln!("skipped: cannot write /etc/pam.d (not root)");
        return;
    }
    let f = fixture(&users_yaml(&[("alice", "own")]), |config| {
        config.pam = Some(PamConfig {
            service: service.into(),
        });
    });
    let friend = f
        .basic
        .authenticate("pam-friend", "whatever", IP)
        .await
        .unwrap();
    assert_eq!(
        (friend.subject.as_str(), friend.provider.as_str()),
        ("pam-friend", "basic")
    );
    assert_eq!(
        f.basic.authenticate("stranger", "whatever", IP).await,
        Err(AuthError::InvalidCredentials)
    );
    assert!(
        f.basic.authenticate("alice", "own", IP).await.is_ok(),
        "file users skip PAM"
    );
}
