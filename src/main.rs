//! The `portcullis` command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::config::Config;
use portcullis::policy::{PolicySet, PolicyStore};
use portcullis::server::Gateway;
use portcullis::telemetry::{LogFormat, init_tracing};

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
        /// Log lines for people (human) or for log pipelines (json).
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => serve(config, log_format),
    }
}

fn serve(config_path: Option<PathBuf>, log_format: LogFormat) -> ExitCode {
    if let Err(err) = init_tracing(log_format, None) {
        eprintln!("portcullis: {err}");
        return ExitCode::FAILURE;
    }
    let config = match &config_path {
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
    let policies = PolicyStore::from_set(PolicySet::demo());
    let public_url = config.public_url.clone();
    let gateway = Gateway::bind(config, policies).await?;
    for addr in gateway.local_addrs() {
        // Tests and scripts read this line to learn the port when listening on :0.
        println!("portcullis listening on http://{addr}");
    }
    if let Some(addr) = gateway.metrics_addr() {
        println!("portcullis metrics on http://{addr}/metrics");
    }
    println!("open {public_url}");
    gateway.run(shutdown_signal()).await
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
