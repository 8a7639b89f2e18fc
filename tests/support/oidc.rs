//! A real `oidc-provider` (npm) process on 127.0.0.1 for integration tests.
//!
//! Runs `npm ci` in `tests/oidc` once if `node_modules` is missing, starts
//! `node tests/oidc/provider.js` on a port the provider picks itself (so no other test can take
//! it in between), waits until discovery answers, and kills the process on drop. See `tests/oidc/provider.js` for the users, client and admin endpoints.
#![allow(dead_code)] // shared by several test binaries; each uses a part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use super::gateway::GatewayProcess;

pub const CLIENT_ID: &str = "portcullis";
pub const CLIENT_SECRET: &str = "portcullis-test-secret";

static NPM_CI: Mutex<bool> = Mutex::new(false);

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("oidc")
}

fn ensure_node_modules() {
    let mut done = NPM_CI.lock().unwrap_or_else(|e| e.into_inner());
    if *done
        || provider_dir()
            .join("node_modules")
            .join("oidc-provider")
            .exists()
    {
        *done = true;
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(provider_dir())
        .stdout(Stdio::null())
        .status()
        .expect("npm is needed to install oidc-provider for the tests");
    assert!(status.success(), "npm ci in tests/oidc failed");
    *done = true;
}

/// A free loopback port (bound and released; the provider binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running provider; killed on drop.
pub struct OidcProvider {
    child: Option<Child>,
    pub port: u16,
    redirect_uri: String,
    access_token_ttl: u64,
}

impl OidcProvider {
    /// Starts a provider whose confidential client accepts `redirect_uri`; access tokens live
    /// `access_token_ttl` seconds.
    pub fn start(redirect_uri: &str, access_token_ttl: u64) -> OidcProvider {
        let (child, port) = spawn(0, redirect_uri, access_token_ttl);
        OidcProvider {
            child: Some(child),
            port,
            redirect_uri: redirect_uri.to_owned(),
            access_token_ttl,
        }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the process (the port goes dark: "provider down").
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped provider again on the same port (same issuer): a new process, so a new
    /// signing key and no memory of earlier grants.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the provider is still running");
        let (child, port) = spawn(self.port, &self.redirect_uri, self.access_token_ttl);
        assert_eq!(port, self.port);
        self.child = Some(child);
    }

    /// Rotates the provider's signing key (new `kid`) as a restart would, on the same port: all
    /// provider state (sessions, grants, tokens) is gone.
    pub fn restart(&mut self) {
        let response = post(self.port, "/__admin/rotate");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

/// Starts `provider.js` on `port` (0: it picks one) and waits until discovery answers.
fn spawn(port: u16, redirect_uri: &str, access_token_ttl: u64) -> (Child, u16) {
    ensure_node_modules();
    let mut child = Command::new("node")
        .arg(provider_dir().join("provider.js"))
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", redirect_uri)
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("ACCESS_TOKEN_TTL", access_token_ttl.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is needed to run tests/oidc/provider.js");
    let port = listening_port(&mut child);
    assert!(
        discovery_answers(port),
        "oidc-provider on {port} serves no discovery"
    );
    (child, port)
}

/// Reads the port from the provider's `listening on http://127.0.0.1:PORT` line.
fn listening_port(child: &mut Child) -> u16 {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let port = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let rest = line.split("listening on http://127.0.0.1:").nth(1)?;
            rest.split_whitespace().next()?.parse::<u16>().ok()
        });
        let _ = sender.send(port);
        // Keep draining so the provider never blocks on a full pipe.
        lines.for_each(drop);
    });
    match receiver.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(port)) => port,
        Ok(None) => panic!("oidc-provider exited early: {:?}", child.wait()),
        Err(_) => panic!("oidc-provider did not start listening within 30 s"),
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn discovery_answers(port: u16) -> bool {
    request(port, "GET", "/.well-known/openid-configuration").starts_with("HTTP/1.1 200")
}

fn post(port: u16, path: &str) -> String {
    request(port, "POST", path)
}

/// One `Connection: close` request; the response as text (empty when the provider is down).
fn request(port: u16, method: &str, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_string(&mut response);
    }
    response
}

impl OidcProvider {
    /// The gateway.yaml lines that log users in through this provider at `public_url`, with
    /// sessions sealed by `session_secret`.
    pub fn gateway_config(&self, port: u16, session_secret: &str) -> String {
        format!(
            r#"
public_url: http://127.0.0.1:{port}
session:
  secrets: ["{session_secret}"]
providers:
  - name: test
    kind: oidc
    issuer: {issuer}
    client_id: {CLIENT_ID}
    client_secret: {CLIENT_SECRET}
    scopes: [openid, email, profile, groups, offline_access]
    groups_claim: groups
"#,
            issuer = self.issuer()
        )
    }
}

/// Starts a provider whose access tokens live `access_token_ttl` seconds, then the gateway
/// `start_gateway` makes for it on the port it is given; both on the blocking pool, as both
/// block until they serve. The port is chosen first because the provider must know the
/// gateway's callback URL before it starts. Returns the provider, the gateway and its base URL.
pub async fn start_provider_and_gateway(
    access_token_ttl: u64,
    start_gateway: impl FnOnce(&OidcProvider, u16) -> GatewayProcess + Send + 'static,
) -> (OidcProvider, GatewayProcess, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect_uri = format!("{base}/oauth2/callback");
    let (idp, gateway) = tokio::task::spawn_blocking(move || {
        let idp = OidcProvider::start(&redirect_uri, access_token_ttl);
        let gateway = start_gateway(&idp, port);
        (idp, gateway)
    })
    .await
    .unwrap();
    (idp, gateway, base)
}
