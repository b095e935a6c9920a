//! Executors: what runs a job's plan.
//!
//! [`Run`] launches a run: it validates nothing twice (the [`RunConfig`] is already valid),
//! opens the IO manager and the run's event log, picks the executor the config asks for and
//! returns a [`RunResult`]. The embedded executor ([`EmbeddedExecutor`]) is the default.
//!
//! Failure semantics are the same for every executor: a failed step's downstream steps are
//! skipped (a `STEP_SKIPPED` event each, and they never run), independent branches finish,
//! and the run ends as a failure. A step's retry policy is honoured, with `STEP_UP_FOR_RETRY`
//! and `STEP_RESTARTED` events.

mod dask;
mod embedded;
mod interrupt;
pub(crate) mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub use dask::{DaskExecutor, PYTHON_ENV, REQUIREMENTS, distributed_requirement, python_for};
pub use embedded::EmbeddedExecutor;

use crate::codec::{self, CodecError};
use crate::config::{ExecutionConfig, IoManagerConfig, RunConfig};
use crate::events::{Event, EventKind, EventSink, RunLog};
use crate::graph::{Job, RESULT};
use crate::io::{IoError, IoManager, ObjectStoreIoManager, OutputKey};
use crate::op::Value;
use crate::plan::Plan;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every step succeeded.
    Success,
    /// At least one step failed.
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
        /// What the codec reported.
        source: CodecError,
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
}

/// The default storage directory: `$DAGSTER_DASK_HOME/storage`, else under the temp dir.
pub fn default_storage_dir() -> PathBuf {
    match std::env::var_os("DAGSTER_DASK_HOME") {
        Some(home) => PathBuf::from(home).join("storage"),
        None => std::env::temp_dir().join("dagster-dask").join("storage"),
    }
}

/// A new run id: 128 random bits, in the UUID text layout Dagster uses.
pub fn new_run_id() -> String {
    let mut rng = fastrand::Rng::new();
    let v = rng.u128(..);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

pub(crate) fn check_run_id(run_id: &str) -> Result<(), RunError> {
    let ok = !run_id.is_empty()
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RunError::InvalidRunId(run_id.to_owned()))
    }
}

/// Opens the IO manager a run config asks for.
pub fn open_io_manager(config: &IoManagerConfig) -> Result<Arc<dyn IoManager>, RunError> {
    if config.in_memory {
        return Ok(Arc::new(ObjectStoreIoManager::in_memory()));
    }
    let base = config.base_dir.clone().unwrap_or_else(default_storage_dir);
    Ok(Arc::new(ObjectStoreIoManager::local(base)?))
}

/// What a running plan shares with its steps.
pub(crate) struct RunContext<'a> {
    pub(crate) job: &'a Job,
    pub(crate) run_id: &'a str,
    pub(crate) config: &'a RunConfig,
    pub(crate) io: &'a dyn IoManager,
    pub(crate) sink: Arc<dyn EventSink>,
    /// Whether SIGINT/SIGTERM cancel the run (the CLI) or keep their usual effect.
    pub(crate) cancel_on_interrupt: bool,
}

impl RunContext<'_> {
    pub(crate) fn step_env(&self) -> step::StepEnv<'_> {
        step::StepEnv {
            job: self.job,
            run_id: self.run_id,
            io: self.io,
            sink: &self.sink,
            op_config: &self.config.ops,
        }
    }
}

/// A run about to be launched: [`Run::new`], options, then [`Run::execute`].
///
/// ```
/// # use dagster_dask::{graph::JobBuilder, op::OpDef, exec::Run};
/// let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
/// let mut b = JobBuilder::new("tiny");
/// b.add(&one, ());
/// let job = b.build().unwrap();
///
/// let result = Run::new(&job).in_memory().execute().unwrap();
/// assert!(result.success());
/// assert_eq!(result.output::<i64>("one").unwrap(), 1);
/// ```
#[derive(Debug)]
pub struct Run<'j> {
    job: &'j Job,
    config: RunConfig,
    run_id: Option<String>,
    io: Option<Arc<dyn IoManager>>,
    console: bool,
    cancel_on_interrupt: bool,
}

impl<'j> Run<'j> {
    /// A run of `job` with the default config: multithreaded, default storage, quiet.
    pub fn new(job: &'j Job) -> Self {
        Self {
            job,
            config: RunConfig::default(),
            run_id: None,
            io: None,
            console: false,
            cancel_on_interrupt: false,
        }
    }

    /// Uses this (validated) run config.
    pub fn config(mut self, config: RunConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses this run id instead of a new one.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Stores outputs with this IO manager instead of the one the config names.
    pub fn io_manager(mut self, io: Arc<dyn IoManager>) -> Self {
        self.io = Some(io);
        self
    }

    /// Keeps outputs in memory (in-process executors only).
    pub fn in_memory(self) -> Self {
        self.io_manager(Arc::new(ObjectStoreIoManager::in_memory()))
    }

    /// Prints events on stderr as they happen.
    pub fn console(mut self, on: bool) -> Self {
        self.console = on;
        self
    }

    /// Turns Ctrl-C (SIGINT) and SIGTERM into a cancel while the run goes: no new step
    /// starts, running steps end (Dask kills their processes; the embedded executor lets
    /// them finish, and a second interrupt exits at once), and the run ends `RUN_CANCELED`.
    /// The job binary's `run` command does this; off by default for library callers.
    pub fn cancel_on_interrupt(mut self, on: bool) -> Self {
        self.cancel_on_interrupt = on;
        self
    }

    /// Runs the job. Step failures are not errors: they are in the [`RunResult`].
    pub fn execute(self) -> Result<RunResult, RunError> {
        let run_id = self.run_id.unwrap_or_else(new_run_id);
        check_run_id(&run_id)?;
        let executor = match &self.config.execution {
            ExecutionConfig::InProcess => Executor::Embedded(EmbeddedExecutor::in_process()),
            ExecutionConfig::Multithread { max_concurrent } => {
                Executor::Embedded(EmbeddedExecutor::multithread(*max_concurrent))
            }
            ExecutionConfig::Dask(dask) => Executor::Dask(DaskExecutor::new(dask.clone())),
        };
        let io = match self.io {
            Some(io) => io,
            None => open_io_manager(&self.config.io_manager)?,
        };
        let log = match io.local_base() {
            Some(base) => {
                let path = event_log_path(base, &run_id);
                // Two runs under one id would mix their outputs and their events.
                if path.exists() {
                    return Err(RunError::RunExists { run_id, path });
                }
                RunLog::to_file(&path, self.console)
                    .map_err(|source| RunError::EventLog { path, source })?
            }
            None => RunLog::in_memory(self.console),
        };
        let log = Arc::new(log.with_progress(self.job.plan().steps.len()));
        let sink: Arc<dyn EventSink> = Arc::clone(&log) as Arc<dyn EventSink>;
        let plan = self.job.plan();
        let started = Instant::now();
        sink.emit(Event::new(
            &run_id,
            None,
            EventKind::RunStart {
                job: plan.job.clone(),
                executor: match &executor {
                    Executor::Embedded(e) => e.name(),
                    Executor::Dask(d) => d.name(),
                },
                steps: plan.steps.len(),
            },
        ));
        let run = RunContext {
            job: self.job,
            run_id: &run_id,
            config: &self.config,
            io: io.as_ref(),
            sink: Arc::clone(&sink),
            cancel_on_interrupt: self.cancel_on_interrupt,
        };
        let (statuses, canceled) = match &executor {
            Executor::Embedded(e) => e.execute(&run),
            Executor::Dask(d) => match d.execute(&run) {
                Ok(outcome) => (outcome.status, outcome.canceled),
                Err(e) => {
                    sink.emit(Event::new(
                        &run_id,
                        None,
                        EventKind::EngineEvent {
                            message: e.to_string(),
                        },
                    ));
                    sink.emit(Event::new(
                        &run_id,
                        None,
                        EventKind::RunFailure {
                            failed: Vec::new(),
                            skipped: Vec::new(),
                            duration_ms: started.elapsed().as_secs_f64() * 1e3,
                        },
                    ));
                    log.flush();
                    return Err(e);
                }
            },
        };
        let keys_with = |wanted: StepStatus| -> Vec<String> {
            statuses
                .iter()
                .zip(&plan.steps)
                .filter(|(s, _)| **s == wanted)
                .map(|(_, step)| step.key.clone())
                .collect()
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        let status = if let Some(message) = canceled {
            sink.emit(Event::new(
                &run_id,
                None,
                EventKind::RunCanceled { message },
            ));
            RunStatus::Canceled
        } else if statuses.iter().all(|s| *s == StepStatus::Succeeded) {
            sink.emit(Event::new(
                &run_id,
                None,
                EventKind::RunSuccess { duration_ms },
            ));
            RunStatus::Success
        } else {
            sink.emit(Event::new(
                &run_id,
                None,
                EventKind::RunFailure {
                    failed: keys_with(StepStatus::Failed),
                    skipped: keys_with(StepStatus::Skipped),
                    duration_ms,
                },
            ));
            RunStatus::Failure
        };
        log.flush();
        Ok(RunResult {
            run_id,
            status,
            steps: plan
                .steps
                .iter()
                .map(|s| s.key.clone())
                .zip(statuses)
                .collect(),
            events: log.events(),
            event_log: log.path().map(Path::to_owned),
            io,
            job: plan.job.clone(),
        })
    }
}

enum Executor {
    Embedded(EmbeddedExecutor),
    Dask(DaskExecutor),
}

/// Marks every step downstream of `failed` skipped (they never run); returns them, in plan
/// order.
pub(crate) fn mark_skipped(
    downstream: &[Vec<usize>],
    status: &mut [StepStatus],
    failed: usize,
) -> Vec<usize> {
    let mut stack = downstream[failed].clone();
    let mut skipped = Vec::new();
    while let Some(d) = stack.pop() {
        if status[d] == StepStatus::NotRun {
            status[d] = StepStatus::Skipped;
            skipped.push(d);
            stack.extend(&downstream[d]);
        }
    }
    skipped.sort_unstable();
    skipped
}

/// One `STEP_SKIPPED` per skipped step, naming its upstream steps that did not succeed.
pub(crate) fn report_skips(
    run: &RunContext<'_>,
    upstream: &[Vec<usize>],
    status: &[StepStatus],
    skipped: &[usize],
) {
    let plan: &Plan = run.job.plan();
    for &d in skipped {
        let culprits = upstream[d]
            .iter()
            .filter(|&&u| matches!(status[u], StepStatus::Failed | StepStatus::Skipped))
            .map(|&u| plan.steps[u].key.clone())
            .collect();
        run.sink.emit(Event::new(
            run.run_id,
            Some(&plan.steps[d].key),
            EventKind::StepSkipped { upstream: culprits },
        ));
    }
}

/// Where a run's event log lives under a storage directory.
pub fn event_log_path(base: &Path, run_id: &str) -> PathBuf {
    base.join(run_id).join("events.jsonl")
}

/// What a run did.
#[derive(Debug)]
pub struct RunResult {
    run_id: String,
    job: String,
    status: RunStatus,
    steps: BTreeMap<String, StepStatus>,
    events: Vec<Event>,
    event_log: Option<PathBuf>,
    io: Arc<dyn IoManager>,
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

    /// How step `key` ended.
    pub fn step_status(&self, key: &str) -> Option<StepStatus> {
        self.steps.get(key).copied()
    }

    /// Every event of the run, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
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

    /// The IO manager that holds the run's outputs.
    pub fn io_manager(&self) -> &Arc<dyn IoManager> {
        &self.io
    }

    /// Loads the output of step `key` as a `T`.
    pub fn output<T: Value>(&self, key: &str) -> Result<T, RunError> {
        let bytes = self.output_bytes(key)?;
        codec::decode(&bytes).map_err(|source| RunError::Codec {
            step: key.to_owned(),
            location: self.io.location(self.key(key)),
            source,
        })
    }

    /// The encoded output of step `key`.
    pub fn output_bytes(&self, key: &str) -> Result<Vec<u8>, RunError> {
        if !self.steps.contains_key(key) {
            return Err(RunError::UnknownStep {
                job: self.job.clone(),
                step: key.to_owned(),
                known: self.steps.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(self.io.load(self.key(key))?)
    }

    fn key<'a>(&'a self, step: &'a str) -> OutputKey<'a> {
        OutputKey {
            run_id: &self.run_id,
            step,
            output: RESULT,
        }
    }
}

impl Job {
    /// Runs the job in this thread, one step at a time, outputs in memory, quietly: for
    /// tests, like Dagster's `execute_in_process`.
    pub fn execute_in_process(&self) -> Result<RunResult, RunError> {
        let config = RunConfig {
            execution: ExecutionConfig::InProcess,
            ..RunConfig::default()
        };
        Run::new(self).config(config).in_memory().execute()
    }
}
