//! The gateway core against real processes: the portcullis binary, a hyper upstream and
//! WebSocket peers, all on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::Request;
use hyper::body::Frame;
use support::gateway::{GatewayProcess, refused_startup_stderr, serve_until_exit};
use support::http::{self, get};
use support::policy::{self, EVERYONE, LOGGED_IN};
use support::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn guest_app(upstream: &Upstream) -> String {
    let url = upstream.url();
    policy::routes(&[
        policy::websocket_route("app", "/app/**", &url, EVERYONE),
        policy::route("plain", "/plain/**", &url, EVERYONE),
        policy::dead_route(),
    ])
}

async fn start(upstream: &Upstream, extra_config: &str) -> GatewayProcess {
    GatewayProcess::start_async(extra_config, &[("app.yaml", &guest_app(upstream))]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "headers:\n  strip: [X-Legacy-User]\n").await;
    let reply = get(
        &gateway.url("/app/page"),
        &[
            ("X-Auth-Request-User", "admin"),
            ("X-Auth-Request-Email", "admin@example.com"),
            ("X-Auth-Capability", "forged-token"),
            ("X-Forwarded-User", "admin"),
            ("X-Forwarded-Email", "admin@example.com"),
            ("X-Forwarded-Groups", "admins"),
            ("X-Forwarded-Preferred-Username", "admin"),
            ("Remote-User", "root"),
            ("X-Legacy-User", "root"),
            // Spellings that CGI-style servers (WSGI, PHP) read as the dashed names.
            ("X_Forwarded_User", "admin"),
            ("X_Auth_Request_Email", "admin@example.com"),
            ("X-Auth_Request-Groups", "admins"),
            ("Remote_User", "root"),
            ("X_Legacy_User", "root"),
            ("X_Forwarded_For", "10.0.0.1"),
            // Paths some upstreams serve instead of the matched one, and what only a trusted
            // proxy may say about the client (Tornado believes X-Real-IP and X-Scheme).
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            // Methods some upstreams run instead of the request's.
            ("X-HTTP-Method-Override", "DELETE"),
            ("X_HTTP_Method", "DELETE"),
            ("X-Real-IP", "10.0.0.1"),
            ("X_Real_IP", "10.0.0.1"),
            ("X-Scheme", "https"),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Prefix", "/evil"),
            ("X-Forwarded-Client-Cert", "Hash=1;URI=spiffe://admin"),
            ("Forwarded", "for=10.0.0.1;proto=https"),
            ("X-Keep-Me", "yes"),
            ("X_Keep_Me_Too", "yes"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = upstream.last();
    for (name, _) in &seen.headers {
        let name = name.replace('_', "-");
        assert!(
            !name.starts_with("x-auth-")
                && ![
                    "x-forwarded-user",
                    "x-forwarded-email",
                    "x-forwarded-groups",
                    "x-forwarded-preferred-username",
                    "remote-user",
                    "x-legacy-user",
                    "x-original-url",
                    "x-rewrite-url",
                    "x-http-method-override",
                    "x-http-method",
                    "x-scheme",
                    "x-forwarded-port",
                    "x-forwarded-prefix",
                    "x-forwarded-client-cert",
                    "forwarded",
                ]
                .contains(&name.as_str()),
            "{name} reached the upstream"
        );
    }
    assert_eq!(seen.header("x-keep-me"), Some("yes"));
    assert_eq!(seen.header("x_keep_me_too"), Some("yes"));
    assert_eq!(seen.header("x_forwarded_for"), None);
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.header("x_real_ip"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_headers_are_dropped_and_forwarded_headers_set() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let reply = get(
        &gateway.url("/app/x"),
        &[
            ("Connection", "keep-alive, X-Hop-Secret"),
            ("X-Hop-Secret", "must not pass"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("X-Forwarded-For", "10.9.9.9"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-hop-secret"), None);
    assert_eq!(seen.header("keep-alive"), None);
    assert_eq!(seen.header("proxy-authorization"), None);
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("127.0.0.1"),
        "a client cannot forge its address"
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let client_host = gateway.addr.to_string();
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(client_host.as_str()),
        "the Host the client sent, port included"
    );
    assert!(seen.header("x-request-id").is_some());
    assert!(reply.headers.contains_key("x-request-id"));

    // Listing `Host` or the forwarding headers in `Connection` takes none of them away.
    let reply = get(
        &gateway.url("/app/y"),
        &[("Connection", "Host, X-Forwarded-For, X-Forwarded-Host")],
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("host"), Some(client_host.as_str()));
    assert_eq!(seen.header("x-forwarded-host"), Some(client_host.as_str()));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_reach_the_upstream_in_one_canonical_form_or_are_rejected() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let canonical = [
        ("/app/a/../b", "/app/b"),
        ("//app//b", "/app/b"),
        ("/app/x/%2e%2e/b", "/app/b"),
        ("/app/%62", "/app/b"),
        ("/app/b/.", "/app/b/"),
        ("/app/b?q=%2F", "/app/b?q=%2F"),
    ];
    for (sent, want) in canonical {
        let reply = get(&format!("http://{}{sent}", gateway.addr), &[]).await;
        assert_eq!(reply.status, 200, "{sent}: {}", reply.body);
        assert_eq!(upstream.last().path_and_query, want, "{sent}");
    }
    for rejected in [
        "/app/a%2Fb",
        "/app/a%5Cb",
        "/app/a%00",
        "/app/x;jsessionid=1",
        "/app/%ff",
    ] {
        let before = upstream.seen.lock().unwrap().len();
        let reply = get(&format!("http://{}{rejected}", gateway.addr), &[]).await;
        assert_eq!(reply.status, 400, "{rejected}");
        assert_eq!(
            upstream.seen.lock().unwrap().len(),
            before,
            "{rejected} reached the upstream"
        );
    }
    // `..` cannot climb out of a route into another.
    let reply = get(&gateway.url("/plain/../app/z"), &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.last().path_and_query, "/app/z");
}

/// Sends `target` byte for byte (nothing normalizes it on the way) and returns the status.
async fn raw_status(gateway: &GatewayProcess, target: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        gateway.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{target}: not an HTTP response: {response:?}"))
}

/// Bypasses from other gateways' advisories, end to end: spellings of an admin path that look
/// like the guest route, or that an upstream might resolve differently, sent raw by an
/// anonymous client. Each is refused (400), sent to log in (401) or matches no route (403);
/// none reaches the upstream.
#[tokio::test(flavor = "multi_thread")]
async fn bypass_spellings_never_reach_a_protected_route_as_a_guest() {
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let policy = policy::routes(&[
        policy::route("public", "/public/**", &url, EVERYONE),
        policy::route("admin", "/admin/**", &url, LOGGED_IN),
    ]);
    let gateway = GatewayProcess::start_async("", &[("app.yaml", &policy)]).await;
    // The two routes work as meant.
    assert_eq!(raw_status(&gateway, "/public/x").await, 200);
    assert_eq!(upstream.last().path_and_query, "/public/x");
    assert_eq!(raw_status(&gateway, "/admin/x").await, 401);

    let cases = [
        // `..` resolved before matching: it is the admin route, and needs a login.
        ("/public/../admin/x", 401),
        ("/public/%2e%2e/admin/x", 401),
        ("/public/%2E%2E/admin/x", 401),
        // An encoded separator is refused, not decoded into a path the upstream would split.
        ("/public%2F..%2Fadmin/x", 400),
        ("/public%2f..%2fadmin/x", 400),
        ("/public/..%5Cadmin/x", 400),
        // Duplicate slashes collapse.
        ("//admin/x", 401),
        ("/public//../admin/x", 401),
        // Matching is case-sensitive: no route, denied (not the guest route, not admin).
        ("/ADMIN/x", 403),
        ("/Public/../admin/x", 401),
        // Query and fragment never take part in matching (a fragment is dropped).
        ("/admin/x?/public/", 401),
        ("/admin/x?p=/public/../public/", 401),
        ("/admin/x#/public/", 401),
        // `;` path parameters (stripped by some upstreams before routing) are refused.
        ("/admin;/public/x", 400),
        ("/public/..;/admin/x", 400),
        ("/public;/../admin/x", 400),
        // A trailing slash is still the admin route.
        ("/admin/x/", 401),
        ("/admin/", 401),
        ("/admin", 401),
    ];
    let before = upstream.seen.lock().unwrap().len();
    for (target, want) in cases {
        assert_eq!(raw_status(&gateway, target).await, want, "{target}");
        assert_eq!(
            upstream.seen.lock().unwrap().len(),
            before,
            "{target} reached the upstream: {:?}",
            upstream.last()
        );
    }
    // A fragment cannot smuggle `..` past the guest route either: it never goes upstream.
    assert_eq!(raw_status(&gateway, "/public/x#/../../admin/x").await, 200);
    assert_eq!(upstream.last().path_and_query, "/public/x");
    let seen = upstream.seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|seen| !seen.path_and_query.to_ascii_lowercase().contains("admin")),
        "{seen:?}"
    );
}

/// Two `Host` lines: the gateway would match the route on one and a virtual-hosting upstream
/// might serve the other, so the request is refused before either is used.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_with_two_host_lines_is_refused() {
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let policy = policy::routes(&[
        policy::host_route("public", "public.example", &url, EVERYONE),
        policy::host_route("admin", "admin.example", &url, LOGGED_IN),
    ]);
    let gateway = GatewayProcess::start_async("", &[("app.yaml", &policy)]).await;
    let send = |head: &'static str| {
        let addr = gateway.addr;
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET /x HTTP/1.1\r\n{head}connection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let response = send("host: public.example\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let before = upstream.seen.lock().unwrap().len();
    for head in [
        "host: public.example\r\nhost: admin.example\r\n",
        "host: admin.example\r\nhost: public.example\r\n",
        "host: public.example\r\nhost: public.example\r\n",
    ] {
        let response = send(head).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{head}: {response}");
        assert!(response.contains("more than one Host header"), "{response}");
    }
    assert_eq!(upstream.seen.lock().unwrap().len(), before);
}

/// `admin.example.` (the fully qualified spelling) is the admin host to DNS and to upstreams
/// like nginx: it must meet the admin route, not walk past it into the catch-all guest route.
#[tokio::test(flavor = "multi_thread")]
async fn a_fully_qualified_host_meets_the_same_route() {
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let policy = policy::routes(&[
        policy::host_route("admin", "admin.example", &url, LOGGED_IN),
        policy::route("public", "/**", &url, EVERYONE),
    ]);
    let gateway = GatewayProcess::start_async("", &[("app.yaml", &policy)]).await;
    let status = |host: &'static str| {
        let url = gateway.url("/x");
        async move {
            get(&url, &[("host", host), ("accept", "application/json")])
                .await
                .status
        }
    };
    assert_eq!(status("public.example").await, 200);
    let before = upstream.seen.lock().unwrap().len();
    for (host, want) in [
        ("admin.example", 401),
        ("admin.example.", 401),
        ("ADMIN.example.:80", 401),
        ("admin.example..", 400),
        ("admin..example", 400),
    ] {
        assert_eq!(status(host).await, want, "{host}");
    }
    assert_eq!(upstream.seen.lock().unwrap().len(), before);
}

/// Behind a trusted proxy, `request.ip` is the client the proxy received from, so a network
/// deny rule still applies, and `request.scheme` is the scheme the proxy received (it may have
/// terminated TLS); from an untrusted peer, claimed `X-Forwarded-For/-Proto` change nothing,
/// not even in `request.headers`. The upstream's `X-Real-IP` is the address the policy saw.
#[tokio::test(flavor = "multi_thread")]
async fn trusted_proxies_vouch_for_the_client_address_and_scheme() {
    let upstream = Upstream::start().await;
    let policy = format!(
        "{}rules:\n  - name: blocked network\n    deny:\n      when: 'request.ip.inCidr(\"203.0.113.0/24\")'\n  - name: tls only\n    deny:\n      when: 'request.path.startsWith(\"/app/tls\") && request.scheme != \"https\"'\n  - name: forwarded header\n    deny:\n      when: 'request.path.startsWith(\"/app/hdr\") && \"x-forwarded-for\" in request.headers && request.headers[\"x-forwarded-for\"].contains(\"203.0.113.\")'\n",
        policy::routes(&[policy::route("app", "/app/**", &upstream.url(), EVERYONE)])
    );
    let status =
        |gateway: &GatewayProcess, path: &str, headers: &[(&'static str, &'static str)]| {
            let url = gateway.url(path);
            let mut headers = headers.to_vec();
            headers.push(("accept", "application/json"));
            async move { get(&url, &headers).await.status }
        };
    let behind_proxy = GatewayProcess::start_async(
        "headers:\n  trusted_proxies: [127.0.0.0/8]\n",
        &[("app.yaml", &policy)],
    )
    .await;
    let chain = |value| [("x-forwarded-for", value)];
    assert_eq!(
        status(&behind_proxy, "/app/x", &chain("203.0.113.7")).await,
        403
    );
    assert_eq!(
        status(&behind_proxy, "/app/x", &chain("198.51.100.1, 203.0.113.7")).await,
        403
    );
    assert_eq!(
        status(&behind_proxy, "/app/x", &chain("198.51.100.1")).await,
        200
    );
    assert_eq!(
        upstream.last().header("x-real-ip"),
        Some("198.51.100.1"),
        "the client the policy saw, not the proxy"
    );
    // A forged start of the chain, left of the hop the proxy vouches for: not the client.
    assert_eq!(
        status(&behind_proxy, "/app/x", &chain("203.0.113.7, 198.51.100.1")).await,
        200
    );
    assert_eq!(upstream.last().header("x-real-ip"), Some("198.51.100.1"));
    // A trusted proxy's chain is in `request.headers` as it was sent.
    assert_eq!(
        status(
            &behind_proxy,
            "/app/hdr",
            &chain("203.0.113.7, 198.51.100.1")
        )
        .await,
        403
    );
    let https = [("x-forwarded-proto", "https")];
    assert_eq!(status(&behind_proxy, "/app/tls", &https).await, 200);
    assert_eq!(status(&behind_proxy, "/app/tls", &[]).await, 403);

    let direct = GatewayProcess::start_async("", &[("app.yaml", &policy)]).await;
    assert_eq!(status(&direct, "/app/x", &chain("203.0.113.7")).await, 200);
    assert_eq!(upstream.last().header("x-real-ip"), Some("127.0.0.1"));
    // Anyone else's is not: a rule reading it cannot be fooled.
    assert_eq!(
        status(&direct, "/app/hdr", &chain("203.0.113.7")).await,
        200
    );
    assert_eq!(upstream.last().header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(status(&direct, "/app/tls", &https).await, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_target_overrides_a_conflicting_host_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let request = format!(
        "GET http://{}/app/abs HTTP/1.1\r\nhost: other.example.net\r\nconnection: close\r\n\r\n",
        gateway.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = upstream.last();
    assert_eq!(seen.path_and_query, "/app/abs");
    assert_eq!(
        seen.header("host"),
        Some(&*gateway.addr.to_string()),
        "the host the route matched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_prior_knowledge_is_proxied() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let request = Request::get(gateway.url("/app/h2"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = http::send(&http::h2c(), request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, hyper::Version::HTTP_2);
    assert!(reply.body.starts_with("upstream ok"));
    assert_eq!(
        upstream.last().header("host"),
        Some(&*gateway.addr.to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn large_upload_and_download_stream_with_flat_memory() {
    const GIB: u64 = 1 << 30;
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let baseline = gateway.peak_rss_kib();

    let chunk = Bytes::from(vec![7u8; 256 * 1024]);
    let chunks = futures_util::stream::iter(
        (0..GIB / chunk.len() as u64)
            .map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone()))),
    );
    let request = Request::post(gateway.url("/app/upload"))
        .body(StreamBody::new(chunks))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), format!("upstream ok {GIB}"));

    let response = http::http1()
        .request(
            Request::get(gateway.url("/app/download?bytes=1073741824"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(received, GIB);

    let peak = gateway.peak_rss_kib();
    assert!(
        peak.saturating_sub(baseline) < 64 * 1024,
        "peak RSS grew from {baseline} KiB to {peak} KiB while streaming 1 GiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_is_502_and_slow_upstream_is_504() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "upstream:\n  response_timeout: 300ms\n").await;
    let reply = get(&gateway.url("/dead/x"), &[("accept", "text/html")]).await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let reply = get(&gateway.url("/dead/x"), &[]).await;
    assert_eq!(reply.status, 502);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["status"], 502);

    let started = Instant::now();
    let reply = get(&gateway.url("/app/slow?ms=2000"), &[]).await;
    assert_eq!(reply.status, 504);
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// Reads until the gateway closes the connection; how long that took.
async fn time_until_closed(stream: &mut tokio::net::TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(read.is_ok(), "the gateway kept the connection open");
    started.elapsed()
}

/// Opens a connection, sends `first` and nothing more; how long until the gateway closed it.
async fn time_until_closed_after(gateway: &GatewayProcess, first: &[u8]) -> Duration {
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(first).await.unwrap();
    time_until_closed(&mut stream).await
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_slow_to_send_headers_are_disconnected() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "client_header_timeout: 400ms\n").await;

    let stalled_starts: [(&str, &[u8]); 3] = [
        // Silent after connecting (nothing to tell the HTTP version from).
        ("silent", b""),
        // The start of the h2c preface, then nothing: too short to tell the version from.
        ("h2c preface", b"PRI * HT"),
        // Slowloris: a request head started and never finished.
        (
            "slowloris",
            b"GET /plain/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        ),
    ];
    for (case, first) in stalled_starts {
        let waited = time_until_closed_after(&gateway, first).await;
        assert!(waited >= Duration::from_millis(300), "{case}: {waited:?}");
    }

    // Idle between keep-alive requests: the same timeout.
    let mut idle = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    idle.write_all(b"GET /plain/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    time_until_closed(&mut idle).await;

    // A prompt client on a fresh connection is served as usual.
    let reply = get(&gateway.url("/plain/x"), &[]).await;
    assert_eq!(reply.status, 200);
}

/// HTTP/2 has no keep-alive header timeout in hyper: a connection with no request in flight and
/// no response streaming is closed after `client_header_timeout`, and a request or a download
/// slower than that still finishes.
#[tokio::test(flavor = "multi_thread")]
async fn idle_http2_connections_are_closed_and_slow_requests_still_finish() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "client_header_timeout: 400ms\n").await;

    // The h2c preface and an empty SETTINGS frame, then silence.
    let mut silent = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    silent.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let waited = time_until_closed_after(&gateway, &silent).await;
    assert!(waited >= Duration::from_millis(300), "{waited:?}");

    let stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get(gateway.url("/plain/slow?ms=1000"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "slow ok", "in flight for longer than the timeout");
    // A download the client reads slowly (flow control holds the rest back) is not idle.
    const BYTES: usize = 4 << 20;
    let request = Request::get(gateway.url(&format!("/plain/download?bytes={BYTES}")))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut body = sender.send_request(request).await.unwrap().into_body();
    let mut received = body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap()
        .len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    received += body.collect().await.unwrap().to_bytes().len();
    assert_eq!(received, BYTES, "streamed for longer than the timeout");
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the gateway closed the idle HTTP/2 connection")
        .unwrap()
        .ok();
    assert!(
        idle.elapsed() >= Duration::from_millis(300),
        "{:?}",
        idle.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_connections_are_pooled_per_worker() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "workers: 1\n").await;
    for _ in 0..10 {
        let reply = get(&gateway.url("/plain/x"), &[]).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "upstream ok 0"));
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "one pooled connection serves sequential requests"
    );
}

/// More concurrent requests than the pool kept before (64 a worker): every connection that
/// finished its exchange used to be closed past that, so each burst opened them again.
#[tokio::test(flavor = "multi_thread")]
async fn a_wide_burst_keeps_its_upstream_connections_for_the_next() {
    const CONCURRENT: usize = 200;
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "workers: 1\n").await;
    let url = gateway.url("/plain/slow?ms=500");
    let burst = || futures_util::future::join_all((0..CONCURRENT).map(|_| get(&url, &[])));
    for reply in burst().await {
        assert_eq!((reply.status, reply.body.as_str()), (200, "slow ok"));
    }
    let opened = upstream.connections.load(Ordering::SeqCst);
    assert!(
        (100..=CONCURRENT).contains(&opened),
        "the first burst needs a connection for each request in flight: {opened}"
    );
    for reply in burst().await {
        assert_eq!((reply.status, reply.body.as_str()), (200, "slow ok"));
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        opened,
        "the second burst runs on the first one's connections"
    );

    let metrics = get(&gateway.url("/metrics"), &[]).await.body;
    let samples = support::metrics::parse(&metrics);
    let authority = upstream.url().trim_start_matches("http://").to_owned();
    assert_eq!(
        support::metrics::value(
            &samples,
            "portcullis_upstream_connections_opened_total",
            &[("upstream", &authority)]
        ),
        Some(opened as f64),
        "{metrics}"
    );
}

/// What a hand-written upstream does once it has answered a connection's first request.
enum AfterAnswer {
    /// Close without having said so, as an app server whose keep-alive timeout ran out does.
    Close,
    /// Read (and drop) whatever else comes, as an app refusing an upload early does.
    KeepReading,
}

/// An upstream for behaviour hyper would not produce: it answers each connection's first
/// request with `body` as soon as the request head arrives. Returns its URL and a count of the
/// connections it accepted.
async fn raw_upstream(body: &'static str, after: AfterAnswer) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted: Arc<AtomicUsize> = Arc::default();
    let counter = accepted.clone();
    let keep_reading = matches!(after, AfterAnswer::KeepReading);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() || !keep_reading {
                    return;
                }
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (url, accepted)
}

/// A gateway whose one guest route sends everything to `upstream`.
async fn gateway_in_front_of(upstream: &str, config: &str) -> GatewayProcess {
    let policy = policy::routes(&[policy::route("app", "/**", upstream, EVERYONE)]);
    GatewayProcess::start_async(config, &[("app.yaml", &policy)]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_connection_closed_by_the_upstream_is_replaced() {
    let (url, accepted) = raw_upstream("once", AfterAnswer::Close).await;
    let gateway = gateway_in_front_of(&url, "workers: 1\n").await;
    for _ in 0..3 {
        let reply = get(&gateway.url("/x"), &[]).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "once"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_still_sending_an_upload_is_not_reused() {
    let (url, _) = raw_upstream("early", AfterAnswer::KeepReading).await;
    let config = "workers: 1\nupstream:\n  response_timeout: 2s\n";
    let gateway = gateway_in_front_of(&url, config).await;

    // An upload that trickles: its connection answered already but is busy for 5 more seconds.
    let (chunks, body) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    let upload = Request::post(gateway.url("/upload"))
        .body(StreamBody::new(tokio_stream_from(body)))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"first"))))
        .await
        .unwrap();
    let response = client.request(upload).await.unwrap();
    assert_eq!(response.status(), 200);
    let trickle = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(chunks);
    });

    let started = Instant::now();
    let reply = get(&gateway.url("/next"), &[]).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "early"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    trickle.abort();
}

fn tokio_stream_from<T>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_finishes_an_in_flight_request() {
    let upstream = Upstream::start().await;
    let mut gateway = start(&upstream, "").await;
    let url = gateway.url("/app/slow?ms=1000");
    let in_flight = tokio::spawn(async move { get(&url, &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = gateway.terminate();
        (status, gateway)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit status {:?}", status.0);
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "slow ok");
}

fn ws_request(url: &str, origin: Option<&str>) -> hyper::Request<()> {
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    request
}

/// `/app/ws` through the gateway, opened from the gateway's own origin.
async fn same_origin_socket(
    gateway: &GatewayProcess,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{}/app/ws", gateway.addr);
    let origin = format!("http://{}", gateway.addr);
    let (socket, response) = tokio_tungstenite::connect_async(ws_request(&url, Some(&origin)))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    socket
}

#[tokio::test(flavor = "multi_thread")]
async fn same_origin_websocket_is_bridged_and_relays_every_frame_kind() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let mut socket = same_origin_socket(&gateway).await;

    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("hello")
    );
    socket.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    socket
        .send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Message::Pong(data) = socket.next().await.unwrap().unwrap() {
                return data;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"p");
    socket.close(None).await.unwrap();

    let seen = upstream.last();
    assert_eq!(seen.path_and_query, "/app/ws");
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

/// A burst reaches the gateway many frames to a read, and a message far bigger than the bridge's
/// 4 KiB read step spans many reads: every message must come back whole and in order.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_burst_and_large_messages_relay_intact_and_in_order() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let (mut sink, mut stream) = same_origin_socket(&gateway).await.split();
    let message = |i: usize| {
        let len = if i % 500 == 499 { 300 * 1024 } else { i % 97 };
        Message::binary((0..len).map(|b| (b + i) as u8).collect::<Vec<u8>>())
    };
    const COUNT: usize = 2_000;
    let sender = async {
        for i in 0..COUNT {
            sink.feed(message(i)).await.unwrap();
        }
        sink.flush().await.unwrap();
    };
    let receiver = async {
        for i in 0..COUNT {
            let echoed = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("the echo arrives")
                .unwrap()
                .unwrap();
            assert_eq!(echoed, message(i), "message {i}");
        }
    };
    tokio::join!(sender, receiver);
}

/// A client message over the gateway's limit (20 MiB, Bokeh's own) closes the socket with 1009
/// (the gateway reads on past it, so the close frame is not lost to a reset); a big message
/// under the limit passes whole, as one frame in both directions.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_messages_over_the_limit_close_the_socket_with_1009() {
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{
        CloseCode, Data as OpData, OpCode,
    };

    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let url = format!("ws://{}/app/ws", gateway.addr);
    let origin = format!("http://{}", gateway.addr);
    // A client that reads frames as big as the app may send.
    let config = WebSocketConfig::default().max_frame_size(Some(64 << 20));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(
        ws_request(&url, Some(&origin)),
        Some(config),
        false,
    )
    .await
    .unwrap();
    let (mut sink, mut stream) = socket.split();
    // Over tungstenite's 16 MiB frame default, as one frame both ways.
    let under = Message::binary(vec![7u8; 17 << 20]);
    sink.send(under.clone()).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the echo arrives")
        .unwrap()
        .unwrap();
    assert!(echoed == under, "a 17 MiB message comes back whole");

    // 24 MiB in three 8 MiB fragments: each frame is small, the message is not.
    let sender = async {
        for (index, opcode) in [OpData::Binary, OpData::Continue, OpData::Continue]
            .into_iter()
            .enumerate()
        {
            let fragment = Frame::message(vec![7u8; 8 << 20], OpCode::Data(opcode), index == 2);
            if sink.send(Message::Frame(fragment)).await.is_err() {
                break;
            }
        }
    };
    let receiver = async {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => return frame,
                Ok(Some(Ok(_))) => continue,
                other => panic!("no close frame: {other:?}\n{}", gateway.logs()),
            }
        }
    };
    let ((), frame) = tokio::join!(sender, receiver);
    assert_eq!(frame.code, CloseCode::Size);
    assert_eq!(frame.reason.as_str(), "message too big");
}

/// An upstream may send its first frame in the same packet as its 101 (Bokeh pushes the
/// document at once): the bridge relays it, the handshake's reader keeps nothing past the head.
/// Reads a WebSocket upgrade request from `stream` and returns the 101 that accepts it, for the
/// caller to write (with whatever it sends behind it).
async fn switching_protocols_for(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    let key = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_string())
        })
        .expect("the gateway sends a key");
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_sent_with_the_upstreams_101_reaches_the_client() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut reply = switching_protocols_for(&mut stream).await;
        // An unmasked text frame, "first", in the same write as the head.
        reply.extend([0x81, 5]);
        reply.extend(b"first");
        stream.write_all(&reply).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    let routes = policy::routes(&[policy::websocket_route(
        "app",
        "/app/**",
        &upstream_url,
        EVERYONE,
    )]);
    let gateway = GatewayProcess::start_async("", &[("app.yaml", &routes)]).await;
    let mut socket = same_origin_socket(&gateway).await;
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("the first frame arrives")
        .unwrap()
        .unwrap();
    assert_eq!(first, Message::text("first"));
    drop(socket);
    upstream.abort();
}

/// A close ordered while the upstream is part way through a big frame: the frame is relayed to
/// its end first, so the close frame can follow it and both sides get one.
#[tokio::test(flavor = "multi_thread")]
async fn a_close_ordered_inside_a_frame_follows_the_end_of_that_frame() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut frame = vec![0x82, 127];
    frame.extend((payload.len() as u64).to_be_bytes());
    frame.extend(&payload);
    let half = frame.len() / 2;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("http://{}", listener.local_addr().unwrap());
    let (go_on, resume) = tokio::sync::oneshot::channel::<()>();
    let upstream = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut reply = switching_protocols_for(&mut stream).await;
        reply.extend(&frame[..half]);
        stream.write_all(&reply).await.unwrap();
        resume.await.unwrap();
        stream.write_all(&frame[half..]).await.unwrap();
        // What the gateway sends after it: a masked close frame.
        let mut head = [0u8; 6];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 0x88, "a close frame");
        assert!(
            head[1] & 0x80 != 0 && head[1] & 0x7f >= 2,
            "masked, with a code"
        );
        let mut body = vec![0u8; usize::from(head[1] & 0x7f)];
        stream.read_exact(&mut body).await.unwrap();
        u16::from_be_bytes([body[0] ^ head[2], body[1] ^ head[3]])
    });
    let routes = policy::routes(&[policy::websocket_route(
        "app",
        "/app/**",
        &upstream_url,
        EVERYONE,
    )]);
    let mut gateway = GatewayProcess::start_async("", &[("app.yaml", &routes)]).await;
    let mut socket = same_origin_socket(&gateway).await;
    // The relay is inside the frame once its first bytes wait at the client.
    let tokio_tungstenite::MaybeTlsStream::Plain(client) = socket.get_ref() else {
        panic!("a plain TCP socket");
    };
    let mut peeked = [0u8; 16];
    let arrived = tokio::time::timeout(Duration::from_secs(5), client.peek(&mut peeked))
        .await
        .expect("the frame's first half reaches the client")
        .unwrap();
    assert!(arrived > 0);
    let logs = gateway.stderr.clone();
    let exit = tokio::task::spawn_blocking(move || gateway.terminate());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("shutting down"))
    {
        assert!(Instant::now() < deadline, "no shutdown began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The close is ordered right after that line; give the bridge's task its turn first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    go_on.send(()).unwrap();
    let received = tokio::time::timeout(Duration::from_secs(5), async {
        let mut received = Vec::new();
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => {
                    received.push(Message::Close(frame));
                    return received;
                }
                Some(Ok(message)) => received.push(message),
                other => {
                    panic!("expected the frame and a close frame, got {other:?} after {received:?}")
                }
            }
        }
    })
    .await
    .expect("the frame and a close arrive");
    assert_eq!(received.len(), 2);
    assert_eq!(received[0], Message::binary(payload));
    let Message::Close(Some(close)) = &received[1] else {
        panic!("a close frame with a code, got {:?}", received[1]);
    };
    assert_eq!(u16::from(close.code), 1001);
    assert_eq!(upstream.await.unwrap(), 1001);
    assert!(exit.await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_origin_websocket_upgrade_is_refused() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let url = format!("ws://{}/app/ws", gateway.addr);
    // Another site, and another app on the gateway's host (same cookies, another origin).
    let other_port = format!("http://127.0.0.1:{}", gateway.addr.port() ^ 1);
    for origin in ["https://evil.example.net", other_port.as_str()] {
        match tokio_tungstenite::connect_async(ws_request(&url, Some(origin))).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{origin}")
            }
            other => panic!("cross-origin upgrade from {origin} was not refused: {other:?}"),
        }
    }
    let url = format!("ws://{}/plain/ws", gateway.addr);
    match tokio_tungstenite::connect_async(ws_request(&url, None)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("upgrade on a route without websocket was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_websockets_with_1001() {
    let upstream = Upstream::start().await;
    let mut gateway = start(&upstream, "").await;
    let url = format!("ws://{}/app/ws", gateway.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(&url, None))
        .await
        .unwrap();
    socket.send(Message::text("before")).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("before")
    );
    let exit = tokio::task::spawn_blocking(move || gateway.terminate());
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(u16::from(close.unwrap().code), 1001);
    assert!(exit.await.unwrap().success());
}

/// The README's first command: no config, no identity provider, nothing in the working
/// directory. The embedded policies and the built-in demo upstream serve.
#[tokio::test(flavor = "multi_thread")]
async fn quickstart_serves_the_embedded_default_without_any_config() {
    let gateway = tokio::task::spawn_blocking(GatewayProcess::start_embedded_default)
        .await
        .unwrap();
    let open = format!("open http://{}/", gateway.addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway.stdout.lock().unwrap().contains(&open) {
        assert!(
            Instant::now() < deadline,
            "the banner names the bound port: {:?}",
            gateway.stdout.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The demo route is open to guests; the demo upstream sees the canonical path, as an HTTP
    // upstream would, and none of the client's identity headers.
    let reply = get(
        &gateway.url("/%2e%2e/x/./y//z?q=%2F"),
        &[
            ("x-forwarded-user", "mallory"),
            ("accept", "application/json"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(seen["app"], "portcullis builtin:whoami");
    assert_eq!(seen["path"], "/x/y/z");
    assert_eq!(seen["query"], "q=%2F");
    assert!(seen["headers"].get("x-forwarded-user").is_none(), "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        seen["headers"]["x-forwarded-host"],
        gateway.addr.to_string()
    );

    // The example admin route needs a login, and without a provider the gateway says why.
    let reply = get(&gateway.url("/admin/"), &[("accept", "text/html")]).await;
    assert_eq!(reply.status, 302);
    let login = reply.headers["location"].to_str().unwrap();
    assert_eq!(login, "/oauth2/start?rd=/admin/");
    let reply = get(&gateway.url(login), &[("accept", "application/json")]).await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.body.contains("No login method is configured"),
        "{}",
        reply.body
    );

    let reply = get(&gateway.url("/readyz"), &[]).await;
    let ready: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness_endpoints_answer() {
    let upstream = Upstream::start().await;
    let gateway = start(&upstream, "").await;
    let reply = get(&gateway.url("/healthz"), &[]).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
    let reply = get(&gateway.url("/readyz"), &[]).await;
    assert_eq!(reply.status, 200);
    let ready: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(ready["ready"], true);
    assert!(ready["policy_generation"].as_u64().unwrap() >= 1);
}

#[test]
fn config_errors_are_all_reported_with_file_and_line_and_the_process_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        "listen: nonsense\npublic_url: ftp://x\npolicies: /missing/dir\n",
    )
    .unwrap();
    let output = serve_until_exit(&path);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in [":1:", ":2:", ":3:"] {
        assert!(
            stderr.contains(&format!("gateway.yaml{line}")),
            "missing {line} in:\n{stderr}"
        );
    }
}

#[test]
fn policy_errors_at_startup_are_all_listed_and_the_process_exits_before_serving() {
    // Three files, three kinds of error: bad CEL, an unknown key, and a route name used twice.
    let stderr = refused_startup_stderr(&[
        (
            "a.yaml",
            "routes:\n  - name: app\n    match: { path: /app/** }\n    upstream: builtin:whoami\n    rules:\n      - name: broken\n        allow: { when: 'user.email ==' }\n",
        ),
        (
            "b.yaml",
            "routes:\n  - name: other\n    match: { path: /other/** }\n    upstream: builtin:whoami\n    colour: blue\n    rules: []\n",
        ),
        (
            "c.yaml",
            "routes:\n  - name: app\n    match: { path: /again/** }\n    upstream: builtin:whoami\n    rules: []\n",
        ),
    ]);
    for located in ["a.yaml:7:", "b.yaml:5:", "c.yaml:2:"] {
        assert!(stderr.contains(located), "missing {located} in:\n{stderr}");
    }
}
