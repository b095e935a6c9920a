//! A run's log on its storage: the summary every storage keeps, and the event log of object
//! stores, which cannot append.
//!
//! The summary (`<base>/<run_id>/run.json`, a [`RunSummary`]) says what a run-history listing
//! needs without reading any event: job, executor, status, start, end, step counts, and a
//! heartbeat while the run goes, so that a "running" run whose process died shows as such. On
//! an object store the events go up as numbered segments (`events/000001.jsonl`, ...): one
//! object per flush, never a rewrite of what is there, so the cost stays linear. A flush
//! happens every [`FLUSH_EVERY`], or sooner once 1 MiB of events wait, and at the run's end:
//! the stored log is at most that late while the run goes.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Event, EventKind, now};
use crate::io::{IoError, IoManager};

/// How often a running run's stored log and heartbeat are brought up to date.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Events waiting past this size are flushed without waiting for the timer.
const FLUSH_BYTES: usize = 1 << 20;
/// The summary's name beside the run's outputs.
pub const SUMMARY_FILE: &str = "run.json";
/// The directory of an object store's event log segments.
pub const SEGMENTS_DIR: &str = "events";

/// What a run-history listing shows of one run, kept current on the run's storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// The job.
    pub job: String,
    /// The executor, as `RUN_START` named it.
    pub executor: String,
    /// `running`, `success`, `failure` or `canceled`.
    pub status: String,
    /// When the run started, seconds since the Unix epoch.
    pub started: f64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<f64>,
    /// When the process driving it last wrote this summary: a `running` run whose heartbeat
    /// is older than a few flushes has lost its driver.
    pub heartbeat: f64,
    /// Steps in the plan.
    pub steps: usize,
    /// Steps that succeeded.
    pub succeeded: usize,
    /// Steps that failed.
    pub failed: usize,
    /// Steps that were skipped.
    pub skipped: usize,
    /// Event log segments stored so far (object stores only).
    #[serde(default)]
    pub segments: u32,
}

impl RunSummary {
    /// Whether the run says it is running but its driver has not written for `stale`.
    pub fn is_abandoned(&self, stale: Duration) -> bool {
        self.status == "running" && now() - self.heartbeat > stale.as_secs_f64()
    }

    fn apply(&mut self, event: &Event) {
        match &event.kind {
            EventKind::RunStart {
                job,
                executor,
                steps,
                ..
            } => {
                self.job.clone_from(job);
                self.executor.clone_from(executor);
                self.steps = *steps;
                self.started = event.timestamp;
                self.status = "running".to_owned();
            }
            EventKind::StepSuccess { .. } => self.succeeded += 1,
            EventKind::StepFailure { .. } => self.failed += 1,
            EventKind::StepSkipped { .. } => self.skipped += 1,
            EventKind::RunSuccess { .. } => self.end(event, "success"),
            EventKind::RunFailure { .. } => self.end(event, "failure"),
            EventKind::RunCanceled { .. } => self.end(event, "canceled"),
            _ => {}
        }
    }

    fn end(&mut self, event: &Event, status: &str) {
        self.status = status.to_owned();
        self.ended = Some(event.timestamp);
    }
}

/// Reads a run's summary from its storage.
pub fn read_run_summary(io: &dyn IoManager, run_id: &str) -> Result<RunSummary, IoError> {
    let bytes = io.get_run_file(run_id, SUMMARY_FILE)?;
    serde_json::from_slice(&bytes).map_err(|e| IoError::Open {
        location: format!("{run_id}/{SUMMARY_FILE}"),
        reason: format!("not a run summary: {e}"),
    })
}

/// Reads an object store's event log: every segment, in order.
pub fn read_stored_events(io: &dyn IoManager, run_id: &str) -> Result<Vec<Event>, IoError> {
    let mut events = Vec::new();
    for name in io.list_run_files(run_id, SEGMENTS_DIR)? {
        let file = format!("{SEGMENTS_DIR}/{name}");
        let bytes = io.get_run_file(run_id, &file)?;
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            events.push(serde_json::from_slice(line).map_err(|e| IoError::Open {
                location: format!("{run_id}/{file}"),
                reason: format!("line {} is not an event: {e}", i + 1),
            })?);
        }
    }
    Ok(events)
}

struct Pending {
    /// Events not stored yet, as JSON lines (object stores only).
    lines: Vec<u8>,
    summary: RunSummary,
    stop: bool,
    /// A flush is due now (a milestone, or enough events): the flusher's wait ends on it even
    /// when it was asked before the flusher began to wait.
    due: bool,
    /// Where the summary was last stored.
    stored_at: Option<String>,
}

struct Shared {
    io: Arc<dyn IoManager>,
    run_id: String,
    segments: bool,
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// Keeps a run's summary (and, on an object store, its event log) on the run's storage, from
/// a thread of its own, so that a step never waits for the upload.
pub(crate) struct StoredLog {
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for StoredLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLog")
            .field("run_id", &self.shared.run_id)
            .field("segments", &self.shared.segments)
            .finish_non_exhaustive()
    }
}

impl StoredLog {
    /// Starts keeping run `run_id`'s summary on `io`, and its events too when `segments`.
    pub(crate) fn start(io: Arc<dyn IoManager>, run_id: &str, segments: bool) -> Self {
        let shared = Arc::new(Shared {
            io,
            run_id: run_id.to_owned(),
            segments,
            pending: Mutex::new(Pending {
                lines: Vec::new(),
                summary: RunSummary {
                    run_id: run_id.to_owned(),
                    job: String::new(),
                    executor: String::new(),
                    status: "starting".to_owned(),
                    started: now(),
                    ended: None,
                    heartbeat: now(),
                    steps: 0,
                    succeeded: 0,
                    failed: 0,
                    skipped: 0,
                    segments: 0,
                },
                stop: false,
                due: false,
                stored_at: None,
            }),
            wake: Condvar::new(),
        });
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("dagster-dask-log".to_owned())
                .spawn(move || shared.run())
                .ok()
        };
        Self {
            shared,
            flusher: Mutex::new(flusher),
        }
    }

    /// Records one event (in memory; the flusher stores it); `true` when the event goes into
    /// the stored event log.
    pub(crate) fn push(&self, event: &Event) -> bool {
        let mut p = self.shared.lock();
        if self.shared.segments && serde_json::to_writer(&mut p.lines, event).is_ok() {
            p.lines.push(b'\n');
        }
        p.summary.apply(event);
        // A run's start and end are stored at once, for whoever lists runs.
        let milestone = matches!(
            event.kind,
            EventKind::RunStart { .. }
                | EventKind::RunSuccess { .. }
                | EventKind::RunFailure { .. }
                | EventKind::RunCanceled { .. }
        );
        if milestone || p.lines.len() >= FLUSH_BYTES {
            p.due = true;
            self.shared.wake.notify_all();
        }
        self.shared.segments
    }

    /// Stores what is left and stops the flusher: the stored log is complete after this.
    /// Returns where the run's files are (`.../<run_id>`), once stored there.
    pub(crate) fn finish(&self) -> Option<String> {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        let flusher = self
            .flusher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match flusher {
            Some(thread) => {
                let _ = thread.join();
            }
            // (no thread could be started: store from here)
            None => self.shared.flush(),
        }
        self.shared.lock().stored_at.clone()
    }
}

impl Drop for StoredLog {
    fn drop(&mut self) {
        // (a log dropped without `finish`: its flusher must not outlive it)
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run(&self) {
        loop {
            let stop = {
                let p = self.lock();
                // (a condition, not a bare wait: a stop or a milestone asked for before this
                // thread waited is not lost, and the run's end does not wait for the timer)
                let (mut p, _) = self
                    .wake
                    .wait_timeout_while(p, FLUSH_EVERY, |p| !p.stop && !p.due)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                p.due = false;
                p.stop
            };
            self.flush();
            if stop {
                return;
            }
        }
    }

    /// Stores the waiting events as the next segment, then the summary with a fresh
    /// heartbeat. A store that fails is reported once per flush on stderr: losing the stored
    /// log must not fail the run (the console and the run's result still have every event).
    fn flush(&self) {
        let (lines, summary) = {
            let mut p = self.lock();
            let lines = std::mem::take(&mut p.lines);
            if !lines.is_empty() {
                p.summary.segments += 1;
            }
            p.summary.heartbeat = now();
            (lines, p.summary.clone())
        };
        if !lines.is_empty() {
            let name = format!("{SEGMENTS_DIR}/{:06}.jsonl", summary.segments);
            if let Err(e) = self.io.put_run_file(&self.run_id, &name, lines) {
                eprintln!("dagster-dask: the stored event log is behind: {e}");
            }
        }
        let Ok(bytes) = serde_json::to_vec_pretty(&summary) else {
            return;
        };
        match self.io.put_run_file(&self.run_id, SUMMARY_FILE, bytes) {
            Ok(location) => {
                let dir = location.strip_suffix(&format!("/{SUMMARY_FILE}"));
                self.lock().stored_at = dir.map(str::to_owned);
            }
            Err(e) => eprintln!("dagster-dask: the stored run summary is behind: {e}"),
        }
    }
}
