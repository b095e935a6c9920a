//! A run of a job: its id, how it is launched ([`Run`]), and what it did ([`RunResult`]).
//!
//! A run is checked before it starts (run id, storage, event log, the executor's own
//! preconditions): a problem there is a [`RunError`] and nothing ran. Once `RUN_START` is
//! emitted, every run ends with a [`RunResult`] and one of `RUN_SUCCESS`, `RUN_FAILURE` or
//! `RUN_CANCELED`, whatever happens, an executor that loses its cluster included.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::codec::{self, CodecError};
use crate::config::{ExecutionConfig, RunConfig};
use crate::events::{Event, EventKind, EventSink, RunLog};
use crate::exec::interrupt::{InterruptHook, Interrupts};
use crate::exec::state::{RunState, SharedState};
use crate::exec::{RunContext, event_log_path, executor_for, open_io_manager};
use crate::graph::{Job, RESULT};
use crate::io::{IoError, IoManager, ObjectStoreIoManager, OutputKey};
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
    /// SIGINT/SIGTERM handling could not be set up.
    #[error("cannot handle interrupts: {0}")]
    Signals(String),
}

/// A run's id: letters, digits, `_` and `-`, so that it can be part of a storage path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(String);

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
    /// starts, running steps end (Dask kills their processes and records them failed as
    /// interrupted; the embedded executor lets them finish, and a second interrupt exits at
    /// once), and the run ends `RUN_CANCELED`. The handlers are in place before `RUN_START`;
    /// after the run, both signals take their default action again. The job binary's `run`
    /// command does this; off by default for library callers.
    pub fn cancel_on_interrupt(mut self, on: bool) -> Self {
        self.cancel_on_interrupt = on;
        self
    }

    /// Runs the job. Step failures, a lost cluster and a cancel are not errors: they are in
    /// the [`RunResult`]. An error means the run never started.
    pub fn execute(self) -> Result<RunResult, RunError> {
        let run_id = match &self.run_id {
            Some(id) => RunId::parse(id)?,
            None => RunId::random(),
        };
        let executor = executor_for(&self.config.execution);
        let io = match self.io {
            Some(io) => io,
            None => open_io_manager(&self.config.io_manager)?,
        };
        let log = match io.local_base() {
            Some(base) => {
                let path = event_log_path(base, run_id.as_str());
                // Two runs under one id would mix their outputs and their events.
                if path.exists() {
                    return Err(RunError::RunExists {
                        run_id: run_id.0,
                        path,
                    });
                }
                RunLog::to_file(&path, self.console)
                    .map_err(|source| RunError::EventLog { path, source })?
            }
            None => RunLog::in_memory(self.console),
        };
        let plan = self.job.plan();
        let log = Arc::new(log.with_progress(plan.steps.len()));
        let sink: Arc<dyn EventSink> = Arc::clone(&log) as Arc<dyn EventSink>;
        let interrupts = Arc::new(InterruptHook::default());
        let run = RunContext {
            job: self.job,
            run_id: run_id.as_str(),
            config: &self.config,
            io: io.as_ref(),
            sink: Arc::clone(&sink),
            interrupts: Arc::clone(&interrupts),
        };
        executor.prepare(&run)?;
        let state = Arc::new(SharedState::new(RunState::new(
            plan,
            run_id.as_str(),
            Arc::clone(&sink),
        )));
        // In place before RUN_START: an interrupt from here on is the run's.
        let _handlers = if self.cancel_on_interrupt {
            let state = Arc::clone(&state);
            let hook = Arc::clone(&interrupts);
            Some(
                Interrupts::install(move || {
                    // The executor's hook first: it says what a cancel means for it.
                    hook.fire();
                    state.lock().cancel("interrupted (SIGINT/SIGTERM)");
                    state.wake.notify_all();
                })
                .map_err(RunError::Signals)?,
            )
        } else {
            None
        };
        let started = Instant::now();
        sink.emit(Event::new(
            run_id.as_str(),
            None,
            EventKind::RunStart {
                job: plan.job.clone(),
                executor: executor.name(),
                steps: plan.steps.len(),
            },
        ));
        let engine_error = executor.execute(&run, &state).err().map(|e| e.to_string());
        let mut state = state.lock();
        let status = state.finish(started.elapsed(), engine_error.as_deref());
        log.flush();
        Ok(RunResult {
            status,
            steps: plan
                .steps
                .iter()
                .map(|s| s.key.clone())
                .zip(state.statuses())
                .collect(),
            events: log.events(),
            event_log: log.path().map(Path::to_owned),
            io,
            job: plan.job.clone(),
            engine_error,
            run_id: run_id.0,
        })
    }
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
    engine_error: Option<String>,
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
