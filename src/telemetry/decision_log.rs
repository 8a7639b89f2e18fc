//! The decision log: one JSON line per decision, to a file or stdout.
//!
//! Denies, login redirects and errors are always written; allows are sampled
//! (`sample_allows`, 0.0–1.0). [`DecisionLog::record`] serializes on the caller's task and
//! hands the line to a writer thread through a bounded queue. When the writer falls behind, an
//! allow line is dropped and counted in `portcullis_decision_log_dropped_total{outcome}`; every
//! other line waits, asynchronously, for room: the denied request is answered once its line is
//! queued, or after `max_wait` (5 s) without room, when the line is dropped and counted too (a
//! writer stuck for good). See [`DecisionLog::record`] for why.
//!
//! ```yaml
//! decision_log:
//!   path: /var/log/portcullis/decisions.jsonl   # omit for stdout
//!   sample_allows: 0.1                           # keep 10% of allows; every deny is kept
//!   max_wait: 5s                                 # longest a deny waits for a stalled writer
//! ```
//!
//! A line: `{"time":"2026-11-22T13:57:00.123Z","request_id":"…","route":"panel",
//! "rule":"analysts at example.com","outcome":"allow","reason":"…","subject":"alice",
//! "method":"GET","path":"/panel/app","status":200}`. The query string is never written (it
//! can hold codes and tokens).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Receiver, Sender, channel};

use super::metrics::DECISION_LOG_DROPPED_TOTAL;

/// Lines waiting for the writer; past it allows are dropped and other lines wait.
const QUEUE_CAPACITY: usize = 8192;
/// Longest path written; longer ones are cut.
const MAX_PATH_CHARS: usize = 1024;

/// `decision_log:` in gateway.yaml. Without the section the log is off; with it, on unless
/// `enabled: false`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// File to append to; `None` writes to stdout.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Share of allow decisions written, 0.0–1.0. Denies, logins and errors are always written.
    #[serde(default = "default_sample")]
    pub sample_allows: f64,
    /// Longest a deny, login or error line waits for room before it is dropped and counted; `0s`
    /// drops it at once. A writer stuck for good (a hung disk, a stdout pipe nobody reads) then
    /// delays those answers by this much, not forever.
    #[serde(default = "default_max_wait", with = "humantime_serde")]
    pub max_wait: Duration,
}

fn default_true() -> bool {
    true
}

fn default_sample() -> f64 {
    1.0
}

fn default_max_wait() -> Duration {
    Duration::from_secs(5)
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            enabled: false,
            path: None,
            sample_allows: 1.0,
            max_wait: default_max_wait(),
        }
    }
}

/// What was decided, as written to the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionOutcome {
    Allow,
    Login,
    Deny,
    /// The gateway or upstream failed (5xx); always written.
    Error,
}

impl DecisionOutcome {
    /// The word written to the log and used as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionOutcome::Allow => "allow",
            DecisionOutcome::Login => "login",
            DecisionOutcome::Deny => "deny",
            DecisionOutcome::Error => "error",
        }
    }
}

impl From<crate::policy::Outcome> for DecisionOutcome {
    fn from(outcome: crate::policy::Outcome) -> Self {
        match outcome {
            crate::policy::Outcome::Allow => DecisionOutcome::Allow,
            crate::policy::Outcome::Login => DecisionOutcome::Login,
            crate::policy::Outcome::Deny => DecisionOutcome::Deny,
        }
    }
}

/// One decision. `path` is the request path; anything from `?` on is dropped before writing.
#[derive(Clone, Debug)]
pub struct DecisionRecord<'a> {
    pub time: SystemTime,
    pub request_id: &'a str,
    pub route: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub outcome: DecisionOutcome,
    pub reason: &'a str,
    /// The user's subject; `None` for anonymous requests.
    pub subject: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: &'a str,
    route: Option<&'a str>,
    rule: Option<&'a str>,
    outcome: DecisionOutcome,
    reason: &'a str,
    subject: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    status: u16,
}

/// Why the decision log could not start.
#[derive(Debug, thiserror::Error)]
pub enum DecisionLogError {
    #[error("decision_log.sample_allows must be between 0.0 and 1.0, got {0}")]
    Sample(f64),
    #[error("cannot open decision log {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot start the decision log writer: {0}")]
    Thread(io::Error),
}

/// Handle to the decision log; share it behind an `Arc`. Dropping it flushes what is queued.
pub struct DecisionLog {
    sender: Option<Sender<String>>,
    writer: Option<JoinHandle<()>>,
    sample_allows: f64,
    max_wait: Duration,
    dropped: AtomicU64,
    /// Non-allow lines dropped because their request was abandoned while they waited.
    abandoned: AtomicU64,
    /// The writer thread's end was reported.
    writer_gone: AtomicBool,
    /// Non-allow lines dropped after waiting `max_wait` for a writer that took nothing.
    stuck: AtomicU64,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field("enabled", &self.sender.is_some())
            .field("sample_allows", &self.sample_allows)
            .finish()
    }
}

impl DecisionLog {
    /// Opens the destination (so a bad path fails at startup) and starts the writer thread.
    pub fn start(config: &DecisionLogConfig) -> Result<DecisionLog, DecisionLogError> {
        if !(0.0..=1.0).contains(&config.sample_allows) {
            return Err(DecisionLogError::Sample(config.sample_allows));
        }
        if !config.enabled {
            return Ok(DecisionLog::disabled());
        }
        let out: Box<dyn Write + Send> = match &config.path {
            Some(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| DecisionLogError::Open {
                        path: path.clone(),
                        source,
                    })?,
            ),
            None => Box::new(io::stdout()),
        };
        DecisionLog::with_writer(out, QUEUE_CAPACITY, config)
    }

    /// A log writing to `out` through a queue of `capacity` lines (`config.path` is not read).
    fn with_writer(
        out: Box<dyn Write + Send>,
        capacity: usize,
        config: &DecisionLogConfig,
    ) -> Result<DecisionLog, DecisionLogError> {
        let (sender, receiver) = channel(capacity);
        let writer = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_lines(receiver, out))
            .map_err(DecisionLogError::Thread)?;
        // Every series exists from the start, so `increase(...) > 0` alerts work.
        for outcome in [
            DecisionOutcome::Allow,
            DecisionOutcome::Login,
            DecisionOutcome::Deny,
            DecisionOutcome::Error,
        ] {
            metrics::counter!(DECISION_LOG_DROPPED_TOTAL, "outcome" => outcome.as_str())
                .increment(0);
        }
        Ok(DecisionLog {
            sender: Some(sender),
            writer: Some(writer),
            sample_allows: config.sample_allows,
            max_wait: config.max_wait,
            dropped: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            writer_gone: AtomicBool::new(false),
            stuck: AtomicU64::new(0),
        })
    }

    /// A log that writes nothing.
    pub fn disabled() -> DecisionLog {
        DecisionLog {
            sender: None,
            writer: None,
            sample_allows: 0.0,
            max_wait: Duration::ZERO,
            dropped: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            writer_gone: AtomicBool::new(false),
            stuck: AtomicU64::new(0),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Lines not written: allows while the writer was behind; other lines only when their request
    /// was abandoned while they waited, or once the writer stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues one JSON line; allows are kept with probability `sample_allows`.
    ///
    /// An allow never waits: with the queue full it is dropped and counted. Any other line
    /// waits for room, so the request it belongs to is answered late rather than unlogged.
    /// The wait is an `.await` on the queue's semaphore, so no worker thread blocks, and a waiting
    /// line stays in its own request's future: a flood of denies costs one line per request in
    /// flight, next to the connection and request state each already holds, while the queue
    /// never grows past its capacity. Waiters are served first come, first served, and take
    /// freed room before any allow can. A request abandoned while waiting (its client went away)
    /// gets one last try and is then counted as dropped, as is a line that found no room within
    /// `max_wait`. The writer thread does the blocking I/O.
    pub async fn record(&self, record: &DecisionRecord<'_>) {
        let Some(sender) = &self.sender else { return };
        if record.outcome == DecisionOutcome::Allow && !self.keep_allow() {
            return;
        }
        let line = Line {
            time: rfc3339(record.time),
            request_id: record.request_id,
            route: record.route,
            rule: record.rule,
            outcome: record.outcome,
            reason: record.reason,
            subject: record.subject,
            method: record.method,
            path: clean_path(record.path),
            status: record.status,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        match sender.try_send(text) {
            Ok(()) => {}
            Err(TrySendError::Full(text)) if record.outcome != DecisionOutcome::Allow => {
                // Rare: boxed, so the request's future stays small.
                Box::pin(self.wait_for_room(sender, text, record.outcome)).await;
            }
            Err(_) => self.count_drop(record.outcome),
        }
    }

    /// Queues `text` once there is room; see [`DecisionLog::record`].
    async fn wait_for_room(&self, sender: &Sender<String>, text: String, outcome: DecisionOutcome) {
        let mut waiting = Waiting {
            log: self,
            sender,
            line: Some(text),
            outcome,
        };
        match tokio::time::timeout(self.max_wait, sender.reserve()).await {
            Ok(Ok(permit)) => {
                if let Some(line) = waiting.line.take() {
                    permit.send(line);
                }
            }
            // Writer gone: `waiting` counts the line as dropped.
            Ok(Err(_)) => {}
            Err(_elapsed) => {
                waiting.line = None;
                let stuck = self.stuck.fetch_add(1, Ordering::Relaxed);
                if stuck.is_multiple_of(1000) {
                    tracing::error!(
                        dropped = stuck + 1,
                        "decision log writer took no line for {:?}; dropping {} lines",
                        self.max_wait,
                        outcome.as_str()
                    );
                }
                self.count(outcome);
            }
        }
    }

    fn count(&self, outcome: DecisionOutcome) -> u64 {
        metrics::counter!(DECISION_LOG_DROPPED_TOTAL, "outcome" => outcome.as_str()).increment(1);
        self.dropped.fetch_add(1, Ordering::Relaxed)
    }

    fn count_drop(&self, outcome: DecisionOutcome) {
        let dropped = self.count(outcome);
        if self.sender.as_ref().is_some_and(Sender::is_closed) {
            if !self.writer_gone.swap(true, Ordering::Relaxed) {
                tracing::error!("decision log writer stopped; decisions are not logged");
            }
        } else if outcome != DecisionOutcome::Allow {
            let abandoned = self.abandoned.fetch_add(1, Ordering::Relaxed);
            if abandoned.is_multiple_of(1000) {
                tracing::warn!(
                    abandoned = abandoned + 1,
                    "requests left while their decision log lines waited for the writer; lines dropped"
                );
            }
        } else if dropped.is_multiple_of(1000) {
            tracing::warn!(
                dropped = dropped + 1,
                "decision log writer is behind; dropping allow lines"
            );
        }
    }

    fn keep_allow(&self) -> bool {
        self.sample_allows >= 1.0
            || (self.sample_allows > 0.0 && rand::random::<f64>() < self.sample_allows)
    }
}

/// A line waiting for room; if dropped before it was queued (the request was abandoned), it gets
/// one last try and is then counted as dropped.
struct Waiting<'a> {
    log: &'a DecisionLog,
    sender: &'a Sender<String>,
    line: Option<String>,
    outcome: DecisionOutcome,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(line) = self.line.take()
            && self.sender.try_send(line).is_err()
        {
            self.log.count_drop(self.outcome);
        }
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_lines(mut receiver: Receiver<String>, mut out: Box<dyn Write + Send>) {
    let mut failed = false;
    while let Some(line) = receiver.blocking_recv() {
        let mut result = out.write_all(line.as_bytes());
        // Drain what is already queued before flushing: one flush per burst.
        while let Ok(line) = receiver.try_recv() {
            result = result.and_then(|()| out.write_all(line.as_bytes()));
        }
        result = result.and_then(|()| out.flush());
        match result {
            Err(err) if !failed => {
                failed = true;
                tracing::error!(error = %err, "cannot write the decision log");
            }
            Ok(()) => failed = false,
            Err(_) => {}
        }
    }
}

fn clean_path(path: &str) -> &str {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    match path.char_indices().nth(MAX_PATH_CHARS) {
        Some((cut, _)) => &path[..cut],
        None => path,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests;
