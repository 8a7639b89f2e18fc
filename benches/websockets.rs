//! WebSockets through the gateway: memory with many sockets held open, and message relay
//! throughput against a direct connection, measured side by side in one run.
//!
//!     cargo bench --bench websockets
//!     SOCKETS=9900 BUILTIN_SOCKETS=10000 MESSAGES=1000000 ROUNDS=7 cargo bench --bench websockets
//!
//! The relay rate is measured in ROUNDS alternating rounds (direct, then through the gateway)
//! and the medians are compared: one round lasts about a second, and this machine's noise
//! moves a single round's ratio by ±10%.
//!
//! WORKERS sets the gateway's `workers:` (default 1: the client and the echo upstream share this
//! machine's cores with the gateway). GATEWAY names another gateway binary to run, such as the
//! profile-guided build of `scripts/pgo-build.sh` (`GATEWAY=target/pgo/portcullis`).
//!
//! A bridged socket costs the gateway two file descriptors (client and upstream); the echo
//! upstream runs in a child process so each process stays inside its descriptor limit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if std::env::var("WS_BENCH_ROLE").as_deref() == Ok("echo") {
        runtime.block_on(echo_server());
        return;
    }
    runtime.block_on(bench());
}

/// The upstream: echoes every text and binary message.
async fn echo_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("echo listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(message)) = socket.next().await {
                if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err()
                {
                    break;
                }
            }
        });
    }
}

fn spawn_line(mut command: Command, prefix: &str) -> (Child, SocketAddr) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix(prefix).map(|a| a.parse().unwrap()))
        .expect("the child printed its address");
    // Keep reading: a child that prints after its address would die of a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

fn kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn hold_open(url: &str, count: usize) -> Vec<impl Sized> {
    let mut sockets = Vec::with_capacity(count);
    for batch in (0..count).collect::<Vec<_>>().chunks(250) {
        let opened = futures_util::future::join_all(batch.iter().map(|_| async {
            let (mut socket, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            socket.send(Message::text("hello")).await.unwrap();
            assert_eq!(
                socket.next().await.unwrap().unwrap(),
                Message::text("hello")
            );
            socket
        }))
        .await;
        sockets.extend(opened);
    }
    sockets
}

/// Messages per second echoed over `connections` sockets, `messages` in all, 64 bytes each.
async fn relay_rate(url: &str, connections: usize, messages: usize) -> f64 {
    let per_connection = messages / connections;
    let started = Instant::now();
    let workers = (0..connections).map(|_| async {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (mut sink, mut stream) = socket.split();
        let payload = vec![b'x'; 64];
        let sender = async {
            for _ in 0..per_connection {
                sink.feed(Message::binary(payload.clone())).await.unwrap();
            }
            sink.flush().await.unwrap();
            sink
        };
        let receiver = async {
            for _ in 0..per_connection {
                stream.next().await.unwrap().unwrap();
            }
        };
        let (mut sink, ()) = tokio::join!(sender, receiver);
        let _ = sink.close().await;
    });
    futures_util::future::join_all(workers).await;
    (per_connection * connections) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

async fn bench() {
    let sockets = env_number("SOCKETS", 9_900);
    let builtin_sockets = env_number("BUILTIN_SOCKETS", 10_000);
    let messages = env_number("MESSAGES", 1_000_000);
    let rounds = env_number("ROUNDS", 5).max(1);
    let connections = env_number("CONNECTIONS", 8);

    let mut echo = Command::new(std::env::current_exe().unwrap());
    echo.env("WS_BENCH_ROLE", "echo");
    let (mut echo_child, echo_addr) = spawn_line(echo, "echo listening on ");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/ws.yaml"),
        format!(
            "routes:\n  - name: bridged\n    match: {{ path: \"/ws/**\" }}\n    upstream: http://{echo_addr}\n    websocket: true\n    rules:\n      - name: all\n        guest: true\n  - name: builtin\n    match: {{ path: \"/builtin/**\" }}\n    upstream: builtin:whoami\n    websocket: true\n    rules:\n      - name: all\n        guest: true\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gateway.yaml"),
        format!(
            "listen: 127.0.0.1:0\npolicies: policies\nworkers: {}\n",
            env_number("WORKERS", 1)
        ),
    )
    .unwrap();
    let binary =
        std::env::var_os("GATEWAY").unwrap_or_else(|| env!("CARGO_BIN_EXE_portcullis").into());
    let mut gateway = Command::new(binary);
    gateway
        .args(["serve", "--config"])
        .arg(dir.path().join("gateway.yaml"))
        .env("RUST_LOG", "error");
    let (mut gateway_child, gateway_addr) = spawn_line(gateway, "portcullis listening on http://");
    let pid = gateway_child.id();
    let idle_rss = kib(pid, "VmRSS:");

    let bridged_url = format!("ws://{gateway_addr}/ws/bench");
    let held = hold_open(&bridged_url, sockets).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bridged_rss = kib(pid, "VmRSS:");
    drop(held);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let builtin_url = format!("ws://{gateway_addr}/builtin/ws");
    let held = hold_open(&builtin_url, builtin_sockets).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let builtin_rss = kib(pid, "VmRSS:");
    drop(held);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let direct_url = format!("ws://{echo_addr}/ws/bench");
    let (mut direct_rates, mut through_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct_rates.push(relay_rate(&direct_url, connections, messages).await);
        through_rates.push(relay_rate(&bridged_url, connections, messages).await);
    }
    let thousands = |rates: &[f64]| {
        rates
            .iter()
            .map(|r| format!("{:.0}k", r / 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let each_round = format!(
        "direct {}; through {}",
        thousands(&direct_rates),
        thousands(&through_rates)
    );
    let (direct, through) = (median(direct_rates), median(through_rates));
    let peak = kib(pid, "VmHWM:");

    println!(
        "gateway workers {}; RSS idle {:.1} MiB",
        env_number("WORKERS", 1),
        idle_rss as f64 / 1024.0
    );
    println!(
        "{sockets} bridged WebSockets held open (client + upstream side): gateway RSS {:.1} MiB",
        bridged_rss as f64 / 1024.0
    );
    println!(
        "{builtin_sockets} WebSockets to the in-process echo (client side only): gateway RSS {:.1} MiB",
        builtin_rss as f64 / 1024.0
    );
    println!(
        "gateway peak RSS over the run {:.1} MiB",
        peak as f64 / 1024.0
    );
    println!(
        "relay, {connections} connections, {messages} x 64 B echoed, median of {rounds} rounds: direct {direct:.0} msg/s, through portcullis {through:.0} msg/s, ratio {:.2}x",
        through / direct
    );
    println!("relay msg/s per round: {each_round}");
    // SIGTERM, not kill(): the gateway exits through its shutdown path, so an instrumented build
    // writes its profile (scripts/pgo-build.sh trains on this bench).
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = gateway_child.wait();
    let _ = echo_child.kill();
    let _ = echo_child.wait();
}
