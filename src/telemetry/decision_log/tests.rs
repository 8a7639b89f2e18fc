use super::*;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

/// Polls `future` once, as a request task would before it yields.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs a `record` that must not wait (allows, a queue with room, a disabled log).
fn now<F: Future>(future: F) -> F::Output {
    match poll_once(pin!(future)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("this record waited"),
    }
}

/// A writer stuck in `write` until [`StalledWriter::resume`]: a full disk or an unread pipe.
#[derive(Clone, Default)]
struct StalledWriter(Arc<(Mutex<Stall>, Condvar)>);

#[derive(Default)]
struct Stall {
    resumed: bool,
    entered: bool,
    written: Vec<u8>,
}

impl StalledWriter {
    /// Waits until the writer thread is inside `write`, holding the line it took.
    fn wait_until_stuck(&self) {
        let (stall, changed) = &*self.0;
        let guard = stall.lock().unwrap();
        let (_guard, timeout) = changed
            .wait_timeout_while(guard, Duration::from_secs(5), |s| !s.entered)
            .unwrap();
        assert!(!timeout.timed_out(), "the writer never took a line");
    }

    fn resume(&self) {
        let (stall, changed) = &*self.0;
        stall.lock().unwrap().resumed = true;
        changed.notify_all();
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.0.lock().unwrap().written.clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }
}

impl Write for StalledWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (stall, changed) = &*self.0;
        let mut stall = stall.lock().unwrap();
        stall.entered = true;
        changed.notify_all();
        let mut stall = changed.wait_while(stall, |s| !s.resumed).unwrap();
        stall.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A log with a two-line queue in front of a writer stuck on its first line `stuck`; denies wait
/// `max_wait` for room.
fn stalled_log(writer: &StalledWriter, max_wait: Duration) -> Arc<DecisionLog> {
    let config = DecisionLogConfig {
        enabled: true,
        max_wait,
        ..DecisionLogConfig::default()
    };
    let log = Arc::new(DecisionLog::with_writer(Box::new(writer.clone()), 2, &config).unwrap());
    now(log.record(&record(DecisionOutcome::Deny, "stuck")));
    writer.wait_until_stuck();
    log
}

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

fn lines_of(config: &DecisionLogConfig, records: &[DecisionRecord<'_>]) -> Vec<serde_json::Value> {
    let log = DecisionLog::start(config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for r in records {
        runtime.block_on(log.record(r));
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
        max_wait: Duration::from_secs(5),
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
    now(off.record(&record(DecisionOutcome::Deny, "r")));
    assert!(!off.is_enabled());
    assert!(!dir.path().join("decisions.jsonl").exists());
}

#[test]
fn config_section_defaults() {
    let parsed: DecisionLogConfig = serde_saphyr::from_str("path: /tmp/d.jsonl\n").unwrap();
    assert!(parsed.enabled);
    assert_eq!(parsed.max_wait, Duration::from_secs(5));
    let parsed: DecisionLogConfig = serde_saphyr::from_str("max_wait: 250ms\n").unwrap();
    assert_eq!(parsed.max_wait, Duration::from_millis(250));
    assert!(serde_saphyr::from_str::<DecisionLogConfig>("max_wait: soon\n").is_err());
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

#[tokio::test]
async fn stalled_writer_loses_no_deny_and_drops_and_counts_allows() {
    let writer = StalledWriter::default();
    let log = stalled_log(&writer, Duration::from_secs(5));

    // Allows past the two free places are dropped at once, and counted.
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        for i in 0..10 {
            now(log.record(&record(DecisionOutcome::Allow, &format!("allow-{i}"))));
        }
    });
    assert_eq!(log.dropped(), 8);
    let text = metrics.render();
    assert!(
        text.contains(r#"portcullis_decision_log_dropped_total{outcome="allow"} 8"#),
        "{text}"
    );

    // A burst of denies (and logins and errors) waits for room instead.
    let burst: Vec<(DecisionOutcome, String)> = (0..30)
        .map(|i| {
            let outcome = match i % 3 {
                0 => DecisionOutcome::Deny,
                1 => DecisionOutcome::Login,
                _ => DecisionOutcome::Error,
            };
            (outcome, format!("burst-{i}"))
        })
        .collect();
    let waiting: Vec<_> = burst
        .iter()
        .cloned()
        .map(|(outcome, id)| {
            let log = log.clone();
            tokio::spawn(async move { log.record(&record(outcome, &id)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        waiting.iter().all(|task| !task.is_finished()),
        "the burst waits while the writer is stuck"
    );
    // The queue is still full: an allow arriving now is dropped, it does not jump the burst.
    now(log.record(&record(DecisionOutcome::Allow, "late-allow")));
    assert_eq!(log.dropped(), 9);

    writer.resume();
    for task in waiting {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the burst is queued once the writer resumes")
            .unwrap();
    }
    assert_eq!(log.dropped(), 9, "no deny, login or error was dropped");
    drop(Arc::into_inner(log).expect("the burst's tasks are done"));

    let lines = writer.lines();
    let written: Vec<&str> = lines
        .iter()
        .map(|l| l["request_id"].as_str().unwrap())
        .collect();
    let mut expected = vec!["stuck", "allow-0", "allow-1"];
    expected.extend(burst.iter().map(|(_, id)| id.as_str()));
    let mut sorted = written.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "written in this order: {written:?}");
    for (outcome, id) in &burst {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id.as_str())
            .unwrap();
        assert_eq!(line["outcome"], outcome.as_str());
    }
}

#[tokio::test]
async fn deny_abandoned_while_waiting_is_counted_as_dropped() {
    let writer = StalledWriter::default();
    let log = stalled_log(&writer, Duration::from_secs(5));
    now(log.record(&record(DecisionOutcome::Deny, "queued-1")));
    now(log.record(&record(DecisionOutcome::Deny, "queued-2")));

    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let deny = record(DecisionOutcome::Deny, "abandoned");
        let mut waiting = pin!(log.record(&deny));
        assert!(poll_once(waiting.as_mut()).is_pending(), "the deny waits");
        // The client went away: hyper drops the request's future.
    });
    assert_eq!(log.dropped(), 1);
    let text = metrics.render();
    assert!(
        text.contains(r#"portcullis_decision_log_dropped_total{outcome="deny"} 1"#),
        "{text}"
    );

    assert_eq!(
        written_after_resuming(&writer, log),
        ["stuck", "queued-1", "queued-2"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_writer_stuck_for_good_delays_a_deny_by_the_bound_then_drops_it() {
    let writer = StalledWriter::default();
    let log = stalled_log(&writer, Duration::from_secs(2));
    now(log.record(&record(DecisionOutcome::Deny, "queued-1")));
    now(log.record(&record(DecisionOutcome::Deny, "queued-2")));

    let started = tokio::time::Instant::now();
    log.record(&record(DecisionOutcome::Deny, "gave-up")).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "answered after the configured bound, not never"
    );
    assert_eq!(log.dropped(), 1);

    assert_eq!(
        written_after_resuming(&writer, log),
        ["stuck", "queued-1", "queued-2"]
    );
}

/// The request ids the writer wrote, once resumed and the log closed.
fn written_after_resuming(writer: &StalledWriter, log: Arc<DecisionLog>) -> Vec<String> {
    writer.resume();
    drop(Arc::into_inner(log).unwrap());
    writer
        .lines()
        .iter()
        .map(|l| l["request_id"].as_str().unwrap().to_owned())
        .collect()
}
