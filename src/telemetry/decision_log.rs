//! The decision log: one JSON line per decision, to a file or stdout.
//!
//! Denies, login redirects and errors are always written; allows are sampled
//! (`sample_allows`, 0.0–1.0). [`DecisionLog::record`] serializes on the caller's thread and
//! hands the line to a writer thread through a bounded channel: it never blocks the request
//! path, and when the writer falls behind, lines are dropped and counted rather than queued
//! without bound.
//!
//! ```yaml
//! decision_log:
//!   path: /var/log/portcullis/decisions.jsonl   # omit for stdout
//!   sample_allows: 0.1                           # keep 10% of allows; every deny is kept
//! ```
//!
//! A line: `{"time":"2026-11-22T13:57:00.123Z","request_id":"…","route":"panel",
//! "rule":"analysts at example.com","outcome":"allow","reason":"…","subject":"alice",
//! "method":"GET","path":"/panel/app","status":200}`. The query string is never written (it
//! can hold codes and tokens).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Lines waiting for the writer before new ones are dropped.
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
}

fn default_true() -> bool {
    true
}

fn default_sample() -> f64 {
    1.0
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            enabled: false,
            path: None,
            sample_allows: 1.0,
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
    sender: Option<SyncSender<String>>,
    writer: Option<JoinHandle<()>>,
    sample_allows: f64,
    dropped: AtomicU64,
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
        let (sender, receiver) = sync_channel(QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_lines(receiver, out))
            .map_err(DecisionLogError::Thread)?;
        Ok(DecisionLog {
            sender: Some(sender),
            writer: Some(writer),
            sample_allows: config.sample_allows,
            dropped: AtomicU64::new(0),
        })
    }

    /// A log that writes nothing.
    pub fn disabled() -> DecisionLog {
        DecisionLog {
            sender: None,
            writer: None,
            sample_allows: 0.0,
            dropped: AtomicU64::new(0),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues one JSON line; allows are kept with probability `sample_allows`. Never blocks.
    pub fn record(&self, record: &DecisionRecord<'_>) {
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
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
                if dropped.is_multiple_of(1000) {
                    tracing::warn!(
                        dropped = dropped + 1,
                        "decision log writer is behind; dropping lines"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
                if dropped == 0 {
                    tracing::error!("decision log writer stopped; decisions are not logged");
                }
            }
        }
    }

    fn keep_allow(&self) -> bool {
        self.sample_allows >= 1.0
            || (self.sample_allows > 0.0 && rand::random::<f64>() < self.sample_allows)
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

fn write_lines(receiver: Receiver<String>, mut out: Box<dyn Write + Send>) {
    let mut failed = false;
    while let Ok(line) = receiver.recv() {
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
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(outcome: DecisionOutcome, request_id: &str) -> DecisionRecord<'_> {
        DecisionRecord {
            time: UNIX_EPOCH + Duration::from_millis(1_795_355_820_123),
            request_id,
            route: Some("panel"),
            rule: Some("analysts"),
            outcome,
            reason: "matched",
            subject: Some("alice"),
            method: "GET",
            path: "/panel/app?code=secret-code",
            status: match outcome {
                DecisionOutcome::Allow => 200,
                DecisionOutcome::Login => 302,
                DecisionOutcome::Deny => 403,
                DecisionOutcome::Error => 502,
            },
        }
    }

    fn lines_of(
        config: &DecisionLogConfig,
        records: &[DecisionRecord<'_>],
    ) -> Vec<serde_json::Value> {
        let log = DecisionLog::start(config).unwrap();
        for r in records {
            log.record(r);
        }
        drop(log);
        let text = std::fs::read_to_string(config.path.as_ref().unwrap()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }

    fn config(dir: &tempfile::TempDir, sample_allows: f64) -> DecisionLogConfig {
        DecisionLogConfig {
            enabled: true,
            path: Some(dir.path().join("decisions.jsonl")),
            sample_allows,
        }
    }

    #[test]
    fn lines_parse_as_json_with_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let lines = lines_of(&config(&dir, 1.0), &[record(DecisionOutcome::Deny, "r1")]);
        assert_eq!(
            lines,
            vec![serde_json::json!({
                "time": "2026-11-22T13:57:00.123Z", "request_id": "r1", "route": "panel",
                "rule": "analysts", "outcome": "deny", "reason": "matched", "subject": "alice",
                "method": "GET", "path": "/panel/app", "status": 403
            })]
        );
    }

    #[test]
    fn denies_are_always_kept_and_allows_sampled() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..2000).map(|i| format!("r{i}")).collect();
        let mut records = Vec::new();
        for id in &ids {
            records.push(record(DecisionOutcome::Allow, id));
            records.push(record(DecisionOutcome::Deny, id));
        }
        records.push(record(DecisionOutcome::Login, "login"));
        records.push(record(DecisionOutcome::Error, "error"));
        let count = |lines: &[serde_json::Value], outcome: &str| {
            lines.iter().filter(|l| l["outcome"] == outcome).count()
        };

        let none = lines_of(&config(&dir, 0.0), &records);
        assert_eq!(count(&none, "allow"), 0);
        assert_eq!(count(&none, "deny"), 2000);
        assert_eq!(count(&none, "login"), 1);
        assert_eq!(count(&none, "error"), 1);

        std::fs::remove_file(dir.path().join("decisions.jsonl")).unwrap();
        let half = lines_of(&config(&dir, 0.5), &records);
        let allows = count(&half, "allow");
        assert!(
            (700..=1300).contains(&allows),
            "{allows} of 2000 allows kept"
        );
        assert_eq!(count(&half, "deny"), 2000);

        std::fs::remove_file(dir.path().join("decisions.jsonl")).unwrap();
        let all = lines_of(&config(&dir, 1.0), &records);
        assert_eq!(count(&all, "allow"), 2000);
    }

    #[test]
    fn bad_sample_rate_and_disabled_log() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            DecisionLog::start(&config(&dir, 1.5)),
            Err(DecisionLogError::Sample(_))
        ));
        let off = DecisionLog::start(&DecisionLogConfig {
            enabled: false,
            ..config(&dir, 1.0)
        })
        .unwrap();
        off.record(&record(DecisionOutcome::Deny, "r"));
        assert!(!off.is_enabled());
        assert!(!dir.path().join("decisions.jsonl").exists());
    }

    #[test]
    fn config_section_defaults() {
        let parsed: DecisionLogConfig = serde_saphyr::from_str("path: /tmp/d.jsonl\n").unwrap();
        assert!(parsed.enabled);
        assert_eq!(parsed.sample_allows, 1.0);
        assert!(!DecisionLogConfig::default().enabled);
        assert!(serde_saphyr::from_str::<DecisionLogConfig>("bogus: 1\n").is_err());
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59.000Z"
        );
    }
}
