//! Capability tokens from a live gateway: the upstream's token verifies with the published
//! keys (in Rust and with biscuit-python), a client-sent token never passes, and a key added to
//! or removed from the key directory rotates without a restart.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis::verify::{Verifier, VerifyError};
use support::gateway::{GatewayProcess, keygen};
use support::http::get;
use support::upstream::Upstream;

const BASIC_ALICE: &str = "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ="; // alice:alice-password

async fn setup() -> (Upstream, GatewayProcess) {
    setup_with("").await
}

/// The gateway with `capability` lines added to its `capability:` section.
async fn setup_with(capability: &'static str) -> (Upstream, GatewayProcess) {
    let upstream = Upstream::start().await;
    let hash = portcullis::identity::basic::hash_password("alice-password").unwrap();
    let policy = format!(
        "routes:\n  - name: app\n    match: {{ path: \"/app/**\" }}\n    upstream: {up}\n    websocket: true\n    rules:\n      - name: analysts\n        allow: {{ groups: [analysts] }}\n        grants: [read, write]\n  - name: other\n    match: {{ path: \"/other/**\" }}\n    upstream: {up}\n    rules:\n      - name: analysts\n        allow: {{ groups: [analysts] }}\n        grants: [read]\n",
        up = upstream.url()
    );
    let gateway = tokio::task::spawn_blocking(move || {
        let dir = GatewayProcess::prepare(
            "127.0.0.1:0",
            &format!("basic_auth:\n  credentials_file: users.yaml\n  allow_header: true\ncapability:\n  keys_dir: keys\n  ttl: 300\n{capability}"),
            &[("app.yaml", &policy)],
        );
        std::fs::write(
            dir.path().join("users.yaml"),
            format!("users:\n  alice:\n    password_hash: \"{hash}\"\n    email: alice@example.com\n    email_verified: true\n    groups: [analysts]\n"),
        )
        .unwrap();
        keygen(&dir.path().join("keys"));
        GatewayProcess::spawn(dir, &[])
    })
    .await
    .unwrap();
    (upstream, gateway)
}

async fn token_for(gateway: &GatewayProcess, upstream: &Upstream, path: &str) -> String {
    let reply = get(
        &gateway.url(path),
        &[
            ("authorization", BASIC_ALICE),
            ("x-auth-capability", "forged-by-the-client"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = upstream
        .last()
        .header("x-auth-capability")
        .expect("the upstream gets a token")
        .to_string();
    assert_ne!(
        token, "forged-by-the-client",
        "a client-sent token must never pass"
    );
    token
}

async fn keys_json(gateway: &GatewayProcess) -> String {
    let reply = get(&gateway.url("/.well-known/portcullis/keys.json"), &[]).await;
    assert_eq!(reply.status, 200);
    reply.body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_token_verifies_with_the_published_keys() {
    let (upstream, gateway) = setup().await;
    let token = token_for(&gateway, &upstream, "/app/page").await;
    let verifier = Verifier::from_jwks_like_json(&keys_json(&gateway).await).unwrap();

    let claims = verifier.verify(&token, "app", Some("write")).unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
    assert_eq!(claims.groups, vec!["analysts"]);
    assert_eq!(claims.rights, vec!["read", "write"]);
    assert_eq!(claims.provider, "basic");

    assert!(matches!(
        verifier.verify(&token, "other", None),
        Err(VerifyError::WrongRoute { .. })
    ));
    let other = token_for(&gateway, &upstream, "/other/page").await;
    assert!(matches!(
        verifier.verify(&other, "other", Some("write")),
        Err(VerifyError::MissingRight { .. })
    ));
    // One character of the signature block changed: well-formed, but not what the key signed.
    let mut altered = token.clone().into_bytes();
    let at = altered.len() - 10;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verifier.verify(std::str::from_utf8(&altered).unwrap(), "app", None),
        Err(VerifyError::BadSignature)
    );
    // The gateway's own token, past its TTL (default 5 minutes).
    let later = std::time::SystemTime::now() + Duration::from_secs(5 * 60 + 1);
    assert_eq!(
        verifier.verify_at(&token, "app", None, later),
        Err(VerifyError::Expired)
    );

    // The same check a downstream runs from the command line.
    let keys_file = gateway.dir.path().join("published-keys.json");
    std::fs::write(&keys_file, keys_json(&gateway).await).unwrap();
    let cli = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "token", "verify", "--route", "app", "--right", "read", "--keys",
        ])
        .arg(&keys_file)
        .arg(&token)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stdout)
    );
}

fn python() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("PORTCULLIS_PYTHON")
        .map_or_else(|| repo.join(".venv/bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "no Python with biscuit-python: run `bash scripts/test.sh` (it makes .venv)"
    );
    python
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_verifies_a_real_token_from_the_gateway() {
    let (upstream, gateway) = setup().await;
    let token = token_for(&gateway, &upstream, "/app/page").await;
    let keys = gateway.dir.path().join("published-keys.json");
    std::fs::write(&keys, keys_json(&gateway).await).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/panel/verify_token.py");
    let run = |args: &[&str], token: &str| {
        let output = Command::new(python())
            .arg(&script)
            .arg("--keys")
            .arg(&keys)
            .args(args)
            .arg(token)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (ok, out) = run(&["--route", "app", "--right", "read"], &token);
    assert!(ok, "{out}");
    assert!(out.contains("alice"), "{out}");
    let (ok, _) = run(&["--route", "other"], &token);
    assert!(!ok, "another route's token is refused");
    // A character in the middle: the last one may carry only padding bits, which a decoder
    // ignores, and may already be the replacement.
    let middle = token.len() / 2;
    let replacement = if &token[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!("{}{replacement}{}", &token[..middle], &token[middle + 1..]);
    let (ok, _) = run(&["--route", "app"], &tampered);
    assert!(!ok, "a tampered token is refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_added_and_removed_rotate_without_a_restart() {
    let (upstream, gateway) = setup().await;
    let keys_dir = gateway.dir.path().join("keys");
    let old_token = token_for(&gateway, &upstream, "/app/page").await;
    let old_verifier = Verifier::from_jwks_like_json(&keys_json(&gateway).await).unwrap();
    let old_kid = old_verifier.kids().next().unwrap();

    keygen(&keys_dir);
    let deadline = Instant::now() + Duration::from_secs(5);
    let both = loop {
        let verifier = Verifier::from_jwks_like_json(&keys_json(&gateway).await).unwrap();
        if verifier.kids().count() == 2 {
            break verifier;
        }
        assert!(Instant::now() < deadline, "the new key was not published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_token = token_for(&gateway, &upstream, "/app/page").await;
    assert_ne!(new_token, old_token, "the newest key signs");
    assert!(
        matches!(
            old_verifier.verify(&new_token, "app", None),
            Err(VerifyError::UnknownKey { kid: Some(_) })
        ),
        "signed by the new key"
    );
    assert!(both.verify(&new_token, "app", None).is_ok());
    assert!(
        both.verify(&old_token, "app", None).is_ok(),
        "old tokens verify while their key is published"
    );

    std::fs::remove_file(keys_dir.join(format!("key-{old_kid}.pem"))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let verifier = Verifier::from_jwks_like_json(&keys_json(&gateway).await).unwrap();
        if verifier.kids().count() == 1 {
            assert!(matches!(
                verifier.verify(&old_token, "app", None),
                Err(VerifyError::UnknownKey { .. })
            ));
            assert!(verifier.verify(&new_token, "app", None).is_ok());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the removed key is still published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_upgrade_carries_the_token_under_the_configured_header() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let (upstream, gateway) = setup_with("  header: X-App-Token\n").await;
    let mut request = format!("ws://{}/app/ws", gateway.addr)
        .into_client_request()
        .unwrap();
    for (name, value) in [
        ("origin", format!("http://{}", gateway.addr)),
        ("authorization", BASIC_ALICE.to_owned()),
        ("x-app-token", "forged-by-the-client".to_owned()),
        ("x-auth-capability", "forged-by-the-client".to_owned()),
    ] {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("upgrade refused: {e}\n{}", gateway.logs()));
    assert_eq!(response.status(), 101);
    socket.send(Message::text("hi")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("hi"));

    let upgrade = upstream.last();
    assert_eq!(upgrade.path_and_query, "/app/ws");
    assert_eq!(
        upgrade.header("x-auth-capability"),
        None,
        "the default name is not used, and the client's header never passes"
    );
    let token = upgrade
        .header("x-app-token")
        .expect("the upgrade carries a token under the configured name")
        .to_string();
    assert_ne!(token, "forged-by-the-client");
    let verifier = Verifier::from_jwks_like_json(&keys_json(&gateway).await).unwrap();
    let claims = verifier.verify(&token, "app", Some("write")).unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.rights, vec!["read", "write"]);
    socket.close(None).await.unwrap();
}
