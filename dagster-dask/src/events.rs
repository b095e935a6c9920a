//! Run and step events, and where they go.
//!
//! Every executor and every step process reports what happens as [`Event`]s: the same serde
//! type whether the event is printed on the console, written to the run's event log (JSON
//! lines, `<base>/<run_id>/events.jsonl`) or sent from a step process to its driver (JSON lines
//! on the step process's stdout).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

fn now() -> f64 {
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

    /// One line of human-readable text, as printed on the console.
    pub fn display_line(&self) -> String {
        let short_run = self.run_id.get(..8).unwrap_or(&self.run_id);
        let mut line = format!("{} {short_run}", clock(self.timestamp));
        if let Some(step) = &self.step_key {
            line.push_str(&format!(" {step}"));
        }
        if let Some(worker) = &self.worker {
            line.push_str(&format!(" [{worker}]"));
        }
        line.push_str(&format!(" {}", self.kind.type_name()));
        let detail = match &self.kind {
            EventKind::RunStart {
                job,
                executor,
                steps,
            } => format!("job `{job}`, {steps} steps, executor {executor}"),
            EventKind::StepStart => String::new(),
            EventKind::StepRestarted { attempt } => format!("attempt {attempt}"),
            EventKind::LoadedInput {
                input, upstream, ..
            } => format!("{input} <- {upstream}"),
            EventKind::StepOutput {
                output,
                type_name,
                bytes,
            } => format!(
                "{output}: {} ({bytes} bytes)",
                crate::types::short_type_name(type_name)
            ),
            EventKind::HandledOutput { location, .. } => location.clone(),
            EventKind::Log { level, message } => format!("{level} {message}"),
            EventKind::StepOutputLine { stream, line } => format!("{stream}: {line}"),
            EventKind::StepSuccess { duration_ms } => format!("in {duration_ms:.1} ms"),
            EventKind::StepUpForRetry {
                attempt,
                delay_ms,
                error,
            } => format!("attempt {attempt} failed, retrying in {delay_ms:.0} ms: {error}"),
            EventKind::StepFailure { attempt, error } => {
                format!("attempt {attempt}: {error}")
            }
            EventKind::StepSkipped { upstream } => {
                format!("upstream did not succeed: {}", upstream.join(", "))
            }
            EventKind::RunSuccess { duration_ms } => format!("in {duration_ms:.1} ms"),
            EventKind::RunFailure {
                failed, skipped, ..
            } => format!(
                "failed: [{}], skipped: [{}]",
                failed.join(", "),
                skipped.join(", ")
            ),
            EventKind::RunCanceled { message } | EventKind::EngineEvent { message } => {
                message.clone()
            }
        };
        if !detail.is_empty() {
            line.push(' ');
            line.push_str(&detail);
        }
        line
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix timestamp.
fn clock(ts: f64) -> String {
    let ms = (ts * 1000.0) as u64;
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

/// Where events go.
pub trait EventSink: Send + Sync {
    /// Records one event. Sinks do not fail: a sink that cannot write reports it once on
    /// stderr and keeps the run going, since losing a log line must not fail a pipeline.
    fn emit(&self, event: Event);
}

/// Writes each event as one JSON line on stdout: the step process's half of the protocol.
#[derive(Debug, Default)]
pub struct JsonLinesStdout;

impl EventSink for JsonLinesStdout {
    fn emit(&self, event: Event) {
        let mut out = std::io::stdout().lock();
        // A closed stdout means the driver is gone; there is no one left to tell.
        if serde_json::to_writer(&mut out, &event).is_ok() {
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }
}

/// The events of one run: kept in memory, appended to `events.jsonl` and printed, as asked.
#[derive(Debug)]
pub struct RunLog {
    inner: Mutex<RunLogInner>,
    path: Option<PathBuf>,
    console: bool,
    /// The number of steps, when the console shows progress.
    steps: Option<usize>,
}

#[derive(Debug)]
struct RunLogInner {
    events: Vec<Event>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    write_failed: bool,
    /// Steps that ended (succeeded, failed for good, or skipped).
    ended: usize,
}

impl RunLog {
    /// A log kept in memory only.
    pub fn in_memory(console: bool) -> Self {
        Self {
            inner: Mutex::new(RunLogInner {
                events: Vec::new(),
                file: None,
                write_failed: false,
                ended: 0,
            }),
            path: None,
            console,
            steps: None,
        }
    }

    /// Shows progress on the console: each line that ends a step says how many of `steps`
    /// have ended, so a long run shows how far it is.
    pub fn with_progress(mut self, steps: usize) -> Self {
        self.steps = Some(steps);
        self
    }

    /// A log also appended, as JSON lines, to `path` (its directory is created).
    pub fn to_file(path: &Path, console: bool) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let log = Self::in_memory(console);
        log.lock().file = Some(std::io::BufWriter::new(file));
        Ok(Self {
            path: Some(path.to_owned()),
            ..log
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunLogInner> {
        // A panic while holding the lock leaves a consistent Vec; keep logging.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The JSON lines file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// Flushes the file.
    pub fn flush(&self) {
        let mut inner = self.lock();
        if let Some(file) = inner.file.as_mut() {
            let _ = file.flush();
        }
    }
}

impl EventSink for RunLog {
    fn emit(&self, event: Event) {
        let mut inner = self.lock();
        let step_ended = matches!(
            event.kind,
            EventKind::StepSuccess { .. }
                | EventKind::StepFailure { .. }
                | EventKind::StepSkipped { .. }
        );
        if step_ended {
            inner.ended += 1;
        }
        if self.console {
            // A closed stderr (`| head`) must not stop the run: errors are dropped.
            let mut err = std::io::stderr().lock();
            let _ = match self.steps {
                Some(total) if step_ended => {
                    writeln!(err, "{} [{}/{total}]", event.display_line(), inner.ended)
                }
                _ => writeln!(err, "{}", event.display_line()),
            };
        }

        if let Some(file) = inner.file.as_mut() {
            let written = serde_json::to_writer(&mut *file, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| file.write_all(b"\n"))
                // Every line is flushed: the log is read while runs go (`tail -f`, a UI),
                // and a line costs one write next to the step's own storage work.
                .and_then(|()| file.flush());
            if let Err(e) = written {
                if !inner.write_failed {
                    inner.write_failed = true;
                    eprintln!(
                        "dagster-dask: cannot write the event log {}: {e}; events stay in memory",
                        self.path.as_deref().unwrap_or(Path::new("?")).display()
                    );
                }
            }
        }
        inner.events.push(event);
    }
}

/// Reads an event log written by [`RunLog`].
pub fn read_event_log(path: &Path) -> Result<Vec<Event>, EventLogError> {
    let text = std::fs::read_to_string(path).map_err(|source| EventLogError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|source| EventLogError::Parse {
                path: path.to_owned(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Why an event log could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// The file could not be read.
    #[error("cannot read event log {}: {source}", path.display())]
    Io {
        /// The log's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not an event.
    #[error("event log {}, line {line}: not an event: {source}", path.display())]
    Parse {
        /// The log's path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde reported.
        source: serde_json::Error,
    },
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
            },
        ));
        log.emit(Event::new(
            "r1",
            Some("a"),
            EventKind::Log {
                level: LogLevel::Info,
                message: "hi".into(),
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
