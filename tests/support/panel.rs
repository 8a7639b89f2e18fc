//! A real `panel serve` process on 127.0.0.1 for integration tests.
//!
//! Python comes from `$PORTCULLIS_PYTHON`, else the repository's `.venv/bin/python` (made by
//! `bash scripts/test.sh` from requirements-test.txt). The server's log is kept for failure
//! messages; the process is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::oidc::free_port;

/// Python with biscuit-python and Panel installed.
pub fn python() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("PORTCULLIS_PYTHON")
        .map_or_else(|| repo.join(".venv/bin/python"), PathBuf::from);
    assert!(
        python.exists(),
        "no Python at {}: run `bash scripts/test.sh` (it makes .venv from requirements-test.txt)",
        python.display()
    );
    let probe = Command::new(&python)
        .args(["-c", "import panel, biscuit_auth"])
        .output()
        .expect("run python");
    assert!(
        probe.status.success(),
        "{} cannot import panel and biscuit_auth: run `bash scripts/test.sh`\n{}",
        python.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    python
}

/// What to serve and how.
pub struct PanelOptions<'a> {
    /// Scripts, served as `/<prefix>/<file stem>`.
    pub apps: Vec<PathBuf>,
    /// A port chosen beforehand (e.g. to allow it as a WebSocket origin), or any free one.
    pub port: Option<u16>,
    /// URL prefix without slashes (`panel` → `/panel/app`), matching the gateway's route.
    pub prefix: &'a str,
    /// `host:port` values whose `Origin` Bokeh accepts on its WebSocket.
    pub websocket_origins: Vec<String>,
    pub env: Vec<(String, String)>,
}

pub struct PanelProcess {
    child: Child,
    pub port: u16,
    prefix: String,
    /// Everything the server printed (stdout and stderr), line by line.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl PanelProcess {
    /// Starts `python -m panel serve` on a free port and waits (up to 60 s) until every app
    /// answers over HTTP.
    pub fn start(options: PanelOptions<'_>) -> PanelProcess {
        let port = options.port.unwrap_or_else(free_port);
        let mut command = Command::new(python());
        command
            .args(["-m", "panel", "serve"])
            .args(&options.apps)
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--prefix", options.prefix])
            .args(["--log-level", "info"])
            .env("PYTHONUNBUFFERED", "1")
            .env("BOKEH_BROWSER", "none")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for origin in &options.websocket_origins {
            command.arg(format!("--allow-websocket-origin={origin}"));
        }
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start panel serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let mut panel = PanelProcess {
            child,
            port,
            prefix: options.prefix.to_owned(),
            log,
        };
        let stems: Vec<String> = options
            .apps
            .iter()
            .map(|app| app.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        panel.wait_ready(&stems);
        panel
    }

    fn wait_ready(&mut self, stems: &[String]) {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        // Panel logs "Bokeh app running at: http://…/panel/app" once per app, then serves;
        // a static file then proves the HTTP side answers (without creating a session).
        let path = format!("/{}/static/js/bokeh.min.js", self.prefix);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("panel serve exited early ({status}):\n{}", self.logs());
            }
            let logs = self.logs();
            let announced = stems.iter().all(|stem| {
                logs.lines().any(|line| {
                    line.contains("Bokeh app running at")
                        && line.ends_with(&format!("/{}/{stem}", self.prefix))
                })
            });
            if announced && http_status(self.port, &path) == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "panel serve on port {} was not ready within 60 s:\n{}",
            self.port,
            self.logs()
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for PanelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of one plain HTTP/1.1 GET on loopback, or `None` if nothing answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
