//! Run and step events, and where they go.
//!
//! Every executor and every step process reports what happens as [`Event`]s: the same serde
//! type whether the event is printed on the console, written to the run's event log (JSON
//! lines, `<base>/<run_id>/events.jsonl`) or sent from a step process to its driver (in the
//! step protocol, on a channel of its own).
//!
//! Modules: the types here; `console` (how a person reads them), `sink` (where they go:
//! [`EventSink`], [`RunLog`]), `log` (reading an event log back), `stored` (the run's summary
//! on its storage, and the event log of object stores, as segments).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

mod capture;
mod console;
mod log;
mod progress;
mod sink;
mod stored;

pub use self::capture::set_filter;
pub(crate) use self::capture::{bridge_log_records, captured, filter_directives};
pub use self::log::{EventLogError, read_event_log};
pub use self::sink::{EventSink, JsonLinesStdout, OUTPUT_LINES_IN_MEMORY, RunLog};
pub use self::stored::{
    FLUSH_EVERY, RunSummary, SEGMENTS_DIR, SUMMARY_FILE, read_run_summary, read_stored_events,
};
pub use crate::error::{ErrorInfo, ErrorKind};

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// The run this event belongs to.
    pub run_id: String,
    /// The step, for step events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_key: Option<String>,
    /// The process that emitted the event.
    pub pid: u32,
    /// The host that emitted the event.
    pub host: String,
    /// The Dask worker that ran the step, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, in Dagster's event vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum EventKind {
    /// The run began.
    RunStart {
        /// The job's name.
        job: String,
        /// The executor running it.
        executor: String,
        /// How many steps the plan has.
        steps: usize,
        /// The run it re-executes or reads from (`--reexecute`, `--from`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_run_id: Option<String>,
    },
    /// A step's first attempt began.
    StepStart,
    /// A step began again after a failure.
    StepRestarted {
        /// The attempt now starting, from 2.
        attempt: u32,
    },
    /// A step loaded one input from the IO manager.
    LoadedInput {
        /// The input's name.
        input: String,
        /// The upstream step the value came from.
        upstream: String,
        /// Where the value was read.
        location: String,
    },
    /// A step produced its output.
    StepOutput {
        /// The output's name.
        output: String,
        /// The output's Rust type.
        type_name: String,
        /// The encoded size.
        bytes: usize,
        /// The run whose stored output this is, when the step was not run but cached (its op
        /// has a code version, and its config and inputs were seen before).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cached_from: Option<String>,
        /// For a dynamic output: how many mapping keys it has (each item is stored on its own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mapping_keys: Option<usize>,
    },
    /// The IO manager stored a step's output.
    HandledOutput {
        /// The output's name.
        output: String,
        /// Where it was written.
        location: String,
    },
    /// A message the op logged through its context.
    Log {
        /// Severity.
        level: LogLevel,
        /// The message.
        message: String,
        /// Where it came from: the `tracing` or `log` target (a module path), for a record
        /// captured from those.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// The record's fields (and the names of the spans it was in, as `spans`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        fields: BTreeMap<String, String>,
    },
    /// A line the step process wrote to stdout or stderr outside the event protocol.
    StepOutputLine {
        /// `stdout` or `stderr`.
        stream: String,
        /// The line, without its newline.
        line: String,
    },
    /// The step finished.
    StepSuccess {
        /// Time spent in the step, milliseconds.
        duration_ms: f64,
    },
    /// The step failed and will be tried again.
    StepUpForRetry {
        /// The attempt that failed, from 1.
        attempt: u32,
        /// How long the executor waits before the next attempt, milliseconds.
        delay_ms: f64,
        /// Why the attempt failed.
        error: ErrorInfo,
    },
    /// The step failed for good.
    StepFailure {
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Why.
        error: ErrorInfo,
    },
    /// The step did not run because an upstream step failed or was skipped.
    StepSkipped {
        /// The upstream steps that did not succeed.
        upstream: Vec<String>,
        /// The upstream outputs it reads that were not produced (`step.output`): optional
        /// outputs left out, or outputs of steps skipped so.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        not_produced: Vec<String>,
    },
    /// Every step succeeded.
    RunSuccess {
        /// Wall time of the run, milliseconds.
        duration_ms: f64,
    },
    /// At least one step failed.
    RunFailure {
        /// Steps that failed.
        failed: Vec<String>,
        /// Steps that were skipped because of them.
        skipped: Vec<String>,
        /// Wall time of the run, milliseconds.
        duration_ms: f64,
    },
    /// The run was canceled before it finished.
    RunCanceled {
        /// Why.
        message: String,
    },
    /// Something the executor itself wants to report.
    EngineEvent {
        /// The message.
        message: String,
    },
}

impl EventKind {
    /// The Dagster name of the event type, e.g. `STEP_SUCCESS`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::RunStart { .. } => "RUN_START",
            Self::StepStart => "STEP_START",
            Self::StepRestarted { .. } => "STEP_RESTARTED",
            Self::LoadedInput { .. } => "LOADED_INPUT",
            Self::StepOutput { .. } => "STEP_OUTPUT",
            Self::HandledOutput { .. } => "HANDLED_OUTPUT",
            Self::Log { .. } => "LOG",
            Self::StepOutputLine { .. } => "STEP_OUTPUT_LINE",
            Self::StepSuccess { .. } => "STEP_SUCCESS",
            Self::StepUpForRetry { .. } => "STEP_UP_FOR_RETRY",
            Self::StepFailure { .. } => "STEP_FAILURE",
            Self::StepSkipped { .. } => "STEP_SKIPPED",
            Self::RunSuccess { .. } => "RUN_SUCCESS",
            Self::RunFailure { .. } => "RUN_FAILURE",
            Self::RunCanceled { .. } => "RUN_CANCELED",
            Self::EngineEvent { .. } => "ENGINE_EVENT",
        }
    }
}

/// Severity of an op's log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Detail for debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something odd that did not stop the op.
    Warning,
    /// Something went wrong.
    Error,
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        })
    }
}

/// The pid and host stamped on events from this process.
fn origin() -> &'static (u32, String) {
    static ORIGIN: OnceLock<(u32, String)> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        (
            std::process::id(),
            gethostname::gethostname().to_string_lossy().into_owned(),
        )
    })
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Event {
    /// An event of this process, stamped now.
    pub fn new(run_id: &str, step_key: Option<&str>, kind: EventKind) -> Self {
        let (pid, host) = origin();
        Self {
            timestamp: now(),
            run_id: run_id.to_owned(),
            step_key: step_key.map(str::to_owned),
            pid: *pid,
            host: host.clone(),
            worker: None,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_json_with_dagster_names() {
        let event = Event::new(
            "r1",
            Some("hello"),
            EventKind::StepFailure {
                attempt: 2,
                error: ErrorInfo {
                    kind: ErrorKind::Op,
                    message: "boom".into(),
                    causes: vec!["disk full".into()],
                },
            },
        );
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""event_type":"STEP_FAILURE""#), "{json}");
        assert!(json.contains(r#""step_key":"hello""#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.pid, std::process::id());
        assert!(
            event.display_line().contains("caused by: disk full"),
            "{}",
            event.display_line()
        );
    }

    #[test]
    fn run_log_writes_json_lines_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1/events.jsonl");
        let log = RunLog::to_file(&path, false).unwrap();
        log.emit(Event::new(
            "r1",
            None,
            EventKind::RunStart {
                job: "j".into(),
                executor: "in_process".into(),
                steps: 1,
                parent_run_id: None,
            },
        ));
        log.emit(Event::new(
            "r1",
            Some("a"),
            EventKind::Log {
                level: LogLevel::Info,
                message: "hi".into(),
                target: Some("my_crate::io".into()),
                fields: [("rows".to_owned(), "3".to_owned())].into(),
            },
        ));
        log.flush();
        let read = read_event_log(&path).unwrap();
        assert_eq!(read, log.events());
        assert_eq!(read.len(), 2);
    }

    #[test]
    fn a_bad_event_log_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"nope\": 1}\n").unwrap();
        let err = read_event_log(&path).unwrap_err().to_string();
        assert!(err.contains("line 1: not an event"), "{err}");
    }

    #[test]
    fn error_chain_is_captured() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("inner"));
        let info = ErrorInfo::from_error(ErrorKind::Op, &err);
        assert_eq!(info.message, "outer");
        assert_eq!(info.causes, vec!["inner".to_owned()]);
        assert!(info.is_retryable());
        assert!(!ErrorInfo::new(ErrorKind::Input, "x").is_retryable());
    }
}
