//! Starts the real `portcullis` binary on a free loopback port with a config and policy files
//! written to a temporary directory, and stops it on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct GatewayProcess {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Every line the gateway printed on stdout (the startup banner).
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl GatewayProcess {
    /// `config` is gateway.yaml without `listen` and `policies` (both are filled in);
    /// `policies` are (file name, YAML) pairs written to `<dir>/policies`.
    pub fn start(config: &str, policies: &[(&str, &str)]) -> GatewayProcess {
        Self::start_on("127.0.0.1:0", config, policies)
    }

    /// Like [`start`](Self::start) on a fixed address, for tests whose identity provider must
    /// know the gateway's redirect URI before it starts.
    pub fn start_on(listen: &str, config: &str, policies: &[(&str, &str)]) -> GatewayProcess {
        Self::spawn(Self::prepare(listen, config, policies), &[])
    }

    /// [`start`](Self::start) for async tests: it blocks until the process listens, so it runs
    /// on the blocking pool.
    pub async fn start_async(config: &str, policies: &[(&str, &str)]) -> GatewayProcess {
        let config = config.to_owned();
        let policies: Vec<(String, String)> = policies
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let borrowed: Vec<(&str, &str)> = policies
                .iter()
                .map(|(name, text)| (name.as_str(), text.as_str()))
                .collect();
            Self::start(&config, &borrowed)
        })
        .await
        .unwrap()
    }

    /// Writes gateway.yaml and the policy files into a new temporary directory.
    pub fn prepare(listen: &str, config: &str, policies: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        write_policies(dir.path(), policies);
        let config = format!("listen: {listen}\npolicies: policies\nshutdown_grace: 5s\n{config}");
        std::fs::write(dir.path().join("gateway.yaml"), config).unwrap();
        dir
    }

    pub fn spawn(dir: tempfile::TempDir, env: &[(&str, &str)]) -> GatewayProcess {
        Self::spawn_with_args(dir, env, &[])
    }

    pub fn spawn_with_args(
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> GatewayProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command
            .arg("serve")
            .args(args)
            .arg("--config")
            .arg(dir.path().join("gateway.yaml"))
            .env("RUST_LOG", "info,portcullis=debug");
        for (name, value) in env {
            command.env(name, value);
        }
        Self::launch(command, dir)
    }

    /// `portcullis serve` without any config, as the README's quickstart runs it, on a free
    /// port, from an empty working directory.
    pub fn start_embedded_default() -> GatewayProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info,portcullis=debug");
        Self::launch(command, dir)
    }

    /// Runs `command` and waits for the line that names the port it listens on.
    fn launch(mut command: Command, dir: tempfile::TempDir) -> GatewayProcess {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("start portcullis");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let banner = printed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("portcullis listening on http://") {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                banner.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "portcullis did not start:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
        };
        GatewayProcess {
            child,
            addr,
            dir,
            stderr: lines,
            stdout: printed,
        }
    }

    /// The address the gateway printed for its separate metrics listener
    /// (`portcullis metrics on http://ADDR/metrics`), waiting briefly for the line.
    pub fn metrics_addr(&self) -> SocketAddr {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.stdout.lock().unwrap().iter().find_map(|line| {
                line.strip_prefix("portcullis metrics on http://")
                    .and_then(|rest| rest.strip_suffix("/metrics"))
                    .map(|addr| addr.parse::<SocketAddr>().unwrap())
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no metrics address printed: {:?}",
                self.stdout.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        self.child.wait().expect("wait for portcullis")
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmHWM:")
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `portcullis serve --config <config>` to its end, for a config it must refuse at startup
/// (one it accepts would serve until killed).
pub fn serve_until_exit(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

/// Runs the gateway on `policies` (file name, YAML) with a gateway.yaml naming only the listen
/// address and the policy directory, so the policies are all it can refuse; asserts that it
/// exits unsuccessfully without serving and returns what it printed on stderr.
pub fn refused_startup_stderr(policies: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_policies(dir.path(), policies);
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:0\npolicies: policies\n").unwrap();
    let output = serve_until_exit(&config);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("listening"), "it must not serve: {stdout}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes `policies` (file name, YAML) into a new `policies` directory in `dir`.
fn write_policies(dir: &Path, policies: &[(&str, &str)]) {
    let policy_dir = dir.join("policies");
    std::fs::create_dir(&policy_dir).unwrap();
    for (name, text) in policies {
        std::fs::write(policy_dir.join(name), text).unwrap();
    }
}

/// Makes a capability signing key in `dir` with `portcullis keygen`.
pub fn keygen(dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("keygen")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Writes `text` to `path` atomically (write a sibling, then rename), as editors do.
pub fn write_atomically(path: &Path, text: &str) {
    let staged = path.with_extension("staged~");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}
