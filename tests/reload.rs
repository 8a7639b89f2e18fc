//! Hot reload against the real binary: policy files edited every way an operator or Kubernetes
//! edits them while the gateway serves, broken edits that must not take effect, live WebSockets
//! re-checked after a swap, and reloads under load.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::gateway::{GatewayProcess, signal, write_atomically};
use support::http::get;
use support::upstream::Upstream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn route(upstream: &Upstream, path: &str, rule: &str) -> String {
    format!(
        "routes:\n  - name: {name}\n    match: {{ path: \"{path}/**\" }}\n    upstream: {upstream}\n    websocket: true\n    rules:\n{rule}",
        name = path.trim_start_matches('/'),
        upstream = upstream.url(),
    )
}

const GUEST: &str = "      - name: everyone\n        guest: true\n";
const DENY_ALL: &str = "      - name: nobody\n        deny: {}\n";

async fn start(files: Vec<(&'static str, String)>) -> GatewayProcess {
    tokio::task::spawn_blocking(move || {
        let borrowed: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        GatewayProcess::start("", &borrowed)
    })
    .await
    .unwrap()
}

/// Polls until `url` answers `status` (the new set serves), failing after 3 s.
async fn eventually(url: &str, status: u16) -> Duration {
    let started = Instant::now();
    loop {
        let reply = get(url, &[]).await;
        if reply.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{url} still answers {} instead of {status}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn readyz(gateway: &GatewayProcess) -> serde_json::Value {
    serde_json::from_str(&get(&gateway.url("/readyz"), &[]).await.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_file_change_takes_effect() {
    let upstream = Upstream::start().await;
    let gateway = start(vec![("app.yaml", route(&upstream, "/app", GUEST))]).await;
    let dir = gateway.policy_dir();
    let app = gateway.url("/app/x");
    assert_eq!(get(&app, &[]).await.status, 200);

    // An editor's save: write a sibling, rename over.
    write_atomically(&dir.join("app.yaml"), &route(&upstream, "/app", DENY_ALL));
    eventually(&app, 403).await;
    // An in-place write.
    std::fs::write(dir.join("app.yaml"), route(&upstream, "/app", GUEST)).unwrap();
    eventually(&app, 200).await;
    // A new file adds a route.
    let other = gateway.url("/other/y");
    assert_eq!(get(&other, &[]).await.status, 403, "no route yet");
    std::fs::write(dir.join("other.yaml"), route(&upstream, "/other", GUEST)).unwrap();
    eventually(&other, 200).await;
    // A deleted file removes it.
    std::fs::remove_file(dir.join("other.yaml")).unwrap();
    eventually(&other, 403).await;
    // SIGHUP reloads too (the watcher would as well; both are idempotent).
    let generation = readyz(&gateway).await["policy_generation"]
        .as_u64()
        .unwrap();
    signal(gateway.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(3);
    while readyz(&gateway).await["policy_generation"]
        .as_u64()
        .unwrap()
        <= generation
    {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The layout a Kubernetes ConfigMap volume has: files are symlinks through `..data`, and an
/// update swaps `..data` to a new timestamped directory in one rename.
#[tokio::test(flavor = "multi_thread")]
async fn configmap_symlink_swap_takes_effect() {
    let upstream = Upstream::start().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("policies");
    std::fs::create_dir(&dir).unwrap();
    let publish = |version: &str, text: &str| {
        let versioned = dir.join(format!("..{version}"));
        std::fs::create_dir(&versioned).unwrap();
        std::fs::write(versioned.join("app.yaml"), text).unwrap();
        let staged = dir.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..{version}"), &staged).unwrap();
        std::fs::rename(&staged, dir.join("..data")).unwrap();
        if !dir.join("app.yaml").exists() {
            std::os::unix::fs::symlink("..data/app.yaml", dir.join("app.yaml")).unwrap();
        }
    };
    publish("2026_11_22_v1", &route(&upstream, "/app", GUEST));
    std::fs::write(
        root.path().join("gateway.yaml"),
        "listen: 127.0.0.1:0\npolicies: policies\n",
    )
    .unwrap();
    let gateway = tokio::task::spawn_blocking(move || GatewayProcess::spawn(root, &[]))
        .await
        .unwrap();
    let app = gateway.url("/app/x");
    assert_eq!(get(&app, &[]).await.status, 200);
    publish("2026_11_22_v2", &route(&upstream, "/app", DENY_ALL));
    eventually(&app, 403).await;
    publish("2026_11_22_v3", &route(&upstream, "/app", GUEST));
    eventually(&app, 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_edits_keep_the_last_good_set_and_are_reported() {
    let upstream = Upstream::start().await;
    let gateway = start(vec![("app.yaml", route(&upstream, "/app", GUEST))]).await;
    let dir = gateway.policy_dir();
    let app = gateway.url("/app/x");

    let broken = [
        ("bad yaml", "routes: [\n"),
        ("unknown key", "routes:\n  - name: app\n    mtach: {}\n"),
        (
            "bad cel",
            "routes:\n  - name: app\n    match: { path: \"/app/**\" }\n    upstream: builtin:whoami\n    rules:\n      - name: r\n        allow: { when: 'request.path ==' }\n",
        ),
    ];
    for (name, text) in broken {
        let generation = readyz(&gateway).await["policy_generation"]
            .as_u64()
            .unwrap();
        write_atomically(&dir.join("app.yaml"), text);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let ready = readyz(&gateway).await;
            if ready["last_reload_error"]
                .as_str()
                .is_some_and(|e| e.contains("app.yaml:"))
            {
                assert_eq!(
                    ready["ready"], true,
                    "{name}: still ready, the last good set serves"
                );
                assert_eq!(
                    ready["policy_generation"].as_u64().unwrap(),
                    generation,
                    "{name}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no reload error reported: {ready}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            get(&app, &[]).await.status,
            200,
            "{name}: the last good set keeps serving"
        );
        write_atomically(&dir.join("app.yaml"), &route(&upstream, "/app", GUEST));
        let deadline = Instant::now() + Duration::from_secs(3);
        while readyz(&gateway).await["policy_generation"]
            .as_u64()
            .unwrap()
            == generation
        {
            assert!(
                Instant::now() < deadline,
                "{name}: the fixed file was not loaded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A directory that suddenly has no policy files is not "deny everything".
    std::fs::remove_file(dir.join("app.yaml")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(&app, &[]).await.status, 200);
    assert!(
        readyz(&gateway).await["last_reload_error"]
            .as_str()
            .is_some()
    );
}

fn ws_as(gateway: &GatewayProcess, user: &str) -> http::Request<()> {
    use base64::Engine as _;
    let mut request = format!("ws://{}/app/ws", gateway.addr)
        .into_client_request()
        .unwrap();
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{user}-password"));
    request.headers_mut().insert(
        "authorization",
        format!("Basic {credentials}").parse().unwrap(),
    );
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_whose_user_loses_access_is_closed_with_1008_and_others_keep_echoing() {
    let upstream = Upstream::start().await;
    let allow = |emails: &str| {
        route(
            &upstream,
            "/app",
            &format!("      - name: listed users\n        allow: {{ emails: [{emails}] }}\n"),
        )
    };
    let users: String = ["alice", "bob"]
        .iter()
        .map(|user| {
            let hash = portcullis::identity::basic::hash_password(&format!("{user}-password")).unwrap();
            format!("  {user}:\n    password_hash: \"{hash}\"\n    email: {user}@example.com\n    email_verified: true\n")
        })
        .collect();
    let policy = allow("alice@example.com, bob@example.com");
    let gateway = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.yaml"), format!("users:\n{users}")).unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/app.yaml"), policy).unwrap();
        std::fs::write(
            dir.path().join("gateway.yaml"),
            "listen: 127.0.0.1:0\npolicies: policies\nbasic_auth:\n  credentials_file: users.yaml\n  allow_header: true\n",
        )
        .unwrap();
        GatewayProcess::spawn(dir, &[])
    })
    .await
    .unwrap();

    let (mut alice, _) = tokio_tungstenite::connect_async(ws_as(&gateway, "alice"))
        .await
        .unwrap();
    let (mut bob, _) = tokio_tungstenite::connect_async(ws_as(&gateway, "bob"))
        .await
        .unwrap();
    for socket in [&mut alice, &mut bob] {
        socket.send(Message::text("hi")).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("hi"));
    }

    let edited = Instant::now();
    write_atomically(
        &gateway.policy_dir().join("app.yaml"),
        &allow("bob@example.com"),
    );
    let frame = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match alice.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.expect("a close frame with a code");
                }
                Some(Ok(_)) => continue,
                other => panic!("alice's socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("alice's socket must be closed after the edit");
    let closed_after = edited.elapsed();
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("access revoked"), "{}", frame.reason);
    // Within one second of the swap (the swap itself follows the write by the debounce window).
    assert!(
        closed_after < Duration::from_millis(1500),
        "closed {closed_after:?} after the write"
    );

    // Alice's client completes the closing handshake; the bridge leaves the registry.
    while let Some(Ok(_)) = alice.next().await {}
    bob.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        bob.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while readyz(&gateway).await["websockets"] != 1 {
        assert!(
            Instant::now() < deadline,
            "the closed bridge is still registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Bob leaves on his own; the metrics tell the two closes apart.
    bob.close(None).await.unwrap();
    while let Some(Ok(_)) = bob.next().await {}
    let deadline = Instant::now() + Duration::from_secs(3);
    let samples = loop {
        let samples = support::metrics::parse(&get(&gateway.url("/metrics"), &[]).await.body);
        let closed = |reason| {
            support::metrics::value(
                &samples,
                "portcullis_websockets_closed_total",
                &[("route", "app"), ("reason", reason)],
            )
        };
        if closed("policy") == Some(1.0) && closed("client") == Some(1.0) {
            break samples;
        }
        assert!(Instant::now() < deadline, "closes not counted: {samples:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        support::metrics::value(
            &samples,
            "portcullis_websockets_active",
            &[("route", "app")]
        ),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reloads_under_load_fail_no_request() {
    let upstream = Upstream::start().await;
    let gateway = start(vec![("app.yaml", route(&upstream, "/app", GUEST))]).await;
    let dir = gateway.policy_dir();
    let url = gateway.url("/app/load");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, denied, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (stop, ok, denied, failed, url) = (
            stop.clone(),
            ok.clone(),
            denied.clone(),
            failed.clone(),
            url.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = support::http::http1();
            while !stop.load(Ordering::Relaxed) {
                let request = http::Request::get(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                match client.request(request).await {
                    Ok(response) if response.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(response) if response.status() == 403 => {
                        denied.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    for edit in 0..100 {
        let text = match edit % 4 {
            0 => route(&upstream, "/app", DENY_ALL),
            1 => "routes: [ this is not yaml\n".to_string(),
            2 => route(&upstream, "/app", GUEST),
            _ => "routes:\n  - name: app\n    match: { path: \"/app/**\" }\n    upstream: builtin:whoami\n    rules:\n      - name: r\n        allow: { when: 'nope.x == 1' }\n".to_string(),
        };
        write_atomically(&dir.join("app.yaml"), &text);
        // Past the debounce window, so each edit is its own reload.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    write_atomically(&dir.join("app.yaml"), &route(&upstream, "/app", GUEST));
    eventually(&url, 200).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let (ok, denied, failed) = (
        ok.load(Ordering::Relaxed),
        denied.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    let ready = readyz(&gateway).await;
    assert!(
        ready["policy_generation"].as_u64().unwrap() >= 40,
        "valid edits were loaded: {ready}"
    );
    let metrics = get(&gateway.url("/metrics"), &[]).await.body;
    let errors: f64 = metrics
        .lines()
        .find(|line| line.starts_with("portcullis_policy_reloads_total{result=\"error\"}"))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(errors >= 40.0, "invalid edits were counted: {errors}");
    assert_eq!(
        failed, 0,
        "{failed} requests failed or got a 5xx ({ok} ok, {denied} denied)"
    );
    assert!(
        ok > 0 && denied > 0,
        "both sets served: {ok} ok, {denied} denied"
    );
}
