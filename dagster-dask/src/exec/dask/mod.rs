//! The Dask executor: every step a task on a `distributed` cluster.
//!
//! The driver (this process) starts a small Python bridge (`python/bridge.py`, embedded in
//! the crate) that owns the `distributed.Client`, and talks to it in JSON lines over its
//! stdin and stdout. Every step is one Dask task, keyed `<step>-<run_id>`, with the step's
//! resource requirements as Dask `resources`; the bridge submits a step once every step it
//! depends on has succeeded, in windows of at most 1,000 tasks (so a 10,000-step job never
//! reaches the scheduler as one graph, and the scheduler gives each task to a free worker),
//! except a chain link, which goes with its upstream as its Dask dependency. Each task has
//! the step run on its worker by a warm runner of this job binary (`__serve`, one per run and
//! worker thread, so the job is built and the run config read once, not per step), and
//! forwards the step's output lines as they come, so events and op logs reach the driver
//! live.
//!
//! Step messages travel on a channel of their own, and the run config reaches the workers
//! once per run, as a worker plugin of the run, and each runner through its stdin (never
//! argv). The run's state keeps the run's semantics: nothing downstream of a failed step is
//! submitted; the state marks those steps skipped and retries by the op's policy (the bridge
//! submits the step again); the driver fails a step no worker can take after
//! `no_worker_timeout`, and cancels everything on Ctrl-C. When the run ends, its runners,
//! config and log topic leave the cluster.
//!
//! Modules: [`protocol`] (the wire types), [`bridge`] (the Python process), [`driver`] (what
//! the cluster says, checked and handed to the run's state).

mod bridge;
mod driver;
pub(crate) mod protocol;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::bridge::{Bridge, Input};
use self::driver::Driver;
use self::protocol::{FromBridge, ToBridge};
use super::state::SharedState;
use super::{Executor, RunContext, RunError};
use crate::config::{ClusterConfig, DaskConfig, RunConfig, ShipBinary};
use crate::events::{Event, EventKind};

/// The pinned requirements of the Python side.
pub const REQUIREMENTS: &str = include_str!("../../../python/requirements.txt");

/// The environment variable naming the Python with `distributed` (wins over run config).
pub const PYTHON_ENV: &str = "DAGSTER_DASK_PYTHON";

/// How long the driver waits for a scheduler to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the bridge may take to close its client and a local cluster after a run.
const CLOSE_GRACE: Duration = Duration::from_secs(30);
/// The same, after the run ended because the bridge or the cluster failed.
const CLOSE_GRACE_AFTER_ERROR: Duration = Duration::from_secs(5);
/// How long a local cluster may take to start (slow machines, cold imports).
const LOCAL_START_TIMEOUT: Duration = Duration::from_secs(180);

/// The pinned `distributed` requirement, e.g. `distributed==2026.8.0`.
pub fn distributed_requirement() -> &'static str {
    REQUIREMENTS
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("distributed"))
        .unwrap_or("distributed")
}

/// The Python the Dask executor runs: `DAGSTER_DASK_PYTHON`, then run config, then `python3`.
pub fn python_for(config: &DaskConfig) -> String {
    std::env::var(PYTHON_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| config.python.clone())
        .unwrap_or_else(|| "python3".to_owned())
}

/// Runs a plan on a Dask cluster.
#[derive(Debug, Clone)]
pub struct DaskExecutor {
    config: DaskConfig,
}

impl DaskExecutor {
    /// An executor for this config.
    pub fn new(config: DaskConfig) -> Self {
        Self { config }
    }

    /// The executor's name in events.
    pub fn name(&self) -> String {
        match &self.config.cluster {
            ClusterConfig::Local(_) => "dask (local cluster)".to_owned(),
            ClusterConfig::Existing { address } => format!("dask ({address})"),
        }
    }
}

impl Executor for DaskExecutor {
    fn name(&self) -> String {
        DaskExecutor::name(self)
    }

    fn prepare(&self, run: &RunContext<'_>) -> Result<(), RunError> {
        shared_storage(run)
    }

    fn execute(&self, run: &RunContext<'_>, state: &Arc<SharedState>) -> Result<(), RunError> {
        let binary = std::env::current_exe()
            .map_err(|e| RunError::Dask(format!("cannot find this job binary's path: {e}")))?;
        let mut bridge = Bridge::start(&python_for(&self.config))?;
        let waker = bridge.waker();
        run.interrupts.set({
            let state = Arc::clone(state);
            move |count| {
                state.lock().cancel("interrupted (SIGINT/SIGTERM)");
                let _ = waker.send(Input::Interrupt(count));
            }
        });
        let result = self.drive(run, state, &mut bridge, binary);
        // A bridge that failed us gets little time to close its client before its process
        // group (a local cluster's included) is killed.
        bridge.close(if result.is_ok() {
            CLOSE_GRACE
        } else {
            CLOSE_GRACE_AFTER_ERROR
        });
        result
    }
}

impl DaskExecutor {
    fn drive(
        &self,
        run: &RunContext<'_>,
        state: &SharedState,
        bridge: &mut Bridge,
        binary: PathBuf,
    ) -> Result<(), RunError> {
        let python = python_for(&self.config);
        let (connect, deadline, target) = match &self.config.cluster {
            ClusterConfig::Local(kwargs) => (
                ToBridge::Connect {
                    cluster: "local",
                    kwargs: Some(kwargs),
                    address: None,
                    timeout: CONNECT_TIMEOUT.as_secs_f64(),
                },
                LOCAL_START_TIMEOUT,
                "a local cluster".to_owned(),
            ),
            ClusterConfig::Existing { address } => (
                ToBridge::Connect {
                    cluster: "existing",
                    kwargs: None,
                    address: Some(address),
                    timeout: CONNECT_TIMEOUT.as_secs_f64(),
                },
                // Python's start and `import distributed` come on top of the connect timeout.
                CONNECT_TIMEOUT + Duration::from_secs(60),
                format!("the scheduler at {address}"),
            ),
        };
        // Starting Python and a local cluster takes seconds: say what is going on.
        run.sink.emit(Event::new(
            run.run_id,
            None,
            EventKind::EngineEvent {
                message: match &self.config.cluster {
                    ClusterConfig::Local(_) => format!("starting {target} with {python}"),
                    ClusterConfig::Existing { .. } => {
                        format!("connecting to {target} with {python}")
                    }
                },
            },
        ));
        bridge.send(&connect)?;
        let started = Instant::now();
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            match bridge.recv(Some(left)) {
                Some(Input::Bridge(FromBridge::Connected { dashboard, workers })) => {
                    let workers = workers
                        .iter()
                        .map(|(name, res)| {
                            if res.is_empty() {
                                name.clone()
                            } else {
                                format!("{name} {}", crate::op::resources_json(res))
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    let message = match dashboard {
                        Some(d) => {
                            format!("connected to {target}; dashboard: {d}; workers: {workers}")
                        }
                        None => format!("connected to {target}; workers: {workers}"),
                    };
                    run.sink.emit(Event::new(
                        run.run_id,
                        None,
                        EventKind::EngineEvent { message },
                    ));
                    break;
                }
                Some(Input::Bridge(FromBridge::Fatal { message, missing })) => {
                    return Err(RunError::Dask(if missing {
                        format!(
                            "Python `{python}` cannot import `distributed`: install it with `{python} -m pip install '{}'`, or point {PYTHON_ENV} (or `execution.config.python`) at a Python that has it",
                            distributed_requirement()
                        )
                    } else if let ClusterConfig::Local(kwargs) = &self.config.cluster {
                        // A bad keyword argument is the usual cause: show what was passed.
                        format!(
                            "cannot start {target} with `execution.config.cluster.local` = {}: {message}",
                            serde_json::Value::Object(kwargs.clone())
                        )
                    } else {
                        format!("cannot connect to {target}: {message}")
                    }));
                }
                Some(Input::Stray(_)) => {}
                Some(Input::Interrupt(_)) => {
                    return Err(RunError::Dask(format!(
                        "interrupted while connecting to {target}"
                    )));
                }
                Some(Input::Closed) => {
                    return Err(RunError::Dask(format!(
                        "the Dask bridge ({python}) exited while connecting to {target}; its error is above"
                    )));
                }
                Some(Input::Bridge(other)) => {
                    return Err(RunError::Dask(format!(
                        "the Dask bridge answered {other:?} before connecting"
                    )));
                }
                None => {
                    return Err(RunError::Dask(format!(
                        "no answer from {target} within {} s",
                        deadline.as_secs()
                    )));
                }
            }
        }

        let steps = {
            let mut state = state.lock();
            // (steps made before the run starts, from a parent run's mapping keys, too)
            state.take_made();
            let gated = run.job.plan().gated();
            (0..state.len())
                .filter(|&i| !state.is_template(i))
                .map(|i| driver::submit_step(run.job.plan(), &state, i, gated[state.plan_index(i)]))
                .collect()
        };
        bridge.send(&ToBridge::Submit {
            run_id: run.run_id,
            binary: binary.display().to_string(),
            config_json: step_config_json(run)?,
            no_worker_timeout: self.config.no_worker_timeout.as_secs_f64(),
            cluster_timeout: self.config.cluster_timeout.as_secs_f64(),
            ship_binary: match self.config.ship_binary {
                ShipBinary::Auto => "auto",
                ShipBinary::Always => "always",
                ShipBinary::Never => "never",
            },
            platform: [std::env::consts::OS, std::env::consts::ARCH],
            step_args: &run.step_args,
            steps,
        })?;
        Driver::new(run, state, self.config.cluster_timeout, target).run(bridge)
    }
}

/// Checks that every worker can reach the storage: a directory or an object store, not memory.
fn shared_storage(run: &RunContext<'_>) -> Result<(), RunError> {
    if run.io.is_shared() {
        Ok(())
    } else {
        Err(RunError::Dask(
            "the Dask executor needs storage every worker can read: set \
             `resources.io_manager.config.base_dir` to a shared directory, or `base_url` (or \
             `s3_bucket`) to an object store"
                .to_owned(),
        ))
    }
}

/// The run config step processes get: what the driver validated, a directory made absolute.
fn step_config_json(run: &RunContext<'_>) -> Result<String, RunError> {
    shared_storage(run)?;
    let mut config: RunConfig = run.config.clone();
    if let Some(base) = run.io.local_base() {
        config.io_manager.base_dir = Some(base.to_owned());
    }
    Ok(config.to_value().to_string())
}
