//! The Dask executor: every step a task on a `distributed` cluster.
//!
//! The driver (this process) starts a small Python bridge (`python/bridge.py`, embedded in
//! the crate) that owns the `distributed.Client`, and talks to it in JSON lines over its
//! stdin and stdout. The whole plan goes to the cluster as one graph: one task per step,
//! keyed `<step>-<run_id>`, upstream steps as Dask dependencies and resource requirements as
//! Dask `resources`. Each task runs this job binary in step mode on its worker and forwards
//! the step's output lines as they come, so events and op logs reach the driver live.
//!
//! The driver keeps the run's semantics: a step that fails raises in Dask, so nothing
//! downstream of it runs; the driver marks those steps skipped, retries by the op's policy
//! (resubmitting the step and what depends on it), fails a step no worker can take after
//! `no_worker_timeout`, and cancels everything on Ctrl-C.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::interrupt::Interrupts;
use super::{RunContext, RunError, StepStatus, mark_skipped, report_skips};
use crate::config::{ClusterConfig, DaskConfig, RunConfig, ShipBinary};
use crate::events::{ErrorInfo, ErrorKind, Event, EventKind};

/// The bridge script the driver runs with Python.
const BRIDGE: &str = include_str!("../../python/bridge.py");

/// The pinned requirements of the Python side.
pub const REQUIREMENTS: &str = include_str!("../../python/requirements.txt");

/// The environment variable naming the Python with `distributed` (wins over run config).
pub const PYTHON_ENV: &str = "DAGSTER_DASK_PYTHON";

/// How long the driver waits for a scheduler to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a local cluster may take to start (slow machines, cold imports).
const LOCAL_START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the driver waits for a finished step's last forwarded lines.
const LINES_GRACE: Duration = Duration::from_secs(5);

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

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum ToBridge<'a> {
    Connect {
        cluster: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        kwargs: Option<&'a serde_json::Map<String, serde_json::Value>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<&'a str>,
        timeout: f64,
    },
    Submit {
        run_id: &'a str,
        binary: String,
        config_json: String,
        no_worker_timeout: f64,
        ship_binary: &'static str,
        platform: [&'static str; 2],
        steps: Vec<SubmitStep<'a>>,
    },
    Retry {
        step: &'a str,
        attempt: u32,
    },
    Cancel,
    Close,
}

#[derive(Serialize)]
struct SubmitStep<'a> {
    step: &'a str,
    deps: Vec<&'a str>,
    #[serde(with = "crate::op::resource_amounts")]
    resources: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FromBridge {
    Connected {
        dashboard: Option<String>,
        workers: BTreeMap<String, BTreeMap<String, f64>>,
    },
    Line(Line),
    Done(Done),
    Info {
        message: String,
    },
    Canceled,
    Fatal {
        message: String,
        #[serde(default)]
        missing: bool,
    },
}

/// One line a step process wrote, forwarded from its worker.
#[derive(Debug, Deserialize)]
struct Line {
    step: String,
    attempt: u32,
    worker: Option<String>,
    stream: String,
    line: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Done {
    step: String,
    attempt: u32,
    status: DoneStatus,
    worker: Option<String>,
    lines: Option<usize>,
    message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DoneStatus {
    Success,
    Failed,
    Killed,
    NoWorker,
}

/// What the driver loop waits on.
enum Input {
    Bridge(FromBridge),
    /// A stdout line of the bridge that is not a message (a stray print).
    Stray(String),
    /// The bridge's stdout closed: it exited.
    Closed,
    /// SIGINT or SIGTERM.
    Interrupt,
}

/// Runs a plan on a Dask cluster.
#[derive(Debug, Clone)]
pub struct DaskExecutor {
    config: DaskConfig,
}

/// How a Dask run ended, when it ran at all.
pub(crate) struct DaskOutcome {
    pub(crate) status: Vec<StepStatus>,
    pub(crate) canceled: Option<String>,
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

    pub(crate) fn execute(&self, run: &RunContext<'_>) -> Result<DaskOutcome, RunError> {
        let binary = std::env::current_exe()
            .map_err(|e| RunError::Dask(format!("cannot find this job binary's path: {e}")))?;
        let mut bridge = Bridge::start(&python_for(&self.config), run.cancel_on_interrupt)?;
        let result = self.drive(run, &mut bridge, binary);
        bridge.close();
        result
    }

    fn drive(
        &self,
        run: &RunContext<'_>,
        bridge: &mut Bridge,
        binary: PathBuf,
    ) -> Result<DaskOutcome, RunError> {
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
                    } else {
                        format!("cannot connect to {target}: {message}")
                    }));
                }
                Some(Input::Stray(_)) => {}
                Some(Input::Interrupt) => {
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

        let plan = run.job.plan();
        let driver = Driver::new(run);
        let steps = plan
            .steps
            .iter()
            .zip(&driver.upstream)
            .map(|(s, up)| SubmitStep {
                step: &s.key,
                deps: up.iter().map(|&u| plan.steps[u].key.as_str()).collect(),
                resources: s.tags.resource_requirements.clone(),
            })
            .collect();
        bridge.send(&ToBridge::Submit {
            run_id: run.run_id,
            binary: binary.display().to_string(),
            config_json: step_config_json(run)?,
            no_worker_timeout: self.config.no_worker_timeout.as_secs_f64(),
            ship_binary: match self.config.ship_binary {
                ShipBinary::Auto => "auto",
                ShipBinary::Always => "always",
                ShipBinary::Never => "never",
            },
            platform: [std::env::consts::OS, std::env::consts::ARCH],
            steps,
        })?;
        driver.run(bridge)
    }
}

/// The run config step processes get: what the driver validated, storage made absolute.
fn step_config_json(run: &RunContext<'_>) -> Result<String, RunError> {
    let base = run.io.local_base().ok_or_else(|| {
        RunError::Dask(
            "the Dask executor needs storage every worker can read: set \
             `resources.io_manager.config.base_dir` to a shared directory"
                .to_owned(),
        )
    })?;
    let mut config: RunConfig = run.config.clone();
    config.io_manager.base_dir = Some(base.to_owned());
    Ok(config.to_value().to_string())
}

/// The bridge process and the channel its messages arrive on.
struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    inputs: mpsc::Receiver<Input>,
    _interrupts: Option<Interrupts>,
}

impl Bridge {
    fn start(python: &str, interrupts: bool) -> Result<Self, RunError> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(python)
            .arg("-c")
            .arg(BRIDGE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Dask's INFO logging would drown the run's own events.
            .env("DASK_LOGGING__DISTRIBUTED", "warning")
            // Its own process group: Ctrl-C reaches the driver, which cancels in order.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                RunError::Dask(format!(
                    "cannot start Python `{python}` for the Dask executor: {e}; install Python 3 \
                     with `{}`, or set {PYTHON_ENV} (or `execution.config.python`) to one",
                    distributed_requirement()
                ))
            })?;
        let (tx, rx) = mpsc::channel();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| RunError::Dask("no bridge stdout".into()))?;
        let lines_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let input = match serde_json::from_str::<FromBridge>(&line) {
                    Ok(msg) => Input::Bridge(msg),
                    Err(_) => Input::Stray(line),
                };
                if lines_tx.send(input).is_err() {
                    return;
                }
            }
            let _ = lines_tx.send(Input::Closed);
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            inputs: rx,
            _interrupts: interrupts.then(|| {
                Interrupts::start(move || {
                    let _ = tx.send(Input::Interrupt);
                })
            }),
        })
    }

    fn send(&mut self, command: &ToBridge<'_>) -> Result<(), RunError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| RunError::Dask("the Dask bridge is closed".to_owned()))?;
        let mut line = serde_json::to_vec(command)
            .map_err(|e| RunError::Dask(format!("cannot encode a bridge command: {e}")))?;
        line.push(b'\n');
        stdin
            .write_all(&line)
            .and_then(|()| stdin.flush())
            .map_err(|e| RunError::Dask(format!("the Dask bridge stopped listening: {e}")))
    }

    fn recv(&self, timeout: Option<Duration>) -> Option<Input> {
        match timeout {
            None => self.inputs.recv().ok(),
            Some(t) => self.inputs.recv_timeout(t).ok(),
        }
    }

    /// Asks the bridge to close the client (and a local cluster), then waits for it.
    fn close(&mut self) {
        let _ = self.send(&ToBridge::Close);
        self.stdin = None; // EOF: the bridge also stops on it
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the driver knows of one step.
#[derive(Default)]
struct StepTrack {
    attempt: u32,
    /// Lines received per attempt.
    lines: HashMap<u32, usize>,
    /// How the step process said the attempt ended.
    ended: HashMap<u32, Ending>,
    /// The bridge's word that the attempt's task ended, and when it came.
    done: Option<(Done, Instant)>,
    worker: Option<String>,
}

#[derive(Clone)]
enum Ending {
    Success,
    Retry(Duration),
    Failure,
}

struct Driver<'r, 'a> {
    run: &'r RunContext<'a>,
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    status: Vec<StepStatus>,
    track: Vec<StepTrack>,
    index: HashMap<String, usize>,
    retries: Vec<(Instant, usize)>,
    rng: fastrand::Rng,
}

impl<'r, 'a> Driver<'r, 'a> {
    fn new(run: &'r RunContext<'a>) -> Self {
        let plan = run.job.plan();
        Self {
            run,
            upstream: plan.upstream_indices(),
            downstream: plan.downstream_indices(),
            status: vec![StepStatus::NotRun; plan.steps.len()],
            track: (0..plan.steps.len())
                .map(|_| StepTrack {
                    attempt: 1,
                    ..StepTrack::default()
                })
                .collect(),
            index: plan
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.key.clone(), i))
                .collect(),
            retries: Vec::new(),
            rng: fastrand::Rng::new(),
        }
    }

    fn all_ended(&self) -> bool {
        self.status.iter().all(|s| *s != StepStatus::NotRun)
    }

    fn run(mut self, bridge: &mut Bridge) -> Result<DaskOutcome, RunError> {
        while !self.all_ended() {
            let now = Instant::now();
            let mut due = Vec::new();
            self.retries.retain(|&(at, i)| {
                let is_due = at <= now;
                if is_due {
                    due.push(i);
                }
                !is_due
            });
            for i in due {
                let key = &self.run.job.plan().steps[i].key;
                bridge.send(&ToBridge::Retry {
                    step: key,
                    attempt: self.track[i].attempt,
                })?;
            }
            // Wake for the next retry, or for a finished step whose lines are late.
            let next_retry = self
                .retries
                .iter()
                .map(|(at, _)| at.saturating_duration_since(now))
                .min();
            let next_grace = self
                .track
                .iter()
                .filter_map(|t| {
                    t.done
                        .as_ref()
                        .map(|(_, at)| (*at + LINES_GRACE).saturating_duration_since(now))
                })
                .min();
            let timeout = match (next_retry, next_grace) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match bridge.recv(timeout) {
                Some(Input::Bridge(FromBridge::Line(line))) => self.on_line(line),
                Some(Input::Bridge(FromBridge::Done(done))) => {
                    if let Some(&i) = self.index.get(&done.step) {
                        if done.attempt == self.track[i].attempt
                            && self.status[i] == StepStatus::NotRun
                        {
                            self.track[i].done = Some((done, Instant::now()));
                        }
                    }
                }
                Some(Input::Bridge(FromBridge::Fatal { message, .. })) => {
                    self.engine(None, format!("the Dask bridge reported: {message}"));
                }
                Some(Input::Bridge(FromBridge::Info { message })) => self.engine(None, message),
                Some(Input::Bridge(FromBridge::Connected { .. } | FromBridge::Canceled)) => {}
                Some(Input::Stray(line)) => {
                    self.engine(None, format!("bridge: {line}"));
                }
                Some(Input::Interrupt) => return self.cancel(bridge),
                Some(Input::Closed) => {
                    return Err(RunError::Dask(
                        "the Dask bridge exited before the run ended; its error is above"
                            .to_owned(),
                    ));
                }
                None => {}
            }
            self.settle();
        }
        Ok(DaskOutcome {
            status: self.status,
            canceled: None,
        })
    }

    fn engine(&self, step: Option<&str>, message: String) {
        self.run.sink.emit(Event::new(
            self.run.run_id,
            step,
            EventKind::EngineEvent { message },
        ));
    }

    fn on_line(&mut self, msg: Line) {
        let Line {
            step,
            attempt,
            worker,
            stream,
            line,
        } = msg;
        let (step, stream) = (step.as_str(), stream.as_str());
        let Some(&i) = self.index.get(step) else {
            self.engine(None, format!("output of unknown step `{step}`: {line}"));
            return;
        };
        *self.track[i].lines.entry(attempt).or_default() += 1;
        if worker.is_some() {
            self.track[i].worker.clone_from(&worker);
        }
        let parsed = (stream == "stdout")
            .then(|| serde_json::from_str::<Event>(&line).ok())
            .flatten()
            .filter(|e| e.run_id == self.run.run_id && e.step_key.as_deref() == Some(step));
        let mut event = match parsed {
            Some(event) => {
                let ending = match &event.kind {
                    EventKind::StepSuccess { .. } => Some(Ending::Success),
                    EventKind::StepUpForRetry { delay_ms, .. } => Some(Ending::Retry(
                        Duration::from_secs_f64(delay_ms.max(0.0) / 1e3),
                    )),
                    EventKind::StepFailure { .. } => Some(Ending::Failure),
                    _ => None,
                };
                if let Some(ending) = ending {
                    self.track[i].ended.insert(attempt, ending);
                }
                event
            }
            None => Event::new(
                self.run.run_id,
                Some(step),
                EventKind::StepOutputLine {
                    stream: stream.to_owned(),
                    line,
                },
            ),
        };
        event.worker = worker;
        self.run.sink.emit(event);
    }

    /// Finishes every step whose task ended and whose lines have all arrived (or are late).
    fn settle(&mut self) {
        let now = Instant::now();
        for i in 0..self.track.len() {
            let Some((done, at)) = self.track[i].done.clone() else {
                continue;
            };
            let received = self.track[i].lines.get(&done.attempt).copied().unwrap_or(0);
            let complete = done.lines.is_none_or(|n| received >= n);
            if complete || now >= at + LINES_GRACE {
                self.track[i].done = None;
                self.finish(i, done);
            }
        }
    }

    fn finish(&mut self, i: usize, done: Done) {
        let plan = self.run.job.plan();
        let key = plan.steps[i].key.clone();
        let ended = self.track[i].ended.get(&done.attempt).cloned();
        match (done.status, ended) {
            (DoneStatus::Success, _) => self.status[i] = StepStatus::Succeeded,
            (DoneStatus::Failed, Some(Ending::Retry(delay))) => self.schedule_retry(i, delay),
            (DoneStatus::Failed, Some(Ending::Failure)) => self.fail(i),
            (DoneStatus::NoWorker, _) => {
                let resources = &plan.steps[i].tags.resource_requirements;
                let message = done.message.unwrap_or_default();
                let error = ErrorInfo::new(
                    ErrorKind::Engine,
                    if resources.is_empty() {
                        format!("step `{key}` found no worker: {message}")
                    } else {
                        format!(
                            "step `{key}` needs {}: {message}",
                            crate::op::resources_json(resources)
                        )
                    },
                );
                self.emit_failure(i, done.attempt, error);
                self.fail(i);
            }
            (status, _) => {
                // The step process never said how it ended: it crashed, could not start,
                // or its worker died. The op's retry policy decides, as for an op error.
                let worker = done.worker.or_else(|| self.track[i].worker.clone());
                let mut message = match status {
                    DoneStatus::Killed => format!("the worker running step `{key}` died"),
                    _ => format!("step `{key}` did not run to the end"),
                };
                if let Some(w) = worker {
                    message.push_str(&format!(" (worker {w})"));
                }
                if let Some(m) = done.message {
                    message.push_str(&format!(": {m}"));
                }
                let error = ErrorInfo::new(ErrorKind::Engine, message);
                let policy = plan.steps[i].retry_policy;
                if done.attempt <= policy.max_retries {
                    let delay = policy.delay_before(done.attempt, &mut self.rng);
                    self.run.sink.emit(Event::new(
                        self.run.run_id,
                        Some(&key),
                        EventKind::StepUpForRetry {
                            attempt: done.attempt,
                            delay_ms: delay.as_secs_f64() * 1e3,
                            error,
                        },
                    ));
                    self.schedule_retry(i, delay);
                } else {
                    self.emit_failure(i, done.attempt, error);
                    self.fail(i);
                }
            }
        }
    }

    fn emit_failure(&self, i: usize, attempt: u32, error: ErrorInfo) {
        let key = &self.run.job.plan().steps[i].key;
        self.run.sink.emit(Event::new(
            self.run.run_id,
            Some(key),
            EventKind::StepFailure { attempt, error },
        ));
    }

    fn schedule_retry(&mut self, i: usize, delay: Duration) {
        self.track[i].attempt += 1;
        self.retries.push((Instant::now() + delay, i));
    }

    fn fail(&mut self, i: usize) {
        self.status[i] = StepStatus::Failed;
        let skipped = mark_skipped(&self.downstream, &mut self.status, i);
        report_skips(self.run, &self.upstream, &self.status, &skipped);
    }

    fn cancel(mut self, bridge: &mut Bridge) -> Result<DaskOutcome, RunError> {
        self.engine(
            None,
            "interrupted: canceling the run's tasks on the cluster (interrupt again to stop waiting)"
                .to_owned(),
        );
        bridge.send(&ToBridge::Cancel)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match bridge.recv(Some(deadline.saturating_duration_since(Instant::now()))) {
                Some(Input::Bridge(FromBridge::Canceled) | Input::Closed | Input::Interrupt)
                | None => break,
                Some(Input::Bridge(FromBridge::Line(line))) => self.on_line(line),
                Some(_) => {}
            }
        }
        Ok(DaskOutcome {
            status: self.status,
            canceled: Some("interrupted (SIGINT/SIGTERM): pending tasks canceled, running step processes killed".to_owned()),
        })
    }
}
