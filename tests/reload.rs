//! Hot reload against the real binary: policy files edited every way an operator or Kubernetes
//! edits them while the gateway serves, broken edits that must not take effect, live WebSockets
//! re-checked after a swap, and reloads under load.

mod support;

use std::path::Path;
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
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    GatewayProcess::start_async("", &borrowed).await
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

/// Publishes `files` the way the kubelet updates a ConfigMap volume: into a new `..VERSION`
/// directory, then one rename swaps the `..data` symlink onto it. Each policy file is a symlink
/// through `..data`, made on first publish.
fn publish(dir: &Path, version: &str, files: &[(&str, &str)]) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    for (name, text) in files {
        std::fs::write(versioned.join(name), text).unwrap();
    }
    let staged = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &staged).unwrap();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
    for (name, _) in files {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
}

/// A gateway whose policy directory is a ConfigMap volume holding `files` as version `v0`.
async fn start_configmap(files: Vec<(&'static str, String)>) -> GatewayProcess {
    tokio::task::spawn_blocking(move || {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("policies");
        std::fs::create_dir(&dir).unwrap();
        let borrowed: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        publish(&dir, "v0", &borrowed);
        std::fs::write(
            root.path().join("gateway.yaml"),
            "listen: 127.0.0.1:0\npolicies: policies\n",
        )
        .unwrap();
        GatewayProcess::spawn(root, &[])
    })
    .await
    .unwrap()
}

/// The layout a Kubernetes ConfigMap volume has: files are symlinks through `..data`, and an
/// update swaps `..data` to a new timestamped directory in one rename.
#[tokio::test(flavor = "multi_thread")]
async fn configmap_symlink_swap_takes_effect() {
    let upstream = Upstream::start().await;
    let gateway = start_configmap(vec![("app.yaml", route(&upstream, "/app", GUEST))]).await;
    let dir = gateway.policy_dir();
    let app = gateway.url("/app/x");
    assert_eq!(get(&app, &[]).await.status, 200);
    publish(
        &dir,
        "2026_11_22_v2",
        &[("app.yaml", &route(&upstream, "/app", DENY_ALL))],
    );
    eventually(&app, 403).await;
    publish(
        &dir,
        "2026_11_22_v3",
        &[("app.yaml", &route(&upstream, "/app", GUEST))],
    );
    eventually(&app, 200).await;
}

/// One logical change spread over two files, published in one `..data` swap, while 16
/// connections hammer both of its paths.
///
/// `routes.yaml` has routes `/p` and `/q`: one open to guests, the other for logged-in users.
/// `closed.yaml` has a global deny on the guest one. Version A opens `/p` and closes it, version
/// B does the same with `/q`; every swap flips both files. A full set never lets an anonymous
/// request through (one path denies, the other asks for a login); a set with one file from each
/// version, or without `closed.yaml`, leaves a guest route open: a 200 on either path is a
/// half-applied set.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_spanning_two_files_is_never_seen_half_applied() {
    let upstream = Upstream::start().await;
    let version = |open: &str, members: &str| {
        let routes = format!(
            "routes:\n\
             \x20 - name: {open}\n    match: {{ path: \"/{open}/**\" }}\n    upstream: {url}\n\
             \x20   rules:\n      - name: guests\n        guest: true\n\
             \x20 - name: {members}\n    match: {{ path: \"/{members}/**\" }}\n    upstream: {url}\n\
             \x20   rules:\n      - name: members\n        allow: {{}}\n",
            url = upstream.url(),
        );
        let closed = format!(
            "rules:\n  - name: closed\n    match: {{ path: \"/{open}/**\" }}\n    deny: {{}}\n"
        );
        vec![("closed.yaml", closed), ("routes.yaml", routes)]
    };
    let versions = vec![version("p", "q"), version("q", "p")];
    let gateway = start_configmap(versions[0].clone()).await;
    let dir = gateway.policy_dir();
    let paths = [gateway.url("/p/x"), gateway.url("/q/x")];
    assert_eq!(get(&paths[0], &[]).await.status, 403, "A closes /p");
    assert_eq!(
        get(&paths[1], &[]).await.status,
        401,
        "A asks for a login on /q"
    );
    let serving = readyz(&gateway).await["policy_generation"]
        .as_u64()
        .unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..16 {
        let (stop, paths) = (stop.clone(), paths.clone());
        workers.push(tokio::spawn(async move {
            let client = support::http::http1();
            // (path index, status) → count; status 0 is a failed request.
            let mut seen = std::collections::BTreeMap::<(usize, u16), u64>::new();
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let which = i % 2;
                i += 1;
                let request = http::Request::get(&paths[which])
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                let status = match client.request(request).await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                *seen.entry((which, status)).or_default() += 1;
            }
            seen
        }));
    }

    // Swaps back to back for 1.5 s, each followed by removing the old version as the kubelet
    // does. Swaps this close hold the watcher's debounced reload back, so a SIGHUP every 3 ms
    // reloads meanwhile, at any point of a swap. (Read file by file, about one reload in a
    // hundred mixed versions here.) The last swap publishes version A.
    let hangups = std::thread::spawn({
        let (stop, pid) = (stop.clone(), gateway.pid());
        move || {
            while !stop.load(Ordering::Relaxed) {
                signal(pid, "HUP");
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    });
    let swaps = tokio::task::spawn_blocking({
        let (dir, versions) = (dir.clone(), versions.clone());
        move || {
            let started = Instant::now();
            let mut swap = 0;
            while started.elapsed() < Duration::from_millis(1500) || swap % 2 == 1 {
                swap += 1;
                let borrowed: Vec<(&str, &str)> = versions[swap % 2]
                    .iter()
                    .map(|(n, t)| (*n, t.as_str()))
                    .collect();
                publish(&dir, &format!("v{swap}"), &borrowed);
                std::fs::remove_dir_all(dir.join(format!("..v{}", swap - 1))).unwrap();
            }
            swap
        }
    })
    .await
    .unwrap();
    // The last swap (version A) is served before the load stops.
    let deadline = Instant::now() + Duration::from_secs(3);
    while get(&paths[1], &[]).await.status != 401 || get(&paths[0], &[]).await.status != 403 {
        assert!(Instant::now() < deadline, "the last version was not loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    hangups.join().unwrap();
    let mut seen = std::collections::BTreeMap::<(usize, u16), u64>::new();
    for worker in workers {
        for (key, count) in worker.await.unwrap() {
            *seen.entry(key).or_default() += count;
        }
    }

    let ready = readyz(&gateway).await;
    let generations = ready["policy_generation"].as_u64().unwrap() - serving;
    assert!(
        generations >= 10,
        "too few reloads to mean anything: {ready}"
    );
    let count = |path: usize, status: u16| seen.get(&(path, status)).copied().unwrap_or(0);
    let half_applied = count(0, 200) + count(1, 200);
    assert_eq!(
        half_applied, 0,
        "{half_applied} requests were decided on a half-applied set \
         ({generations} reloads, {swaps} swaps): {seen:?}"
    );
    assert!(
        seen.keys().all(|(_, status)| matches!(status, 401 | 403)),
        "only a full set's answers, no failure: {seen:?}"
    );
    for (path, url) in paths.iter().enumerate() {
        assert!(
            count(path, 401) > 0 && count(path, 403) > 0,
            "both versions served on {url}: {seen:?}"
        );
    }
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

/// Polls `url` (`/readyz`) until its generation passes `serving` and returns a lower bound of
/// the swap's instant: when the last poll that still saw `serving` was sent (or `since`, if none
/// did). Closes timed from here are timed from the swap, not from the write before it.
async fn swapped_after(url: String, serving: u64, since: Instant) -> Instant {
    let mut old_seen = since;
    loop {
        let sent = Instant::now();
        let ready: serde_json::Value = serde_json::from_str(&get(&url, &[]).await.body).unwrap();
        if ready["policy_generation"].as_u64().unwrap() > serving {
            return old_seen;
        }
        old_seen = sent;
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "generation {serving} still serves"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

    let serving = readyz(&gateway).await["policy_generation"]
        .as_u64()
        .unwrap();
    let edited = Instant::now();
    write_atomically(
        &gateway.policy_dir().join("app.yaml"),
        &allow("bob@example.com"),
    );
    let swap = tokio::spawn(swapped_after(gateway.url("/readyz"), serving, edited));
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
    let client_closed_at = Instant::now();
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("access revoked"), "{}", frame.reason);

    // The upstream side of alice's bridge gets the same close.
    let by_email = |email: &str| {
        let closes = upstream.ws_closes.lock().unwrap();
        closes
            .iter()
            .find(|close| close.upgrade.header("x-auth-request-email") == Some(email))
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let upstream_close = loop {
        if let Some(close) = by_email("alice@example.com") {
            break close;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream never got a close for alice's bridge: {:?}",
            upstream.ws_closes.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(upstream_close.code, Some(1008), "{upstream_close:?}");
    assert_eq!(upstream_close.reason, frame.reason.as_str());

    // Both sides within one second of the swap itself (not of the write).
    let swapped = swap.await.unwrap();
    for (side, at) in [
        ("client", client_closed_at),
        ("upstream", upstream_close.at),
    ] {
        let after_swap = at.saturating_duration_since(swapped);
        assert!(
            after_swap < Duration::from_secs(1),
            "the {side} side was closed {after_swap:?} after the swap"
        );
    }
    assert!(
        by_email("bob@example.com").is_none(),
        "bob's bridge must stay open: {:?}",
        upstream.ws_closes.lock().unwrap()
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
