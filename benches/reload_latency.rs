//! Reload latency: from a policy file write (an editor's atomic rename) to the first request
//! decided by the new set, over 100 edits, against the release binary.
//!
//!     cargo bench --bench reload_latency
//!
//! Prints the median, p90, p99 and max. The debounce window (100 ms) is part of what is measured.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EDITS: usize = 100;

fn policy(rule: &str) -> String {
    format!(
        "routes:\n  - name: app\n    match: {{ path: \"/app/**\" }}\n    upstream: builtin:whoami\n    rules:\n{rule}"
    )
}

fn status(addr: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET /app/x HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .expect("write");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("status line");
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    let allow = policy("      - name: everyone\n        guest: true\n");
    let deny = policy("      - name: nobody\n        deny: {}\n");
    std::fs::write(dir.path().join("policies/app.yaml"), &allow).unwrap();
    std::fs::write(
        dir.path().join("gateway.yaml"),
        "listen: 127.0.0.1:0\npolicies: policies\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(dir.path().join("gateway.yaml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start portcullis");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let addr: SocketAddr = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("portcullis listening on http://")
                .map(|a| a.parse().unwrap())
        })
        .expect("listening line");

    let file = dir.path().join("policies/app.yaml");
    let staged = dir.path().join("policies/.app.yaml.swp");
    let mut latencies = Vec::with_capacity(EDITS);
    for edit in 0..EDITS {
        let (text, want) = if edit % 2 == 0 {
            (&deny, 403)
        } else {
            (&allow, 200)
        };
        std::fs::write(&staged, text).unwrap();
        let written = Instant::now();
        std::fs::rename(&staged, &file).unwrap();
        loop {
            if status(addr) == want {
                latencies.push(written.elapsed());
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(5),
                "edit {edit} never took effect"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Let the debouncer go quiet so every edit is measured on its own.
        std::thread::sleep(Duration::from_millis(150));
    }
    let _ = child.kill();
    let _ = child.wait();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "reload latency over {EDITS} edits (write → first request on the new set): median {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}
