//! Launching a run: [`Run`] checks what must hold before the run starts, emits `RUN_START`,
//! hands the run to its executor and always ends it with a [`RunResult`].
//!
//! A problem found before `RUN_START` (run id, storage, event log, the executor's own
//! preconditions) is a [`RunError`] and nothing ran. Once `RUN_START` is emitted, every run
//! ends with one of `RUN_SUCCESS`, `RUN_FAILURE` or `RUN_CANCELED`, whatever happens, an
//! executor that loses its cluster included.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::interrupt::{InterruptHook, Interrupts};
use super::state::{RunState, SharedState};
use super::{RunContext, executor_for};
use crate::config::{ExecutionConfig, RunConfig};
use crate::events::{Event, EventKind, EventSink, RunLog};
use crate::graph::Job;
use crate::io::{IoManager, ObjectStoreIoManager, OutputKey};
use crate::plan::Fan;
use crate::run::{RunError, RunId, RunResult};
use crate::selection::{Selection, SelectionError, part_of};
use crate::storage::{event_log_path, open_io_manager};

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
    live_progress: bool,
    cancel_on_interrupt: bool,
    selection: Option<String>,
    parent: Option<String>,
    reexecute: bool,
    from_failure: bool,
    no_cache: bool,
}

/// The part of a job a run runs, and how step processes elsewhere select the same.
struct Part {
    job: Job,
    step_args: Vec<String>,
    /// Steps made for mapping keys that the parent run finished: not made again (what
    /// reads them finds their outputs in the parent run).
    reused: HashSet<String>,
}

/// A run's event log, from its storage (a local directory, or an object store).
fn parent_events(io: &dyn IoManager, run_id: &str) -> Result<Vec<Event>, RunError> {
    crate::history::run_events(io, run_id).map_err(|e| RunError::Parent {
        run_id: run_id.to_owned(),
        reason: match e {
            crate::history::HistoryError::EventLog { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// The steps that ended well in the run `events` tell: succeeded, or skipped because an
/// output they read was not produced.
fn finished_steps(events: &[Event]) -> HashSet<String> {
    crate::history::step_rows(events)
        .into_iter()
        .filter(|row| row.status == "succeeded" || row.status == "skipped")
        .map(|row| row.key)
        .collect()
}

/// For each step of `plan`, whether it must run again after the run that `events` tell:
/// it failed, never ended, or is downstream of such a step. A mapped step is done when its
/// dynamic output's producer stored its keys and the step of every key is done.
fn unfinished_steps(plan: &crate::plan::Plan, events: &[Event]) -> Vec<bool> {
    let finished = finished_steps(events);
    let mut keys_of: HashMap<(&str, &str), usize> = HashMap::new();
    for event in events {
        if let (
            Some(step),
            EventKind::StepOutput {
                output,
                mapping_keys: Some(n),
                ..
            },
        ) = (event.step_key.as_deref(), &event.kind)
        {
            keys_of.insert((step, output), *n);
        }
    }
    let mut done_per_template: HashMap<&str, usize> = HashMap::new();
    for key in &finished {
        if let Some((template, _)) = crate::dynamic::split_instance(key) {
            *done_per_template.entry(template).or_default() += 1;
        }
    }
    let mut unfinished: Vec<bool> = plan
        .steps
        .iter()
        .map(|step| match &step.mapped {
            None => !finished.contains(&step.key),
            Some(root) => {
                let keys = keys_of.get(&(root.step.as_str(), root.output.as_str()));
                let done = done_per_template
                    .get(step.key.as_str())
                    .copied()
                    .unwrap_or(0);
                keys.is_none_or(|&n| done < n)
            }
        })
        .collect();
    // (plan order: upstream steps come first)
    for i in 0..plan.steps.len() {
        if plan.upstream()[i].iter().any(|&u| unfinished[u]) {
            unfinished[i] = true;
        }
    }
    unfinished
}

/// The mapping keys of dynamic output `root`, as the run that stored it stored them.
fn stored_mapping_keys(
    io: &dyn IoManager,
    root: &crate::plan::PlanSource,
) -> Result<Vec<String>, RunError> {
    let run_id = root.run.as_deref().unwrap_or_default();
    crate::dynamic::read_keys(io, run_id, root).map_err(|reason| RunError::Parent {
        run_id: run_id.to_owned(),
        reason: format!("cannot read the mapping keys of dynamic output `{root}`: {reason}"),
    })
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
            live_progress: false,
            cancel_on_interrupt: false,
            selection: None,
            parent: None,
            reexecute: false,
            from_failure: false,
            no_cache: false,
        }
    }

    /// Runs only the steps that `selection` selects (Dagster's op selection syntax: see
    /// [`Selection`]); checked before the run starts.
    pub fn select(mut self, selection: impl Into<String>) -> Self {
        self.selection = Some(selection.into());
        self
    }

    /// With [`select`](Self::select): inputs from steps that are not selected read the
    /// outputs run `run_id` stored (on the same storage).
    pub fn from_run(mut self, run_id: impl Into<String>) -> Self {
        self.parent = Some(run_id.into());
        self
    }

    /// Re-executes run `run_id` (Dagster's re-execution): a new run of the same job whose
    /// `RUN_START` names its parent; with [`select`](Self::select) or
    /// [`from_failure`](Self::from_failure), only those steps, their other inputs read from
    /// the parent's stored outputs (not copied).
    pub fn reexecute(mut self, run_id: impl Into<String>) -> Self {
        self.parent = Some(run_id.into());
        self.reexecute = true;
        self
    }

    /// With [`reexecute`](Self::reexecute): only the steps that did not end well in the
    /// parent (failed, never ended, or downstream of one), as its event log tells.
    pub fn from_failure(mut self, on: bool) -> Self {
        self.from_failure = on;
        self
    }

    /// Runs every step, even those whose op has a code version and whose outputs an earlier
    /// run stored for the same config and inputs (see
    /// [`OpDef::code_version`](crate::op::OpDef::code_version)).
    pub fn no_cache(mut self, on: bool) -> Self {
        self.no_cache = on;
        self
    }

    /// The part of the job this run runs (`None`: all of it), checked: the outputs it reads
    /// from the parent run are stored.
    fn part(&self, io: &dyn IoManager) -> Result<Option<Part>, RunError> {
        let parent = match &self.parent {
            Some(p) => Some(RunId::parse(p)?.0),
            None => None,
        };
        if self.selection.is_none() && !self.from_failure {
            return Ok(None);
        }
        let plan = self.job.plan();
        let mut keep = match &self.selection {
            Some(expr) => Selection::parse(expr)?.steps(plan)?,
            None => vec![true; plan.steps.len()],
        };
        if let (true, Some(parent)) = (self.from_failure, &parent) {
            let unfinished = unfinished_steps(plan, &parent_events(io, parent)?);
            for (k, u) in keep.iter_mut().zip(unfinished) {
                *k &= u;
            }
        }
        // What step processes select: the selection, or these steps by key.
        let expr = match (&self.selection, self.from_failure) {
            (Some(expr), false) => expr.clone(),
            _ => plan
                .steps
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(s, _)| s.key.as_str())
                .collect::<Vec<_>>()
                .join(","),
        };
        let job = part_of(self.job, &keep, parent.as_deref(), &expr)?;
        let mut missing = Vec::new();
        for step in &job.plan().steps {
            for input in &step.inputs {
                for source in input.sources.iter().filter(|s| s.run.is_some()) {
                    // (values per mapping key: the keys of their dynamic output are stored)
                    let keys_output;
                    let (step_key, output) = match (&input.root, input.fan) {
                        (Some(root), Fan::Each | Fan::All) => {
                            keys_output = crate::dynamic::keys_output(&root.output);
                            (root.step.as_str(), keys_output.as_str())
                        }
                        _ => (source.step.as_str(), source.output.as_str()),
                    };
                    let key = OutputKey {
                        run_id: source.run.as_deref().unwrap_or_default(),
                        step: step_key,
                        output,
                    };
                    if io.size(key).is_err() {
                        missing.push(format!(
                            "step `{}` input `{}` <- {source}: not stored there ({})",
                            step.key,
                            input.name,
                            io.location(key)
                        ));
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(SelectionError::MissingInputs {
                expr,
                inputs: missing,
            }
            .into());
        }
        // (`--from` goes with `--select`; nothing left to run starts no step process)
        let mut step_args = Vec::new();
        if !job.plan().steps.is_empty() {
            step_args.extend(["--select".to_owned(), expr]);
            if let Some(parent) = &parent {
                step_args.extend(["--from".to_owned(), parent.clone()]);
            }
        }
        let reused = match (self.from_failure, &parent) {
            (true, Some(parent)) => finished_steps(&parent_events(io, parent)?),
            _ => HashSet::new(),
        };
        Ok(Some(Part {
            job,
            step_args,
            reused,
        }))
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

    /// With [`console`](Self::console): a live progress display (steps done, running,
    /// failed; the steps running now; time and estimate) instead of a line per event; logs,
    /// output lines and failures print above it. It is drawn only on a terminal.
    pub fn live_progress(mut self, on: bool) -> Self {
        self.live_progress = on;
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
        let io = match &self.io {
            Some(io) => Arc::clone(io),
            None => open_io_manager(&self.config.io_manager)?,
        };
        io.preflight()?;
        if self.parent.is_some() && !self.reexecute && self.selection.is_none() {
            return Err(RunError::Parent {
                run_id: self.parent.clone().unwrap_or_default(),
                reason: "`from_run` reads what steps outside a selection need: add `select`, or \
                         use `reexecute`"
                    .to_owned(),
            });
        }
        let part = self.part(io.as_ref())?;
        let job = part.as_ref().map_or(self.job, |p| &p.job);
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
        let plan = job.plan();
        // (a mapped step of the plan counts once its steps are made)
        let fixed_steps = plan.steps.iter().filter(|s| s.mapped.is_none()).count();
        let log = log.with_progress(fixed_steps);
        let log = Arc::new(if self.live_progress {
            log.with_live_progress(fixed_steps)
        } else {
            log
        });
        let sink: Arc<dyn EventSink> = Arc::clone(&log) as Arc<dyn EventSink>;
        let interrupts = Arc::new(InterruptHook::default());
        let run = RunContext {
            job,
            run_id: run_id.as_str(),
            config: &self.config,
            io: io.as_ref(),
            sink: Arc::clone(&sink),
            interrupts: Arc::clone(&interrupts),
            resources: Arc::new(crate::resource::Resources::new(
                run_id.as_str(),
                job.resources(),
                &self.config.resources,
            )),
            step_args: {
                let mut args = part
                    .as_ref()
                    .map(|p| p.step_args.clone())
                    .unwrap_or_default();
                if self.no_cache {
                    args.push("--no-cache".to_owned());
                }
                if let Some(filter) = crate::events::filter_directives() {
                    args.extend(["--log-filter".to_owned(), filter.to_owned()]);
                }
                args
            },
            cache: !self.no_cache,
        };
        executor.prepare(&run)?;
        let mut state = RunState::new(plan, run_id.as_str(), Arc::clone(&sink));
        let (marks, marked_run) = (Arc::clone(&io), run_id.0.clone());
        state.set_mark_not_produced(Box::new(move |step, outputs| {
            for output in outputs {
                let key = OutputKey {
                    run_id: &marked_run,
                    step,
                    output,
                };
                marks
                    .store(key, crate::codec::not_produced())
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }));
        // The steps of dynamic outputs another run stored, made before the run starts.
        for (part_index, root) in state.external_parts() {
            let keys = stored_mapping_keys(io.as_ref(), &root)?;
            let reused = part.as_ref().map(|p| &p.reused);
            state.expand_external(part_index, keys, &|key| {
                reused.is_some_and(|r| r.contains(key))
            });
        }
        let state = Arc::new(SharedState::new(state));
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
        // The run's summary on its storage (and the events, where the storage cannot append),
        // from RUN_START on; not for outputs kept in memory.
        if io.is_shared() {
            log.store_on(Arc::clone(&io), run_id.as_str(), io.local_base().is_none());
        }
        let started = Instant::now();
        state
            .lock()
            .set_run_limit(self.config.max_runtime.or_else(|| plan.max_runtime()));
        sink.emit(Event::new(
            run_id.as_str(),
            None,
            EventKind::RunStart {
                job: plan.job.clone(),
                executor: executor.name(),
                steps: fixed_steps,
                parent_run_id: self.parent.clone(),
            },
        ));
        let engine_error = executor.execute(&run, &state).err().map(|e| e.to_string());
        let mut state = state.lock();
        let status = state.finish(started.elapsed(), engine_error.as_deref());
        let stored_log = log.close();
        let outcomes = state.outcomes();
        let events = log.take_events();
        // The HTML report beside the event log, for runs whose storage outlives them.
        let report = io.is_shared().then(|| {
            let html = crate::report::render(plan, run_id.as_str(), &events);
            io.put_run_file(
                run_id.as_str(),
                crate::report::REPORT_FILE,
                html.into_bytes(),
            )
            .map_err(|e| e.to_string())
        });
        Ok(RunResult {
            status,
            outputs: outcomes
                .iter()
                .map(|(key, _)| {
                    // (a step made for a mapping key has its template's outputs)
                    let template =
                        crate::dynamic::split_instance(key).map_or(key.as_str(), |(t, _)| t);
                    let names = plan
                        .step(template)
                        .map(|s| s.outputs.iter().map(|o| o.name.clone()).collect())
                        .unwrap_or_default();
                    (key.clone(), names)
                })
                .collect(),
            steps: outcomes.into_iter().collect(),
            events,
            report,
            output_lines_in_file_only: log.output_lines_in_file_only(),
            event_log: log.path().map(Path::to_owned),
            stored_log: stored_log.filter(|_| io.local_base().is_none()),
            io,
            job: plan.job.clone(),
            engine_error,
            run_id: run_id.0,
        })
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
