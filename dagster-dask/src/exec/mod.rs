//! Executors: where and when a run's steps run.
//!
//! The rules of a run (attempts, retries, skips, cancel, the final status, and the events of
//! each transition) live in one state machine, `state`, which every executor drives; an
//! executor (the `Executor` trait) only decides where and when a step runs. The embedded executor
//! ([`EmbeddedExecutor`]) runs steps in this process and is the default; the Dask executor
//! ([`DaskExecutor`]) runs each step as a task on a `distributed` cluster.
//!
//! Failure semantics are therefore the same for every executor: a failed step's downstream
//! steps are skipped (a `STEP_SKIPPED` event each, and they never run), independent branches
//! finish, and the run ends as a failure. A step's retry policy is honoured, with
//! `STEP_UP_FOR_RETRY` and `STEP_RESTARTED` events.

pub(crate) mod dask;
mod embedded;
mod expansion;
pub(crate) mod interrupt;
mod launch;
pub(crate) mod state;
pub(crate) mod step;

use std::sync::Arc;

pub use dask::{DaskExecutor, PYTHON_ENV, REQUIREMENTS, distributed_requirement, python_for};
pub use embedded::EmbeddedExecutor;

pub use crate::run::{RunError, RunId, RunResult, RunStatus, StepStatus, new_run_id};
pub use crate::storage::{default_storage_dir, event_log_path, open_io_manager};
pub use launch::Run;

use self::interrupt::InterruptHook;
use self::state::SharedState;
use crate::config::{ExecutionConfig, RunConfig};
use crate::events::EventSink;
use crate::graph::Job;
use crate::io::IoManager;

/// Runs a run's steps: decides where and when each runs, and reports how each attempt
/// ended to the run's state, which decides everything else.
pub(crate) trait Executor {
    /// The executor's name in `RUN_START`.
    fn name(&self) -> String;

    /// Checks what this executor needs before the run starts; an error here means nothing
    /// ran.
    fn prepare(&self, _run: &RunContext<'_>) -> Result<(), RunError> {
        Ok(())
    }

    /// Runs steps until the state says the run is over (every step ended, or canceled).
    /// An error is why the executor could not go on; the run then fails with it.
    fn execute(&self, run: &RunContext<'_>, state: &Arc<SharedState>) -> Result<(), RunError>;
}

/// The executor a run config asks for.
pub(crate) fn executor_for(config: &ExecutionConfig) -> Box<dyn Executor> {
    match config {
        ExecutionConfig::InProcess => Box::new(EmbeddedExecutor::in_process()),
        ExecutionConfig::Multithread { max_concurrent } => {
            Box::new(EmbeddedExecutor::multithread(*max_concurrent))
        }
        ExecutionConfig::Dask(dask) => Box::new(DaskExecutor::new(dask.clone())),
    }
}

/// What a running plan shares with its executor and its steps.
pub(crate) struct RunContext<'a> {
    pub(crate) job: &'a Job,
    pub(crate) run_id: &'a str,
    pub(crate) config: &'a RunConfig,
    pub(crate) io: &'a dyn IoManager,
    pub(crate) sink: Arc<dyn EventSink>,
    /// The run's interrupts (none unless the run cancels on interrupt).
    pub(crate) interrupts: Arc<InterruptHook>,
    /// The job's resources in this process, built as steps need them.
    pub(crate) resources: Arc<crate::resource::Resources>,
    /// Arguments step processes on other machines take to run the same part of the job
    /// (`--select`, `--from`), and as this run does (`--no-cache`).
    pub(crate) step_args: Vec<String>,
    /// Whether steps of ops with a code version may reuse earlier outputs.
    pub(crate) cache: bool,
}

impl RunContext<'_> {
    pub(crate) fn step_env(&self) -> step::StepEnv<'_> {
        step::StepEnv {
            job: self.job,
            run_id: self.run_id,
            io: self.io,
            sink: &self.sink,
            config: self.config,
            resources: &self.resources,
            cache: self.cache,
        }
    }
}
