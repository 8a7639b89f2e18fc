//! The `portcullis` command line.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::capability;
use portcullis::config::Config;
use portcullis::policy::{self, DEFAULT_DEBOUNCE, Features, PolicySet, PolicyStore};
use portcullis::server::Gateway;
use portcullis::telemetry::{LogFormat, init_tracing};

/// glibc's allocator showed up as a fifth of the per-request instructions in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A declarative, policy-driven auth gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (without --config: 127.0.0.1:8080, the example policies, a demo upstream).
    Serve {
        /// gateway.yaml; omit it to start on the embedded default.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen here instead of the config's `listen` (repeat for several addresses; port 0
        /// picks a free one). Without `public_url` in the config, the public URL follows.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<SocketAddr>,
        /// Log lines for people (human) or for log pipelines (json).
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Compile every policy file and report every error at once (exit 1 on any error).
    Check {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Run the policy test files (`*_test.yaml`) of a directory.
    Test {
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Show the decision for one request and the rules tried on the way.
    Explain {
        /// Identity as YAML (subject, email, email_verified, groups, provider, claims); anonymous without it.
        #[arg(long)]
        user: Option<PathBuf>,
        /// Policy directory.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The request, e.g. "GET https://apps.example.com/panel/".
        request: String,
    },
    /// Hash a password for the basic-auth credentials file (reads it from stdin).
    HashPassword,
    /// Write a new Ed25519 signing key into a key directory; the newest key signs.
    Keygen {
        /// The key directory (`capability.keys_dir`).
        dir: PathBuf,
    },
    /// Capability key ring commands.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Verify or inspect a capability token.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the public keys of a key directory as keys.json.
    Public { dir: PathBuf },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Verify a token offline with public keys (a keys.json file or URL).
    Verify {
        /// keys.json as a file path or an http(s) URL, e.g. https://gw/.well-known/portcullis/keys.json
        #[arg(long)]
        keys: String,
        /// Require the token to be for this route.
        #[arg(long)]
        route: Option<String>,
        /// Require this right on the route.
        #[arg(long)]
        right: Option<String>,
        token: String,
    },
    /// Print a token's blocks WITHOUT verifying it.
    Inspect { token: String },
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            log_format,
        } => serve(config, listen, log_format),
        Command::Check { dir } => report(policy::cli::check(&dir, &mut std::io::stdout())),
        Command::Test { dir } => report(policy::cli::test(&dir, &mut std::io::stdout())),
        Command::Explain {
            user,
            policies,
            request,
        } => report(policy::cli::explain(
            &policies,
            user.as_deref(),
            &request,
            &mut std::io::stdout(),
        )),
        Command::HashPassword => hash_password(),
        Command::Keygen { dir } => outcome(capability::cli::keygen(&dir, &mut std::io::stdout())),
        Command::Keys {
            command: KeysCommand::Public { dir },
        } => outcome(capability::cli::keys_public(&dir, &mut std::io::stdout())),
        Command::Token {
            command:
                TokenCommand::Verify {
                    keys,
                    route,
                    right,
                    token,
                },
        } => match capability::cli::token_verify(
            &keys,
            &token,
            route.as_deref(),
            right.as_deref(),
            &mut std::io::stdout(),
        ) {
            Ok(valid) => report(valid),
            Err(err) => outcome(Err(err)),
        },
        Command::Token {
            command: TokenCommand::Inspect { token },
        } => outcome(capability::cli::token_inspect(
            &token,
            &mut std::io::stdout(),
        )),
    }
}

fn outcome(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("portcullis: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn report(succeeded: bool) -> ExitCode {
    if succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Reads one line (the password) from stdin and prints its argon2id PHC string.
fn hash_password() -> ExitCode {
    let mut password = String::new();
    if std::io::stdin().read_line(&mut password).is_err() {
        eprintln!("portcullis: cannot read the password from stdin");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!(
            "portcullis: empty password; type it on stdin, e.g. `portcullis hash-password < file`"
        );
        return ExitCode::FAILURE;
    }
    match portcullis::identity::basic::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("portcullis: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config_path: Option<PathBuf>, listen: Vec<SocketAddr>, log_format: LogFormat) -> ExitCode {
    if let Err(err) = init_tracing(log_format, None) {
        eprintln!("portcullis: {err}");
        return ExitCode::FAILURE;
    }
    let mut config = match &config_path {
        None => Config::embedded_default(),
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!(
                    "portcullis: {} error(s) in {}; not starting",
                    errors.0.len(),
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    config.listen_on(listen);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("portcullis: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("portcullis: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // Before the policies load, so that their first load and generation are counted.
    portcullis::telemetry::install_metrics();
    // A policy error at startup is fatal, with every error listed: fail closed before serving.
    let (policies, _policy_watch) = match &config.policies {
        Some(dir) => {
            let features = Features {
                basic_auth: config.basic_auth.is_some(),
            };
            let store = PolicyStore::open(dir, features)
                .map_err(|errors| anyhow::anyhow!("policies do not compile:\n{errors}"))?;
            let watch = store.watch(DEFAULT_DEBOUNCE)?;
            (store, Some(watch))
        }
        None => (PolicyStore::from_set(PolicySet::embedded()), None),
    };
    tokio::spawn(reload_on_sighup(policies.clone()));
    let public_url = config.public_url.clone();
    let gateway = Gateway::bind(config, policies).await?;
    // A closed stdout (a supervisor that stopped reading) must not stop the gateway: these lines
    // are written without `println!`, which panics on a write error.
    let mut banner = String::new();
    for addr in gateway.local_addrs() {
        // Tests and scripts read this line to learn the port when listening on :0.
        banner.push_str(&format!("portcullis listening on http://{addr}\n"));
    }
    if let Some(addr) = gateway.metrics_addr() {
        banner.push_str(&format!("portcullis metrics on http://{addr}/metrics\n"));
    }
    banner.push_str(&format!(
        "open {}\n",
        url_to_open(public_url, &gateway.local_addrs())
    ));
    let mut stdout = std::io::stdout();
    let _ = stdout
        .write_all(banner.as_bytes())
        .and_then(|()| stdout.flush());
    gateway.run(shutdown_signal()).await
}

/// The public URL, or where its port is 0 (the kernel picks one when the gateway listens on
/// port 0), the first address the gateway bound.
fn url_to_open(public_url: url::Url, bound: &[SocketAddr]) -> url::Url {
    match (public_url.port(), bound.first()) {
        (Some(0), Some(addr)) => {
            url::Url::parse(&format!("{}://{addr}/", public_url.scheme())).unwrap_or(public_url)
        }
        _ => public_url,
    }
}

/// `kill -HUP` reloads the policy directory (the watcher does the same on every change).
async fn reload_on_sighup(policies: std::sync::Arc<PolicyStore>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        // File reads, and a short wait for a ConfigMap update to settle: not on the runtime.
        let store = policies.clone();
        match tokio::task::spawn_blocking(move || store.reload()).await {
            Ok(Ok(generation)) => tracing::info!(generation, "SIGHUP: policies reloaded"),
            Ok(Err(errors)) => {
                tracing::warn!(%errors, "SIGHUP: policies do not compile; the last good set keeps serving")
            }
            Err(err) => tracing::error!(error = %err, "SIGHUP: the policy reload failed"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
