//! A real `oidc-provider` (npm) process on 127.0.0.1 for integration tests.
//!
//! Runs `npm ci` in `tests/oidc` once if `node_modules` is missing, starts
//! `node tests/oidc/provider.js` on a free port, waits until discovery answers, and kills the
//! process on drop. See `tests/oidc/provider.js` for the users, client and admin endpoints.
#![allow(dead_code)] // shared by several test binaries; each uses a part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        ensure_node_modules();
        let mut provider = OidcProvider {
            child: None,
            port: free_port(),
            redirect_uri: redirect_uri.to_owned(),
            access_token_ttl,
        };
        provider.spawn();
        provider
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("node")
            .arg(provider_dir().join("provider.js"))
            .env("PORT", self.port.to_string())
            .env("REDIRECT_URI", &self.redirect_uri)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("ACCESS_TOKEN_TTL", self.access_token_ttl.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is needed to run tests/oidc/provider.js");
        self.child = Some(child);
        self.wait_for_discovery();
    }

    fn wait_for_discovery(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("oidc-provider exited early: {status}");
            }
            if discovery_answers(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "oidc-provider on port {} did not answer discovery within 30 s",
            self.port
        );
    }

    /// Stops the process (the port goes dark: "provider down").
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts on the same port with a freshly generated signing key (new `kid`); all provider
    /// state (sessions, grants, tokens) is gone.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn discovery_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "GET /.well-known/openid-configuration HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
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
