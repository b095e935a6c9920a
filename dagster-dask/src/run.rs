//! What a run is: its id ([`RunId`]), how it and its steps end ([`RunStatus`],
//! [`StepStatus`]), what it did ([`RunResult`]) and why it could not start ([`RunError`]).
//! Runs are launched with [`exec::Run`](crate::exec::Run).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::{self, CodecError};
use crate::events::Event;
use crate::io::{IoError, IoManager, OutputKey};
use crate::op::RESULT;
use crate::op::Value;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every step succeeded.
    Success,
    /// A step failed, or the executor could not go on.
    Failure,
    /// The run was stopped before it finished.
    Canceled,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Its output is stored.
    Succeeded,
    /// Its last attempt failed.
    Failed,
    /// An upstream step did not succeed, so it never ran.
    Skipped,
    /// It did not run (the run stopped first).
    NotRun,
}

/// Why a run could not be launched, or a result not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The storage could not be opened or read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A stored output does not decode as the type asked for.
    #[error("output of step `{step}` at {location}: {source}")]
    Codec {
        /// The step.
        step: String,
        /// Where the output is.
        location: String,
        /// What the codec reported (boxed: it names two shapes at most, and errors stay
        /// small).
        source: Box<CodecError>,
    },
    /// The run's event log could not be created.
    #[error("cannot create the event log {}: {source}", path.display())]
    EventLog {
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The job has no step of that name.
    #[error("job `{job}` has no step `{step}` (steps: {known})")]
    UnknownStep {
        /// The job.
        job: String,
        /// The step asked for.
        step: String,
        /// The job's steps.
        known: String,
    },
    /// The parent run of a re-execution cannot be read.
    #[error("cannot re-execute run `{run_id}`: {reason}")]
    Parent {
        /// The parent run.
        run_id: String,
        /// Why.
        reason: String,
    },
    /// The op selection cannot be used.
    #[error(transparent)]
    Selection(#[from] crate::selection::SelectionError),
    /// The step has several outputs: the name must say which (`step.output`).
    #[error("step `{step}` has several outputs: name one of {outputs}")]
    NotOneOutput {
        /// The step asked for.
        step: String,
        /// Its outputs, as `step.output`.
        outputs: String,
    },
    /// A run with this id already exists in the storage.
    #[error(
        "run `{run_id}` already exists (its event log is {}): pass a new `--run-id`, or none",
        path.display()
    )]
    RunExists {
        /// The run id.
        run_id: String,
        /// Its event log.
        path: PathBuf,
    },
    /// A run id with characters that cannot be part of a storage path.
    #[error("run id `{0}` is invalid: use only letters, digits, `_` and `-`")]
    InvalidRunId(String),
    /// The Dask executor could not start or lost its cluster.
    #[error("Dask executor: {0}")]
    Dask(String),
    /// SIGINT/SIGTERM handling could not be set up.
    #[error("cannot handle interrupts: {0}")]
    Signals(String),
}

/// A run's id: letters, digits, `_` and `-`, so that it can be part of a storage path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub(crate) String);

impl RunId {
    /// A new run id: 128 random bits, in the UUID text layout Dagster uses.
    pub fn random() -> Self {
        let h = format!("{:032x}", fastrand::u128(..));
        Self(format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ))
    }

    /// Checks a run id given by a person or another process.
    pub fn parse(id: &str) -> Result<Self, RunError> {
        let ok = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(RunError::InvalidRunId(id.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new run id, as text (see [`RunId::random`]).
pub fn new_run_id() -> String {
    RunId::random().0
}

/// What a run did.
#[derive(Debug)]
pub struct RunResult {
    pub(crate) run_id: String,
    pub(crate) job: String,
    pub(crate) status: RunStatus,
    pub(crate) steps: BTreeMap<String, StepStatus>,
    /// Each step's outputs, by name.
    pub(crate) outputs: BTreeMap<String, Vec<String>>,
    pub(crate) events: Vec<Event>,
    pub(crate) output_lines_in_file_only: usize,
    pub(crate) event_log: Option<PathBuf>,
    pub(crate) stored_log: Option<String>,
    /// Where the HTML report went, or why it could not be written; `None` in memory.
    pub(crate) report: Option<Result<String, String>>,
    pub(crate) io: Arc<dyn IoManager>,
    pub(crate) engine_error: Option<String>,
}

impl RunResult {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// How the run ended.
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// Whether every step succeeded.
    pub fn success(&self) -> bool {
        self.status == RunStatus::Success
    }

    /// Why the executor could not go on (a lost cluster, a bridge that died), when that
    /// ended the run.
    pub fn engine_error(&self) -> Option<&str> {
        self.engine_error.as_deref()
    }

    /// How step `key` ended.
    pub fn step_status(&self, key: &str) -> Option<StepStatus> {
        self.steps.get(key).copied()
    }

    /// Every event of the run, in order; with an event log file, output lines
    /// (`STEP_OUTPUT_LINE`) past the first [`OUTPUT_LINES_IN_MEMORY`] are in the file only
    /// (see [`output_lines_in_file_only`](Self::output_lines_in_file_only)).
    ///
    /// [`OUTPUT_LINES_IN_MEMORY`]: crate::events::OUTPUT_LINES_IN_MEMORY
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// How many output lines are in the event log file and not in [`events`](Self::events).
    pub fn output_lines_in_file_only(&self) -> usize {
        self.output_lines_in_file_only
    }

    /// The events of step `key`.
    pub fn step_events<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events
            .iter()
            .filter(move |e| e.step_key.as_deref() == Some(key))
    }

    /// The JSON lines event log, when the storage is a local directory.
    pub fn event_log(&self) -> Option<&Path> {
        self.event_log.as_deref()
    }

    /// Where the run's files are on an object store (`s3://bucket/prefix/<run_id>`): its
    /// summary (`run.json`) and event log segments (`events/`), read back with
    /// [`read_run_summary`](crate::events::read_run_summary) and
    /// [`read_stored_events`](crate::events::read_stored_events).
    pub fn stored_log(&self) -> Option<&str> {
        self.stored_log.as_deref()
    }

    /// Where the run's HTML report is (`report.html` beside its event log), or why it could
    /// not be written; `None` for a run whose outputs were kept in memory.
    pub fn report(&self) -> Option<Result<&str, &str>> {
        self.report
            .as_ref()
            .map(|r| r.as_ref().map(String::as_str).map_err(String::as_str))
    }

    /// The IO manager that holds the run's outputs.
    pub fn io_manager(&self) -> &Arc<dyn IoManager> {
        &self.io
    }

    /// Loads an output as a `T`: `name` is a step's key (its output `result`, or its only
    /// output), or Dagster's `step.output`.
    pub fn output<T: Value>(&self, name: &str) -> Result<T, RunError> {
        let key = self.key(name)?;
        let bytes = self.io.load(key)?;
        codec::decode(&bytes).map_err(|source| RunError::Codec {
            step: name.to_owned(),
            location: self.io.location(key),
            source: Box::new(source),
        })
    }

    /// The size in bytes of an encoded output (named as for [`output`](Self::output)),
    /// without loading it.
    pub fn output_size(&self, name: &str) -> Result<u64, RunError> {
        Ok(self.io.size(self.key(name)?)?)
    }

    /// An encoded output, named as for [`output`](Self::output).
    pub fn output_bytes(&self, name: &str) -> Result<Vec<u8>, RunError> {
        Ok(self.io.load(self.key(name)?)?)
    }

    /// Where the output `name` is stored: a step's key, or `step.output`.
    fn key<'a>(&'a self, name: &'a str) -> Result<OutputKey<'a>, RunError> {
        let key = |step: &'a str, output: &'a str| OutputKey {
            run_id: &self.run_id,
            step,
            output,
        };
        if let Some(outputs) = self.outputs.get(name) {
            return match outputs.as_slice() {
                [only] => Ok(key(name, only)),
                _ if outputs.iter().any(|o| o == RESULT) => Ok(key(name, RESULT)),
                _ => Err(RunError::NotOneOutput {
                    step: name.to_owned(),
                    outputs: outputs
                        .iter()
                        .map(|o| format!("{name}.{o}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            };
        }
        if let Some((step, output)) = name.rsplit_once('.') {
            if let Some(outputs) = self.outputs.get(step) {
                if let Some(output) = outputs.iter().find(|o| *o == output) {
                    return Ok(key(step, output));
                }
            }
        }
        Err(RunError::UnknownStep {
            job: self.job.clone(),
            step: name.to_owned(),
            known: self.steps.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}
