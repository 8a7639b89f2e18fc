//! `tracing` setup: human-readable lines by default, JSON lines with `--log-format json`.
//!
//! Every line logged while handling a request carries its `request_id`: the proxied path names
//! it in its own events, and the branches that log on their own run inside [`request_span`]
//! (see `server::guard`). Nothing here logs secrets; call sites must not put tokens, cookies or
//! passwords into fields either.

use std::fmt;
use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// Output format of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event, with span fields.
    #[default]
    Human,
    /// One JSON object per line, with the current span's fields.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    #[error("invalid log filter {filter:?}: {message} (example: \"info,portcullis=debug\")")]
    Filter { filter: String, message: String },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber writing to stderr.
///
/// `filter` uses `RUST_LOG` syntax (`info,portcullis::server=debug`); `None` reads `RUST_LOG`
/// and falls back to `info`.
pub fn init_tracing(format: LogFormat, filter: Option<&str>) -> Result<(), TracingError> {
    let filter = build_filter(filter)?;
    // Colours only for a person at a terminal: escape codes garble files and journald.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|_| TracingError::AlreadyInstalled)
}

fn build_filter(filter: Option<&str>) -> Result<EnvFilter, TracingError> {
    let directives = match filter {
        Some(directives) => directives.to_owned(),
        None => std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
    };
    EnvFilter::try_new(&directives).map_err(|err| TracingError::Filter {
        filter: directives,
        message: err.to_string(),
    })
}

/// The span for a branch of one request that logs: its fields appear on every line inside it.
/// Record the route later with `span.record("route", name)`.
pub fn request_span(request_id: &str) -> tracing::Span {
    tracing::info_span!("request", request_id = %request_id, route = tracing::field::Empty)
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filter_is_reported_with_an_example() {
        let err = build_filter(Some("info,=[")).unwrap_err();
        assert!(err.to_string().contains("example"), "{err}");
        assert!(build_filter(Some("info,portcullis=debug")).is_ok());
    }

    #[test]
    fn request_span_fields_reach_json_lines() {
        let buffer = crate::telemetry::test_support::LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = request_span("rid-42");
            span.record("route", "panel");
            let _entered = span.enter();
            tracing::info!("decided");
        });
        let text = buffer.contents();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["span"]["request_id"], "rid-42");
        assert_eq!(line["span"]["route"], "panel");
    }
}
