//! A real browser against real processes: headless Chromium (Debian's `chromium`, driven by
//! playwright-core in `tests/browser/driver.js`) logs in through the gateway binary.
//!
//! - Basic auth (issue 6): the login form, a wrong password, the demo upstream showing the
//!   user, and the 403 page for a user the policy refuses.
//! - The Panel example (issue 9): `examples/panel/` served by `panel serve` behind the gateway
//!   with the example's own gateway.yaml and policy, users logging in at a real `oidc-provider`;
//!   the Bokeh WebSocket works through the gateway, the app shows the user from its verified
//!   capability token, a contractor gets the 403 page, the admin page is for admins, the app
//!   itself refuses missing, expired and tampered tokens, and a policy edit that removes the
//!   user closes the open socket with 1008 and denies the next page load.
//!
//! Screenshots of every step go to `<target>/browser-artifacts/<test>/` (not committed).
//! Needs `/usr/bin/chromium`, node and Python with Panel: `bash scripts/test.sh` installs them.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use portcullis::capability::{CapabilityConfig, KeyRing, KeyStore, Minter};
use portcullis::identity::Identity;
use serde_json::{Value, json};
use support::gateway::{GatewayProcess, keygen, write_atomically};
use support::oidc::{CLIENT_SECRET, OidcProvider, free_port};
use support::panel::{PanelOptions, PanelProcess};

const CHROMIUM: &str = "/usr/bin/chromium";
const SESSION_SECRET: &str = "browser-test-session-secret-0123456789abcdef";

/// One browser test at a time: each starts Chromium, the gateway and more on 2 shared cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn artifacts(test: &str) -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let dir = target.join("browser-artifacts").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ensure_driver_installed() {
    static NPM_CI: Mutex<bool> = Mutex::new(false);
    let mut done = NPM_CI.lock().unwrap_or_else(|e| e.into_inner());
    let dir = repo().join("tests/browser");
    if !*done && !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("npm is needed to install playwright-core for the browser tests");
        assert!(status.success(), "npm ci in tests/browser failed");
    }
    *done = true;
}

/// The last `n` lines of a process's log, for failure messages.
fn tail(log: &Arc<Mutex<Vec<String>>>, n: usize) -> String {
    let lines = log.lock().unwrap();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The node driver: one JSON command per line in, one JSON answer per line out.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Logs of the other processes, shown when a step fails.
    watched: Vec<(&'static str, Arc<Mutex<Vec<String>>>)>,
    started: Instant,
}

impl Driver {
    fn start(artifacts: &Path) -> Driver {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install Debian's chromium (`bash scripts/test.sh` does)"
        );
        ensure_driver_installed();
        let mut child = Command::new("node")
            .arg(repo().join("tests/browser/driver.js"))
            .arg("--artifacts")
            .arg(artifacts)
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: Chromium and its helpers go down with the driver.
            .process_group(0)
            .spawn()
            .expect("node is needed to run tests/browser/driver.js");
        let stdin = child.stdin.take().unwrap();
        let (tx, answers) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut driver = Driver {
            child,
            stdin,
            answers,
            stderr,
            watched: Vec::new(),
            started: Instant::now(),
        };
        let ready = driver.read_answer(Duration::from_secs(60), "start");
        assert_eq!(ready["ready"], true, "{ready}");
        eprintln!("chromium {} ready", ready["browser"]);
        driver
    }

    fn watch(&mut self, name: &'static str, log: Arc<Mutex<Vec<String>>>) {
        self.watched.push((name, log));
    }

    fn diagnostics(&self) -> String {
        let mut out = format!("driver stderr:\n{}\n", tail(&self.stderr, 40));
        for (name, log) in &self.watched {
            out.push_str(&format!("--- {name} (last lines):\n{}\n", tail(log, 60)));
        }
        out
    }

    fn read_answer(&mut self, wait: Duration, what: &str) -> Value {
        match self.answers.recv_timeout(wait) {
            Ok(line) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("driver answered non-JSON to {what} ({e}): {line}")),
            Err(_) => panic!(
                "the browser driver gave no answer to {what} within {wait:?}\n{}",
                self.diagnostics()
            ),
        }
    }

    /// Runs one command; panics with the driver's error, its failure screenshot and the
    /// processes' logs when it fails.
    fn run(&mut self, command: Value) -> Value {
        let what = command.to_string();
        let timeout = command["timeout_ms"].as_u64().unwrap_or(30_000);
        writeln!(self.stdin, "{command}").expect("write to the driver");
        let answer = self.read_answer(
            Duration::from_millis(timeout) + Duration::from_secs(30),
            &what,
        );
        if answer["ok"] != true {
            panic!(
                "browser step failed: {what}\nerror: {}\nscreenshot: {}\nurl: {}\npage text:\n{}\n{}",
                answer["error"].as_str().unwrap_or_default(),
                answer["shot"].as_str().unwrap_or_default(),
                answer["url"].as_str().unwrap_or_default(),
                answer["text"].as_str().unwrap_or_default(),
                self.diagnostics()
            );
        }
        eprintln!(
            "[{:>6.1} s] {}",
            self.started.elapsed().as_secs_f64(),
            command["cmd"].as_str().unwrap_or_default()
        );
        answer
    }

    fn new_session(&mut self) {
        self.run(json!({"cmd": "new_session"}));
    }

    fn goto(&mut self, url: &str) -> Value {
        self.run(json!({"cmd": "goto", "url": url, "timeout_ms": 30_000}))
    }

    fn submit(&mut self, fields: Value) -> Value {
        self.run(json!({"cmd": "submit", "fields": fields, "timeout_ms": 30_000}))
    }

    fn wait_text(&mut self, text: &str, timeout_ms: u64) -> String {
        let answer = self.run(json!({"cmd": "wait_text", "text": text, "timeout_ms": timeout_ms}));
        answer["text"].as_str().unwrap_or_default().to_owned()
    }

    fn click_through(&mut self, text: &str, role: &str) -> Value {
        self.run(json!({"cmd": "click_through", "text": text, "role": role, "timeout_ms": 30_000}))
    }

    fn screenshot(&mut self, name: &str) {
        self.run(json!({"cmd": "screenshot", "name": name}));
    }

    fn sockets(&mut self) -> Vec<Value> {
        let answer = self.run(json!({"cmd": "websockets"}));
        answer["sockets"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The driver's process group: node, Chromium and Chromium's helpers.
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

/// Asserts on a page answer, with the page and the gateway's log in the message.
#[track_caller]
fn assert_page(page: &Value, status: u64, contains: &[&str], gateway: &GatewayProcess) {
    let text = page["text"].as_str().unwrap_or_default();
    let ok = page["status"] == status && contains.iter().all(|c| text.contains(c));
    assert!(
        ok,
        "expected status {status} showing {contains:?}, got {} at {}\nredirects: {}\npage text:\n{text}\n--- gateway log:\n{}",
        page["status"],
        page["url"],
        page["chain"],
        tail(&gateway.stderr, 80)
    );
}

fn path_of(page: &Value) -> String {
    let url = url::Url::parse(page["url"].as_str().unwrap()).unwrap();
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 6: basic auth in a browser

fn basic_auth_gateway() -> GatewayProcess {
    let hash = |password: &str| portcullis::identity::basic::hash_password(password).unwrap();
    let dir = GatewayProcess::prepare(
        "127.0.0.1:0",
        "basic_auth:\n  credentials_file: users.yaml\n",
        &[(
            "app.yaml",
            r#"
routes:
  - name: app
    match: { path: "/app/**" }
    upstream: builtin:whoami
    rules:
      - name: analysts
        allow: { groups: [analysts] }
        grants: [read]
"#,
        )],
    );
    std::fs::write(
        dir.path().join("users.yaml"),
        format!(
            "users:\n  alice:\n    password_hash: \"{}\"\n    email: alice@example.com\n    email_verified: true\n    groups: [analysts]\n  dave:\n    password_hash: \"{}\"\n    email: dave@example.com\n    email_verified: true\n    groups: [visitors]\n",
            hash("alice-password"),
            hash("dave-password"),
        ),
    )
    .unwrap();
    GatewayProcess::spawn(dir, &[])
}

#[test]
fn basic_login_form_in_chromium_reaches_the_upstream_and_a_refused_user_sees_the_403_page() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let gateway = basic_auth_gateway();
    let mut browser = Driver::start(&artifacts("basic"));
    browser.watch("gateway", gateway.stderr.clone());

    // An anonymous browser is sent to the login page.
    let login = browser.goto(&gateway.url("/app/home"));
    assert_page(&login, 200, &["Sign in", "Username", "Password"], &gateway);
    assert_eq!(path_of(&login), "/oauth2/start?rd=/app/home", "{login}");
    browser.screenshot("01-login-page");

    // A wrong password: the form again, with the error.
    let wrong = browser.submit(json!({"username": "alice", "password": "not-her-password"}));
    assert_page(&wrong, 401, &["Wrong username or password"], &gateway);
    browser.screenshot("02-wrong-password");

    // The right one: back to /app/home, where the demo upstream shows what it received.
    // (From a fresh login page: the page re-rendered after a failure forgets `rd`, see
    // `a_failed_login_still_returns_to_the_requested_page`.)
    browser.goto(&gateway.url("/app/home"));
    let home = browser.submit(json!({"username": "alice", "password": "alice-password"}));
    assert_page(
        &home,
        200,
        &[
            "portcullis builtin:whoami",
            "\"x-auth-request-user\": \"alice\"",
            "\"x-auth-request-email\": \"alice@example.com\"",
            "\"x-auth-capability\"",
        ],
        &gateway,
    );
    assert_eq!(path_of(&home), "/app/home");
    assert!(
        !home["text"].as_str().unwrap().contains("alice-password"),
        "the password never reaches the upstream"
    );
    browser.screenshot("03-upstream-sees-alice");

    // The session holds: another page without a second login.
    let other = browser.goto(&gateway.url("/app/reports"));
    assert_page(&other, 200, &["\"path\": \"/app/reports\""], &gateway);

    // A link to the logout on another site's page (here a `data:` page, an opaque origin) only
    // asks; the session holds until she confirms on the gateway's page.
    let elsewhere = format!(
        "data:text/html,<a href=\"{}\">Win a prize</a>",
        gateway.url("/oauth2/logout")
    );
    browser.goto(&elsewhere);
    let asked = browser.click_through("Win a prize", "link");
    assert_page(&asked, 200, &["Sign out?", "Stay signed in"], &gateway);
    browser.screenshot("04-logout-from-another-site-asks");
    let still = browser.goto(&gateway.url("/app/reports"));
    assert_page(&still, 200, &["\"path\": \"/app/reports\""], &gateway);
    browser.goto(&elsewhere);
    browser.click_through("Win a prize", "link");
    let signed_out = browser.click_through("Sign out", "button");
    assert_page(&signed_out, 200, &["You are signed out"], &gateway);
    let login = browser.goto(&gateway.url("/app/home"));
    assert_page(&login, 200, &["Sign in", "Username"], &gateway);

    // Typed into the address bar, the logout needs no confirmation.
    let home = browser.submit(json!({"username": "alice", "password": "alice-password"}));
    assert_page(
        &home,
        200,
        &["\"x-auth-request-user\": \"alice\""],
        &gateway,
    );
    let typed = browser.goto(&gateway.url("/oauth2/logout"));
    assert_page(&typed, 200, &["You are signed out"], &gateway);
    let login = browser.goto(&gateway.url("/app/home"));
    assert_page(&login, 200, &["Sign in", "Username"], &gateway);

    // dave logs in fine but is not an analyst: the gateway's 403 page.
    browser.new_session();
    let login = browser.goto(&gateway.url("/app/home"));
    assert_page(&login, 200, &["Sign in"], &gateway);
    let denied = browser.submit(json!({"username": "dave", "password": "dave-password"}));
    assert_page(
        &denied,
        403,
        &[
            "Error 403",
            "Access denied",
            "the access policy does not allow this request",
            "Request ID",
        ],
        &gateway,
    );
    assert_eq!(denied["title"], "403 Access denied", "{denied}");
    assert_eq!(path_of(&denied), "/app/home");
    browser.screenshot("05-dave-denied");
    eprintln!(
        "basic auth in chromium: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// After a wrong password the login form is shown again; the right password must still lead to
/// the page the user asked for.
#[test]
fn a_failed_login_still_returns_to_the_requested_page() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gateway = basic_auth_gateway();
    let mut browser = Driver::start(&artifacts("basic-retry"));
    browser.watch("gateway", gateway.stderr.clone());
    browser.goto(&gateway.url("/app/home"));
    let wrong = browser.submit(json!({"username": "alice", "password": "not-her-password"}));
    assert_page(&wrong, 401, &["Wrong username or password"], &gateway);
    let home = browser.submit(json!({"username": "alice", "password": "alice-password"}));
    assert_eq!(path_of(&home), "/app/home", "{home}");
}

// ---------------------------------------------------------------------------------------------
// Issue 9: the Panel example end to end

struct PanelScene {
    // Field order is drop order: the browser first, then the app, the gateway, the provider.
    browser: Driver,
    panel: PanelProcess,
    gateway: GatewayProcess,
    _idp: OidcProvider,
}

/// The example's gateway.yaml and policy (its upstream pointed at the test's Panel port),
/// a fresh signing key, the test provider, and `panel serve examples/panel/{app,admin}.py`.
fn panel_scene(artifacts: &Path) -> PanelScene {
    let example = repo().join("examples/panel");
    let gateway_port = free_port();
    let panel_port = free_port();
    let gateway_origin = format!("127.0.0.1:{gateway_port}");
    let base = format!("http://{gateway_origin}");

    let idp = OidcProvider::start(&format!("{base}/oauth2/callback"), 300);

    let panel = PanelProcess::start(PanelOptions {
        apps: vec![example.join("app.py"), example.join("admin.py")],
        port: Some(panel_port),
        prefix: "panel",
        // The gateway passes the browser's Origin through; opening Panel directly (the
        // missing/forged token checks below) needs its own origin too.
        websocket_origins: vec![gateway_origin.clone(), format!("127.0.0.1:{panel_port}")],
        env: vec![(
            "PORTCULLIS_KEYS".into(),
            format!("{base}/.well-known/portcullis/keys.json"),
        )],
    });

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        example.join("gateway.yaml"),
        dir.path().join("gateway.yaml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    let policy = std::fs::read_to_string(example.join("policies/panel.yaml")).unwrap();
    assert!(
        policy.contains("http://127.0.0.1:5006"),
        "the example policy's upstream moved"
    );
    std::fs::write(
        dir.path().join("policies/panel.yaml"),
        policy.replace(
            "http://127.0.0.1:5006",
            &format!("http://127.0.0.1:{panel_port}"),
        ),
    )
    .unwrap();
    keygen(&dir.path().join("keys"));
    let issuer = idp.issuer();
    let gateway = GatewayProcess::spawn(
        dir,
        &[
            ("PORTCULLIS_LISTEN", gateway_origin.as_str()),
            ("PORTCULLIS_PUBLIC_URL", base.as_str()),
            ("PORTCULLIS_SESSION_SECRET", SESSION_SECRET),
            ("OIDC_ISSUER", issuer.as_str()),
            ("OIDC_CLIENT_SECRET", CLIENT_SECRET),
        ],
    );
    assert_eq!(gateway.addr.port(), gateway_port);

    let mut browser = Driver::start(artifacts);
    browser.watch("gateway", gateway.stderr.clone());
    browser.watch("panel serve", panel.log.clone());
    PanelScene {
        browser,
        panel,
        gateway,
        _idp: idp,
    }
}

fn alice() -> Identity {
    Identity {
        subject: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
        groups: vec!["admins".into(), "analysts".into()],
        provider: "company".into(),
        ..Identity::default()
    }
}

#[test]
fn panel_app_behind_the_gateway_in_chromium_end_to_end() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let mut scene = panel_scene(&artifacts("panel"));
    eprintln!("processes up in {:.1} s", started.elapsed().as_secs_f64());
    let base = format!("http://{}", scene.gateway.addr);
    let issuer = scene._idp.issuer();
    let app = format!("{base}/panel/app");
    let (browser, gateway) = (&mut scene.browser, &scene.gateway);

    // bob (contractors.example.com) signs in at the provider and gets the gateway's 403 page.
    let provider_form = browser.goto(&app);
    assert_page(&provider_form, 200, &["Sign in"], gateway);
    assert!(
        provider_form["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{issuer}/interaction/")),
        "an anonymous visitor is sent to the provider: {provider_form}"
    );
    let denied = browser.submit(json!({"login": "bob", "password": "bob-password"}));
    assert_page(
        &denied,
        403,
        &["Error 403", "Access denied", "Request ID"],
        gateway,
    );
    assert_eq!(denied["url"], app.as_str());
    browser.screenshot("01-bob-denied");

    // alice signs in and the dashboard renders: Bokeh pulls the document over its WebSocket
    // (through the gateway), and the app shows who she is from its verified token.
    browser.new_session();
    let provider_form = browser.goto(&app);
    assert_page(&provider_form, 200, &["Sign in"], gateway);
    browser.screenshot("02-provider-login");
    let landed = browser.submit(json!({"login": "alice", "password": "alice-password"}));
    assert_page(&landed, 200, &["Sales dashboard"], gateway);
    assert_eq!(landed["url"], app.as_str());
    let shown = browser.wait_text("Signed in as alice@example.com", 45_000);
    for expected in [
        "admins, analysts",
        "rights\nread",
        "route\npanel\n",
        "signed in with\ncompany",
    ] {
        assert!(
            shown.contains(expected),
            "the dashboard shows {expected:?}:\n{shown}"
        );
    }
    assert!(!shown.contains("Access refused"), "{shown}");
    browser.screenshot("03-alice-dashboard");

    // A Python callback answering over the socket: the WebSocket works both ways.
    browser.run(json!({"cmd": "click", "text": "Ping the server"}));
    browser.wait_text("Server round trips: 1", 20_000);
    let sockets = browser.sockets();
    assert!(
        sockets.iter().any(
            |s| s["url"] == format!("ws://{}/panel/app/ws", gateway.addr)
                && s["opened"] == true
                && s["closed"] == false
        ),
        "one open Bokeh socket through the gateway: {sockets:?}"
    );

    // The admin page: alice is in `admins`; the token carries the admin route and right.
    let admin = browser.goto(&format!("{base}/panel/admin"));
    assert_page(&admin, 200, &["Admin"], gateway);
    let shown = browser.wait_text("Admin console", 45_000);
    assert!(shown.contains("alice may: admin, read"), "{shown}");
    assert!(shown.contains("route\npanel-admin"), "{shown}");
    browser.screenshot("04-alice-admin");

    // Panel itself refuses what the gateway would never send: no token, an expired one, a
    // tampered one; a valid one shows the user (so the refusals are the token's doing).
    let keys = KeyRing::load_dir(&gateway.dir.path().join("keys")).unwrap();
    let minter = Minter::new(&CapabilityConfig::default(), KeyStore::fixed(keys)).unwrap();
    let read = ["read".to_string()];
    let valid = minter.mint(&alice(), "panel", &read).unwrap();
    let expired = minter
        .mint_at(
            &alice(),
            "panel",
            &read,
            SystemTime::now() - Duration::from_secs(3600),
        )
        .unwrap();
    let mut tampered = valid.clone().into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let direct = scene.panel.url("/panel/app");
    let cases = [
        ("missing", None, "(malformed)"),
        ("expired", Some(expired), "(expired)"),
        ("tampered", Some(tampered), "Access refused"),
        ("valid", Some(valid), "Signed in as alice@example.com"),
    ];
    for (name, token, expected) in cases {
        browser.new_session();
        if let Some(token) = &token {
            browser.run(json!({"cmd": "set_headers", "headers": {"X-Auth-Capability": token}}));
        }
        browser.goto(&direct);
        let shown = browser.wait_text(expected, 45_000);
        if name != "valid" {
            assert!(
                shown.contains("Access refused") && !shown.contains("Signed in as"),
                "a {name} token is refused:\n{shown}"
            );
        }
        browser.screenshot(&format!("05-direct-{name}-token"));
    }

    // Back through the gateway (a new browser session: log in again), the dashboard open.
    browser.new_session();
    browser.goto(&app);
    browser.submit(json!({"login": "alice", "password": "alice-password"}));
    browser.wait_text("Signed in as alice@example.com", 45_000);

    // An operator removes alice in the policy file: the open Panel socket is closed with 1008
    // (policy violation) within the reload debounce, as the page's own JavaScript sees it.
    let policy_file = gateway.policy_dir().join("panel.yaml");
    let mut policy = std::fs::read_to_string(&policy_file).unwrap();
    policy.push_str(
        "  - name: alice left the company\n    deny: { when: 'user.email == \"alice@example.com\"' }\n",
    );
    let edited = Instant::now();
    write_atomically(&policy_file, &policy);
    let closed = browser.run(json!({
        "cmd": "wait_ws_close", "url_contains": "/panel/app/ws", "timeout_ms": 20_000
    }));
    let socket = &closed["socket"];
    eprintln!(
        "socket closed {:.0} ms after the policy edit: {socket}",
        edited.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(
        socket["code"],
        1008,
        "the policy edit closes the socket with 1008: {closed}\n{}",
        tail(&gateway.stderr, 40)
    );
    assert!(
        socket["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("denied"),
        "the close reason says why: {socket}"
    );
    // The app tells the user (Panel's disconnect notification) instead of going stale.
    browser.wait_text("Disconnected: your access changed", 10_000);
    browser.run(json!({"cmd": "screenshot", "name": "06-socket-closed", "settle_ms": 1000}));

    // The next page load is denied.
    let after = browser.goto(&app);
    assert_page(&after, 403, &["Error 403", "Access denied"], gateway);
    browser.screenshot("07-alice-denied-after-edit");
    eprintln!("panel end to end: {:.1} s", started.elapsed().as_secs_f64());
}

/// The example's own policy tests (`portcullis test examples/panel/policies`).
#[test]
fn the_panel_example_policy_passes_its_tests() {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("test")
        .arg(repo().join("examples/panel/policies"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
