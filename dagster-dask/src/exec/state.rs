//! The run state machine: how a run's steps go, each rule written once.
//!
//! Every executor drives a [`RunState`]: it asks which step may run next (or is told by its
//! cluster that one started), and reports how each attempt ended. The state decides the rest
//! and emits the event of every transition: success, retry (with the policy's delay), final
//! failure, the skips downstream of a failure or of an output that was not produced, cancel,
//! and the run's own end. An executor only decides where and when a step runs.
//!
//! Steps are addressed by index: the plan's steps first, at their plan index, then the steps
//! made while the run goes. A mapped step of the plan is a template that never runs: when
//! the dynamic output it is mapped over has been stored, the state makes one step per mapping
//! key from it (see `expansion`), and the steps that collect them wait for all of those.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use super::expansion::{Expansions, Upstream};
use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, EventKind, EventSink};
use crate::op::RetryPolicy;
use crate::plan::Plan;
use crate::run::{RunStatus, StepStatus};

/// How one attempt of a step ended, as whoever ran it reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum AttemptEnd {
    /// Its outputs are stored.
    Success {
        /// Time spent in the attempt, milliseconds.
        duration_ms: f64,
        /// The optional outputs it did not produce, by position.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        not_produced: Vec<usize>,
        /// The mapping keys of each dynamic output (by position), in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mapping_keys: Vec<(usize, Vec<String>)>,
    },
    /// It failed; the state decides whether to try again.
    Failure(ErrorInfo),
}

/// Stores the "not produced" mark of each output (names) of a skipped step (key).
pub(crate) type MarkFn = Box<dyn Fn(&str, &[String]) -> Result<(), String> + Send>;

/// Why a step is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// These upstream steps failed or were skipped.
    Upstream(Vec<usize>),
    /// Upstream steps ended without producing outputs this step needs: optional outputs
    /// left out (`step.output`), and upstream steps skipped so.
    NotProduced {
        /// The optional outputs, as `step.output`.
        outputs: Vec<String>,
        /// The skipped upstream steps.
        skipped: Vec<String>,
    },
}

/// An input of a gated step (see [`Plan::gated`]): whether the step can run depends on what
/// its upstream steps produced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GatedInput {
    /// A fan-in list runs with the items produced; a single input needs its one source.
    fan_in: bool,
    /// (step, output) of each source.
    sources: Vec<(usize, usize)>,
}

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Some upstream step has not succeeded yet.
    Waiting,
    /// Every upstream step succeeded: it may run (queued, or handed to a cluster).
    Ready,
    /// An attempt was taken by an executor thread or said it started on a worker.
    Running,
    /// An attempt failed; the next one is due at the retry time.
    RetryWait,
    /// It ended; `StepStatus` says how.
    Ended,
}

/// What an embedded executor thread should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Run attempt `.1` of step `.0`.
    Run(usize, u32),
    /// Nothing to run now: wait for another step to end, or at most this long for a retry.
    Wait(Option<Duration>),
    /// The run is over.
    Done,
}

/// One step's place in the run.
#[derive(Debug)]
struct StepState {
    key: String,
    /// The plan step it runs: itself, or the template it was made from.
    plan: usize,
    /// A template: a mapped step of the plan, which never runs (steps are made from it).
    template: bool,
    /// Made from a template: the executor of a cluster submits it when told (like a gated
    /// step), since the cluster did not know it when the run started.
    made: bool,
    policy: RetryPolicy,
    upstream: Vec<usize>,
    downstream: Vec<usize>,
    /// Upstream steps that have not succeeded yet.
    remaining: usize,
    phase: Phase,
    status: StepStatus,
    /// The current attempt, from 1.
    attempt: u32,
    /// When the current attempt started, as this process saw it; `None` until it has.
    started: Option<Instant>,
    /// Whether an executor thread took the current attempt with [`RunState::next`].
    taken: bool,
    /// The op's `dagster/max_runtime`: the longest one attempt may take.
    max_runtime: Option<Duration>,
    /// Where its last attempt ran, when a cluster ran it: stamped on its events.
    worker: Option<String>,
    /// Whether it is gated (see [`Plan::gated`]): then its inputs, else nothing.
    gated: Option<Vec<GatedInput>>,
    /// The names of its outputs (for skip messages; empty for steps no gated step reads).
    output_names: Vec<String>,
    /// The outputs it did not produce, by position: optional ones of a successful attempt,
    /// or all of them when it was skipped.
    not_produced: Vec<usize>,
}

/// The state of one run's steps.
pub(crate) struct RunState {
    run_id: String,
    sink: Arc<dyn EventSink>,
    steps: Vec<StepState>,
    /// Ready steps in plan order, for executors that pull work.
    ready: BinaryHeap<Reverse<usize>>,
    retries: Vec<(Instant, usize)>,
    /// Attempts taken with [`next`](Self::next) and not ended.
    taken: usize,
    ended: usize,
    canceled: Option<String>,
    /// When the whole run must have ended, and its limit.
    run_deadline: Option<(Instant, Duration)>,
    /// Whether the cancel was the run passing its deadline: the run then fails.
    timed_out: bool,
    /// Gated steps made ready, not yet taken with [`take_released`](Self::take_released).
    released: Vec<usize>,
    /// Stores the mark of "not produced" for the outputs (names) of a skipped step (key), so
    /// that a fan-in reading them, in any process, tells them from missing ones.
    mark_not_produced: Option<MarkFn>,
    /// The dynamic parts of the plan, and the steps made for them.
    expansions: Expansions,
    /// Steps made while the run goes, not yet taken with [`take_made`](Self::take_made).
    made: Vec<usize>,
    /// Every step's index by key.
    by_key: HashMap<String, usize>,
    rng: fastrand::Rng,
}

impl std::fmt::Debug for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunState")
            .field("run_id", &self.run_id)
            .field("steps", &self.steps)
            .field("canceled", &self.canceled)
            .finish_non_exhaustive()
    }
}

impl RunState {
    /// Every step of `plan` waiting for its upstream steps.
    pub(crate) fn new(plan: &Plan, run_id: &str, sink: Arc<dyn EventSink>) -> Self {
        let mut state = Self {
            run_id: run_id.to_owned(),
            sink,
            steps: Vec::with_capacity(plan.steps.len()),
            ready: BinaryHeap::new(),
            retries: Vec::new(),
            taken: 0,
            ended: 0,
            canceled: None,
            run_deadline: None,
            timed_out: false,
            released: Vec::new(),
            mark_not_produced: None,
            expansions: Expansions::new(plan),
            made: Vec::new(),
            by_key: HashMap::with_capacity(plan.steps.len()),
            rng: fastrand::Rng::new(),
        };
        for (i, (step, upstream)) in plan.steps.iter().zip(plan.upstream()).enumerate() {
            if step.mapped.is_some() {
                state.push_template(step.key.clone());
                continue;
            }
            // A step that collects a dynamic part waits for its producer (the templates in
            // between never run), and is held until the part's steps are made.
            let mut upstream: Vec<usize> = upstream
                .iter()
                .filter_map(|&u| match &plan.steps[u].mapped {
                    None => Some(u),
                    Some(root) if root.run.is_none() => plan.index_of(&root.step),
                    Some(_) => None,
                })
                .collect();
            upstream.sort_unstable();
            upstream.dedup();
            let held = state.expansions.collected_by(i);
            state.push_step(
                step.key.clone(),
                i,
                step.retry_policy,
                step.tags.max_runtime(),
                upstream,
                held,
            );
        }
        state.gate(plan);
        state
    }

    /// The dynamic outputs another run stored (a selection's parent), whose mapping keys
    /// the executor reads and hands to [`expand_external`](Self::expand_external) before
    /// the run starts.
    pub(crate) fn external_parts(&self) -> Vec<(usize, crate::plan::PlanSource)> {
        self.expansions
            .external()
            .map(|(i, root)| (i, root.clone()))
            .collect()
    }

    /// Makes the steps of external part `part` (see [`external_parts`](Self::external_parts))
    /// for `keys`, but for those (keys) that `reused` says the parent run finished.
    pub(crate) fn expand_external(
        &mut self,
        part: usize,
        keys: Vec<String>,
        reused: &dyn Fn(&str) -> bool,
    ) {
        self.expand(part, None, &keys, reused);
    }

    /// Makes one step per mapping key from each template of part `part`, after `producer`
    /// (the state index of the step that stored the keys), and releases the steps that
    /// collect the part: they now wait for the steps made, or are skipped when there are
    /// none (an empty dynamic output).
    fn expand(
        &mut self,
        part: usize,
        producer: Option<usize>,
        keys: &[String],
        reused: &dyn Fn(&str) -> bool,
    ) {
        let templates: Vec<(usize, Vec<Upstream>)> = self.expansions.parts[part]
            .templates
            .iter()
            .map(|t| (t.plan, t.upstream.clone()))
            .collect();
        for (t, (template, upstream)) in templates.into_iter().enumerate() {
            let (policy, max_runtime, base) = {
                let s = &self.steps[template];
                (s.policy, s.max_runtime, s.key.clone())
            };
            let mut made = Vec::with_capacity(keys.len());
            for (p, key) in keys.iter().enumerate() {
                let key = crate::dynamic::instance_key(&base, key);
                if reused(&key) {
                    made.push(None);
                    continue;
                }
                let upstream = upstream
                    .iter()
                    .filter_map(|up| match *up {
                        Upstream::Producer => producer,
                        Upstream::Step(u) => Some(u),
                        Upstream::Template(q) => self.expansions.parts[part].templates[q].made[p],
                    })
                    .collect();
                let i = self.push_step(key, template, policy, max_runtime, upstream, 0);
                made.push(Some(i));
            }
            let count = made.iter().flatten().count();
            self.made.extend(made.iter().flatten());
            self.sink.steps_made(count);
            self.expansions.parts[part].templates[t].made = made;
        }
        let collectors = self.expansions.parts[part].collectors.clone();
        let root = self.expansions.parts[part].root.to_string();
        for (c, reads) in collectors {
            let made: Vec<usize> = reads
                .iter()
                .flat_map(|&t| self.expansions.parts[part].templates[t].made.clone())
                .flatten()
                .collect();
            if keys.is_empty() {
                self.steps[c].remaining -= 1;
                self.skip(
                    c,
                    SkipReason::NotProduced {
                        outputs: vec![format!("{root} (no mapping keys)")],
                        skipped: Vec::new(),
                    },
                );
                continue;
            }
            for &u in &made {
                self.steps[u].downstream.push(c);
                self.steps[c].upstream.push(u);
                self.steps[c].remaining += 1;
            }
            self.steps[c].remaining -= 1;
            self.settle(c);
        }
    }

    /// The steps made while the run went since the last call, for executors that tell a
    /// cluster about them.
    pub(crate) fn take_made(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.made)
    }

    /// How many steps there are (made ones included).
    pub(crate) fn len(&self) -> usize {
        self.steps.len()
    }

    /// The key of step `i`.
    pub(crate) fn key(&self, i: usize) -> &str {
        &self.steps[i].key
    }

    /// The index of the step with key `key`.
    pub(crate) fn index_of(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// Whether step `i` is a template (see the module): it never runs.
    pub(crate) fn is_template(&self, i: usize) -> bool {
        self.steps[i].template
    }

    /// Whether step `i` was made while the run went.
    pub(crate) fn is_made(&self, i: usize) -> bool {
        self.steps[i].made
    }

    /// The plan step that step `i` runs (for a step made from a template: the template).
    pub(crate) fn plan_index(&self, i: usize) -> usize {
        self.steps[i].plan
    }

    /// The upstream steps of step `i`, by index.
    pub(crate) fn upstream_of(&self, i: usize) -> &[usize] {
        &self.steps[i].upstream
    }

    /// Each step's key and status, templates left out: how the run's steps went.
    pub(crate) fn outcomes(&self) -> Vec<(String, StepStatus)> {
        self.steps
            .iter()
            .filter(|s| !s.template)
            .map(|s| (s.key.clone(), s.status))
            .collect()
    }

    /// Checks the mapping keys a successful attempt of step `i` reports: one list per
    /// dynamic output of its op, each valid. The keys come from a step process.
    fn check_mapping_keys(
        &self,
        i: usize,
        mapping_keys: &[(usize, Vec<String>)],
    ) -> Result<(), String> {
        let dynamic = self.expansions.dynamic_outputs(self.steps[i].plan);
        if let Some((k, _)) = mapping_keys.iter().find(|(k, _)| !dynamic.contains(k)) {
            return Err(format!("output #{k} is not a dynamic output of the step"));
        }
        for k in dynamic {
            let Some((_, keys)) = mapping_keys.iter().find(|(o, _)| *o == k) else {
                return Err(format!(
                    "it did not report the mapping keys of dynamic output #{k}"
                ));
            };
            crate::dynamic::check_keys(keys.iter().map(String::as_str))?;
        }
        Ok(())
    }

    /// Notes the gated steps' inputs, and the names of the outputs they read.
    fn gate(&mut self, plan: &Plan) {
        for (i, gated) in plan.gated().into_iter().enumerate() {
            if !gated {
                continue;
            }
            let mut inputs = Vec::new();
            for input in &plan.steps[i].inputs {
                let sources: Vec<(usize, usize)> = input
                    .sources
                    .iter()
                    .filter_map(|src| {
                        let u = plan.index_of(&src.step)?;
                        let k = plan.steps[u]
                            .outputs
                            .iter()
                            .position(|o| o.name == src.output)?;
                        Some((u, k))
                    })
                    .collect();
                for &(u, _) in &sources {
                    if self.steps[u].output_names.is_empty() {
                        self.steps[u].output_names = plan.steps[u]
                            .outputs
                            .iter()
                            .map(|o| o.name.clone())
                            .collect();
                    }
                }
                inputs.push(GatedInput {
                    fan_in: input.fan_in,
                    sources,
                });
            }
            self.steps[i].gated = Some(inputs);
        }
    }

    /// Has `mark` store the "not produced" mark of the outputs of steps skipped because what
    /// they read was not produced (called under the state's lock, before a step that reads
    /// them can be released: rare, and never on a run without optional outputs).
    pub(crate) fn set_mark_not_produced(&mut self, mark: MarkFn) {
        self.mark_not_produced = Some(mark);
    }

    /// The gated steps that became ready to run (their first attempt), for executors that
    /// submit them to a cluster which does not know what was produced.
    pub(crate) fn take_released(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.released)
    }

    /// Why step `i`, whose upstream steps all ended without failing, cannot run: an input of
    /// it that was not produced (a fan-in list: none of its items).
    fn unproduced_input(&self, i: usize) -> Option<SkipReason> {
        let (mut outputs, mut skipped) = (Vec::new(), Vec::new());
        for input in self.steps[i].gated.iter().flatten() {
            let absent: Vec<(usize, usize)> = input
                .sources
                .iter()
                .copied()
                .filter(|&(u, k)| self.steps[u].not_produced.contains(&k))
                .collect();
            let runs = if input.fan_in {
                absent.len() < input.sources.len()
            } else {
                absent.is_empty()
            };
            if runs {
                continue;
            }
            for (u, k) in absent {
                let up = &self.steps[u];
                if up.status == StepStatus::Skipped {
                    if !skipped.contains(&up.key) {
                        skipped.push(up.key.clone());
                    }
                } else {
                    let name = up.output_names.get(k).map_or("?", String::as_str);
                    outputs.push(format!("{}.{name}", up.key));
                }
            }
        }
        let any = !(outputs.is_empty() && skipped.is_empty());
        any.then_some(SkipReason::NotProduced { outputs, skipped })
    }

    /// Limits the whole run to `limit` from now: then nothing more starts, running attempts
    /// time out, and the run fails.
    pub(crate) fn set_run_limit(&mut self, limit: Option<Duration>) {
        self.run_deadline = limit.map(|d| (Instant::now() + d, d));
    }

    /// A template (see the module): ended from the start, it never runs.
    fn push_template(&mut self, key: String) {
        let index = self.steps.len();
        self.push_step(key, index, RetryPolicy::default(), None, Vec::new(), 1);
        let step = &mut self.steps[index];
        step.template = true;
        step.phase = Phase::Ended;
        self.ended += 1;
    }

    /// Adds a step that runs plan step `plan` after `upstream` (indices of steps already
    /// added) and `held` releases (see [`expand`](Self::expand)), each attempt within
    /// `max_runtime`; returns its index. An upstream step that already failed or was skipped
    /// skips it at once.
    fn push_step(
        &mut self,
        key: String,
        plan: usize,
        policy: RetryPolicy,
        max_runtime: Option<Duration>,
        upstream: Vec<usize>,
        held: usize,
    ) -> usize {
        let index = self.steps.len();
        let made = index != plan;
        let remaining = held
            + upstream
                .iter()
                .filter(|&&u| self.steps[u].status != StepStatus::Succeeded)
                .count();
        let doomed: Vec<usize> = upstream
            .iter()
            .copied()
            .filter(|&u| {
                matches!(
                    self.steps[u].status,
                    StepStatus::Failed | StepStatus::Skipped
                )
            })
            .collect();
        for &u in &upstream {
            self.steps[u].downstream.push(index);
        }
        self.by_key.insert(key.clone(), index);
        self.steps.push(StepState {
            key,
            plan,
            template: false,
            made,
            policy,
            upstream,
            downstream: Vec::new(),
            remaining,
            phase: Phase::Waiting,
            status: StepStatus::NotRun,
            attempt: 1,
            started: None,
            taken: false,
            max_runtime,
            worker: None,
            gated: None,
            output_names: Vec::new(),
            not_produced: Vec::new(),
        });
        if !doomed.is_empty() {
            self.skip(index, SkipReason::Upstream(doomed));
        } else if remaining == 0 {
            self.make_ready(index);
        }
        index
    }

    fn make_ready(&mut self, i: usize) {
        self.steps[i].phase = Phase::Ready;
        self.ready.push(Reverse(i));
        let step = &self.steps[i];
        if (step.gated.is_some() || step.made) && step.attempt == 1 {
            self.released.push(i);
        }
    }

    fn emit(&self, step: Option<usize>, kind: EventKind) {
        let key = step.map(|i| self.steps[i].key.as_str());
        let mut event = Event::new(&self.run_id, key, kind);
        event.worker = step.and_then(|i| self.steps[i].worker.clone());
        self.sink.emit(event);
    }

    /// The worker step `i` last ran on, when a cluster ran it.
    pub(crate) fn worker(&self, i: usize) -> Option<&str> {
        self.steps[i].worker.as_deref()
    }

    /// Records the worker that runs step `i`'s current attempt.
    pub(crate) fn set_worker(&mut self, i: usize, worker: Option<String>) {
        if worker.is_some() {
            self.steps[i].worker = worker;
        }
    }

    /// The current attempt of step `i`.
    pub(crate) fn attempt(&self, i: usize) -> u32 {
        self.steps[i].attempt
    }

    /// How step `i` stands (`NotRun` until it ends).
    pub(crate) fn status(&self, i: usize) -> StepStatus {
        self.steps[i].status
    }

    /// Whether the current attempt of step `i` has started.
    pub(crate) fn started(&self, i: usize) -> bool {
        self.steps[i].started.is_some()
    }

    /// Whether step `i` waits for nothing: it has not ended and every upstream step succeeded.
    pub(crate) fn is_ready(&self, i: usize) -> bool {
        self.steps[i].phase == Phase::Ready
    }

    /// Every step's status, by index.
    #[cfg(test)]
    pub(crate) fn statuses(&self) -> Vec<StepStatus> {
        self.steps.iter().map(|s| s.status).collect()
    }

    /// The keys of the steps with status `wanted` (`NotRun`: not ended yet), in index order.
    pub(crate) fn keys_with(&self, wanted: StepStatus) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.status == wanted && !s.template)
            .map(|s| s.key.clone())
            .collect()
    }

    /// Whether every step has ended.
    pub(crate) fn all_ended(&self) -> bool {
        self.ended == self.steps.len()
    }

    /// Why the run was canceled, once it was.
    pub(crate) fn canceled(&self) -> Option<&str> {
        self.canceled.as_deref()
    }

    /// Takes the next step to run, for executors that run steps themselves.
    pub(crate) fn next(&mut self, now: Instant) -> Next {
        self.check_run_deadline(now);
        if self.canceled.is_some() {
            return if self.taken == 0 {
                Next::Done
            } else {
                Next::Wait(None)
            };
        }
        self.due_retries(now);
        if let Some(Reverse(i)) = self.ready.pop() {
            self.taken += 1;
            let step = &mut self.steps[i];
            step.phase = Phase::Running;
            step.started = Some(now);
            step.taken = true;
            return Next::Run(i, step.attempt);
        }
        if self.all_ended() || (self.taken == 0 && self.retries.is_empty()) {
            return Next::Done;
        }
        Next::Wait(
            [self.next_retry_in(now), self.run_deadline_in(now)]
                .into_iter()
                .flatten()
                .min(),
        )
    }

    /// When the current attempt of step `i` must have ended: its op's `max_runtime` after
    /// it started, or the run's deadline, whichever comes first.
    pub(crate) fn deadline(&self, i: usize) -> Option<Instant> {
        let step = &self.steps[i];
        let own = step.started.zip(step.max_runtime).map(|(t, d)| t + d);
        own.into_iter()
            .chain(self.run_deadline.map(|(at, _)| at))
            .min()
    }

    /// How long until the run's deadline, when it has one.
    pub(crate) fn run_deadline_in(&self, now: Instant) -> Option<Duration> {
        self.run_deadline
            .map(|(at, _)| at.saturating_duration_since(now))
    }

    /// Stops the run once it is past its deadline: nothing more starts, nothing is retried,
    /// and the run will fail. Returns `true` the one time it stops it.
    pub(crate) fn check_run_deadline(&mut self, now: Instant) -> bool {
        let Some((at, limit)) = self.run_deadline else {
            return false;
        };
        if now < at || self.timed_out || self.all_ended() {
            return false;
        }
        let why = format!("the run passed its max_runtime of {}", seconds(limit));
        if self.cancel(&why) {
            self.timed_out = true;
            self.emit(None, EventKind::EngineEvent { message: why });
            return true;
        }
        false
    }

    /// Each running attempt that has a deadline, with it.
    fn running_deadlines(&self) -> impl Iterator<Item = (usize, Instant)> + '_ {
        (0..self.steps.len())
            .filter(|&i| self.steps[i].started.is_some() && self.steps[i].phase == Phase::Running)
            .filter_map(|i| Some((i, self.deadline(i)?)))
    }

    /// Started attempts that are past their deadline by more than `grace`: for executors
    /// whose workers enforce the limit themselves, the ones whose worker did not.
    pub(crate) fn overdue(&self, now: Instant, grace: Duration) -> Vec<(usize, u32)> {
        self.running_deadlines()
            .filter(|&(_, at)| now >= at + grace)
            .map(|(i, _)| (i, self.steps[i].attempt))
            .collect()
    }

    /// How long until the next started attempt is overdue by `grace`.
    pub(crate) fn next_overdue_in(&self, now: Instant, grace: Duration) -> Option<Duration> {
        self.running_deadlines()
            .map(|(_, at)| (at + grace).saturating_duration_since(now))
            .min()
    }

    /// Ends attempt `attempt` of step `i` as timed out (`why` adds how it was stopped): past
    /// the run's deadline the run stops; past the op's own limit the retry policy applies.
    pub(crate) fn time_out(
        &mut self,
        i: usize,
        attempt: u32,
        now: Instant,
        why: &str,
    ) -> Result<(), String> {
        self.check_current(i, attempt)?;
        self.check_run_deadline(now);
        let step = &self.steps[i];
        let message = match (self.timed_out, step.max_runtime) {
            (false, Some(limit)) => format!(
                "step `{}` attempt {attempt} ran past its max_runtime of {}{why}",
                step.key,
                seconds(limit)
            ),
            _ => format!(
                "step `{}` attempt {attempt} was stopped: {}{why}",
                step.key,
                self.canceled
                    .as_deref()
                    .unwrap_or("the run passed its max_runtime")
            ),
        };
        self.end_attempt(
            i,
            attempt,
            AttemptEnd::Failure(ErrorInfo::new(ErrorKind::Timeout, message)),
        )
    }

    /// The retries that are due: each step is ready again, at its new attempt. Executors that
    /// hand steps to a cluster resubmit these.
    pub(crate) fn due_retries(&mut self, now: Instant) -> Vec<(usize, u32)> {
        if self.canceled.is_some() {
            return Vec::new();
        }
        let mut due = Vec::new();
        self.retries.retain(|&(at, i)| {
            let is_due = at <= now;
            if is_due {
                due.push(i);
            }
            !is_due
        });
        due.sort_unstable();
        due.into_iter()
            .map(|i| {
                self.make_ready(i);
                (i, self.steps[i].attempt)
            })
            .collect()
    }

    /// How long until the next retry is due.
    pub(crate) fn next_retry_in(&self, now: Instant) -> Option<Duration> {
        self.retries
            .iter()
            .map(|(at, _)| at.saturating_duration_since(now))
            .min()
    }

    /// Checks an event that the process running attempt `attempt` of step `i` sent, before
    /// it is recorded: it must be about the current attempt of a step that has not ended, and
    /// be a kind a step process may send (the state alone decides how a step ends). A start
    /// marks the attempt started.
    pub(crate) fn accept_step_event(
        &mut self,
        i: usize,
        attempt: u32,
        kind: &EventKind,
    ) -> Result<(), String> {
        self.check_current(i, attempt)?;
        let step = &mut self.steps[i];
        match kind {
            EventKind::StepStart | EventKind::StepRestarted { .. } => {
                let fits = match kind {
                    EventKind::StepRestarted { attempt: a } => *a == attempt && attempt > 1,
                    _ => attempt == 1,
                };
                if !fits {
                    return Err(format!(
                        "a {} does not start attempt {attempt}",
                        kind.type_name()
                    ));
                }
                // (a start of an attempt that started already is the cluster running it
                // again, as Dask does when it loses the worker that held its result)
                step.started.get_or_insert_with(Instant::now);
                step.phase = Phase::Running;
                Ok(())
            }
            EventKind::LoadedInput { .. }
            | EventKind::StepOutput { .. }
            | EventKind::HandledOutput { .. }
            | EventKind::Log { .. } => Ok(()),
            other => Err(format!(
                "a step process may not send {} (the run decides how a step ends)",
                other.type_name()
            )),
        }
    }

    fn check_current(&self, i: usize, attempt: u32) -> Result<(), String> {
        let step = &self.steps[i];
        if step.phase == Phase::Ended {
            return Err(format!("step `{}` has already ended", step.key));
        }
        if attempt != step.attempt {
            return Err(format!(
                "step `{}` is at attempt {}, not {attempt}",
                step.key, step.attempt
            ));
        }
        Ok(())
    }

    /// Records how attempt `attempt` of step `i` ended: success readies its downstream
    /// steps; a failure is retried while the op's policy allows and the error can change,
    /// else it fails the step and skips everything downstream of it.
    pub(crate) fn end_attempt(
        &mut self,
        i: usize,
        attempt: u32,
        end: AttemptEnd,
    ) -> Result<(), String> {
        self.check_current(i, attempt)?;
        let step = &mut self.steps[i];
        if std::mem::take(&mut step.taken) {
            self.taken -= 1;
        }
        step.started = None;
        match end {
            AttemptEnd::Success {
                duration_ms,
                not_produced,
                mapping_keys,
            } => {
                if let Err(problem) = self.check_mapping_keys(i, &mapping_keys) {
                    let message = format!(
                        "step `{}` stored its outputs, but its mapping keys cannot be used: \
                         {problem}",
                        self.steps[i].key
                    );
                    // (deterministic: the same op returns the same keys)
                    let error = ErrorInfo::new(ErrorKind::Output, message);
                    self.emit(Some(i), EventKind::StepFailure { attempt, error });
                    self.end(i, StepStatus::Failed);
                    self.skip_downstream(i);
                    return Ok(());
                }
                self.emit(Some(i), EventKind::StepSuccess { duration_ms });
                // (before it ends: the steps made count it as an upstream step not yet
                // succeeded, as its other downstream steps do)
                let plan = self.steps[i].plan;
                for (k, keys) in mapping_keys {
                    if let Some(part) = self.expansions.produced_by(plan, k) {
                        self.expand(part, Some(i), &keys, &|_| false);
                    }
                }
                self.end(i, StepStatus::Succeeded);
                self.steps[i].not_produced = not_produced;
                self.settle_downstream(i);
            }
            AttemptEnd::Failure(error) => {
                let policy = self.steps[i].policy;
                if error.is_retryable() && attempt <= policy.max_retries && self.canceled.is_none()
                {
                    let delay = policy.delay_before(attempt, &mut self.rng);
                    self.emit(
                        Some(i),
                        EventKind::StepUpForRetry {
                            attempt,
                            delay_ms: delay.as_secs_f64() * 1e3,
                            error,
                        },
                    );
                    let step = &mut self.steps[i];
                    step.attempt += 1;
                    step.phase = Phase::RetryWait;
                    self.retries.push((Instant::now() + delay, i));
                } else {
                    self.emit(Some(i), EventKind::StepFailure { attempt, error });
                    self.end(i, StepStatus::Failed);
                    self.skip_downstream(i);
                }
            }
        }
        Ok(())
    }

    /// Step `i` ended without failing: each step downstream of it that waits for nothing
    /// else runs, or is skipped when an input of it was not produced.
    fn settle_downstream(&mut self, i: usize) {
        // (by position: no copy of the list on this hot path)
        for k in 0..self.steps[i].downstream.len() {
            let d = self.steps[i].downstream[k];
            self.steps[d].remaining -= 1;
            self.settle(d);
        }
    }

    /// Step `d`, if it waits for nothing any more, runs, or is skipped when an input of it
    /// was not produced.
    fn settle(&mut self, d: usize) {
        let step = &self.steps[d];
        if step.remaining == 0 && step.phase == Phase::Waiting {
            match self.unproduced_input(d) {
                Some(reason) => self.skip(d, reason),
                None => self.make_ready(d),
            }
        }
    }

    fn end(&mut self, i: usize, status: StepStatus) {
        let step = &mut self.steps[i];
        step.phase = Phase::Ended;
        step.status = status;
        self.ended += 1;
    }

    /// Skips step `i` (if it has not ended) and everything downstream of it.
    pub(crate) fn skip(&mut self, i: usize, reason: SkipReason) {
        if self.steps[i].phase == Phase::Ended {
            return;
        }
        match reason {
            SkipReason::Upstream(steps) => {
                let upstream = steps.iter().map(|&u| self.steps[u].key.clone()).collect();
                self.end(i, StepStatus::Skipped);
                self.emit(
                    Some(i),
                    EventKind::StepSkipped {
                        upstream,
                        not_produced: Vec::new(),
                    },
                );
                self.skip_downstream(i);
            }
            SkipReason::NotProduced { outputs, skipped } => {
                // Dagster's rule: it produces nothing, and what reads it decides as if an
                // optional output of it was not produced (a fan-in list runs with the rest).
                self.end(i, StepStatus::Skipped);
                self.emit(
                    Some(i),
                    EventKind::StepSkipped {
                        upstream: skipped,
                        not_produced: outputs,
                    },
                );
                let step = &mut self.steps[i];
                step.not_produced = (0..step.output_names.len()).collect();
                let marked = match &self.mark_not_produced {
                    Some(mark) => mark(&step.key, &step.output_names),
                    None => Ok(()),
                };
                if let Err(e) = marked {
                    let message = format!(
                        "could not mark the outputs of skipped step `{}` as not produced (a \
                         fan-in that reads them will fail to load them): {e}",
                        self.steps[i].key
                    );
                    self.emit(Some(i), EventKind::EngineEvent { message });
                }
                self.settle_downstream(i);
            }
        }
    }

    /// Skips every step downstream of `i`, which did not succeed, in index order; each skip
    /// names its upstream steps that did not succeed.
    fn skip_downstream(&mut self, i: usize) {
        let mut stack = self.steps[i].downstream.clone();
        let mut doomed = Vec::new();
        while let Some(d) = stack.pop() {
            if self.steps[d].phase != Phase::Ended && !doomed.contains(&d) {
                doomed.push(d);
                stack.extend(&self.steps[d].downstream);
            }
        }
        doomed.sort_unstable();
        // Marked first, so that each skip names every culprit, skipped ones included.
        for &d in &doomed {
            self.end(d, StepStatus::Skipped);
        }
        for d in doomed {
            let culprits = self.steps[d]
                .upstream
                .iter()
                .filter(|&&u| {
                    matches!(
                        self.steps[u].status,
                        StepStatus::Failed | StepStatus::Skipped
                    )
                })
                .map(|&u| self.steps[u].key.clone())
                .collect();
            self.emit(
                Some(d),
                EventKind::StepSkipped {
                    upstream: culprits,
                    not_produced: Vec::new(),
                },
            );
        }
    }

    /// Cancels the run: nothing more starts and no failure is retried. Returns `false` when
    /// it was canceled already.
    pub(crate) fn cancel(&mut self, why: &str) -> bool {
        if self.canceled.is_some() {
            return false;
        }
        self.canceled = Some(why.to_owned());
        self.retries.clear();
        true
    }

    /// Ends every attempt that started and has not ended as a failure: what a cluster
    /// executor does once it has stopped the step processes of a canceled run.
    pub(crate) fn interrupt_started(&mut self, message: &str) {
        for i in 0..self.steps.len() {
            let step = &self.steps[i];
            if step.started.is_some() && step.phase != Phase::Ended {
                let attempt = step.attempt;
                let error = if self.timed_out {
                    let why = self.canceled.as_deref().unwrap_or_default();
                    ErrorInfo::new(
                        ErrorKind::Timeout,
                        format!("step `{}` was stopped: {why}; {message}", step.key),
                    )
                } else {
                    ErrorInfo::new(
                        ErrorKind::Interrupted,
                        format!("step `{}` was interrupted: {message}", step.key),
                    )
                };
                // (the current attempt of a step that has not ended: always accepted)
                let _ = self.end_attempt(i, attempt, AttemptEnd::Failure(error));
            }
        }
    }

    /// Fails every step the executor left in the middle (running, or between attempts) with
    /// the reason the executor could not go on; steps that never started stay not run.
    fn abandon(&mut self, cause: &str) {
        for i in 0..self.steps.len() {
            let step = &self.steps[i];
            let mid_retry = step.phase == Phase::Ready && step.attempt > 1;
            if mid_retry || matches!(step.phase, Phase::Running | Phase::RetryWait) {
                let attempt = step.attempt;
                let error = ErrorInfo::new(
                    ErrorKind::Engine,
                    format!("the run could not go on: {cause}"),
                );
                self.emit(Some(i), EventKind::StepFailure { attempt, error });
                self.end(i, StepStatus::Failed);
                self.skip_downstream(i);
            }
        }
    }

    /// Ends the run: emits `RUN_SUCCESS`, `RUN_FAILURE` or `RUN_CANCELED` and returns the
    /// status. `engine_error` is why the executor could not go on, when it could not: the
    /// run fails with it, whatever the steps did.
    pub(crate) fn finish(&mut self, duration: Duration, engine_error: Option<&str>) -> RunStatus {
        let duration_ms = duration.as_secs_f64() * 1e3;
        if let Some(message) = engine_error {
            self.emit(
                None,
                EventKind::EngineEvent {
                    message: message.to_owned(),
                },
            );
            if self.canceled.is_none() {
                self.abandon(message);
            }
        }
        if let Some(why) = self.canceled.as_ref().filter(|_| !self.timed_out) {
            let not_run = self
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::NotRun && !s.template)
                .count();
            let message = format!("{why}; {not_run} step(s) not run");
            self.emit(None, EventKind::RunCanceled { message });
            return RunStatus::Canceled;
        }
        // (a step is only skipped without a failure when an output it reads was not produced)
        let none_failed = self
            .steps
            .iter()
            .all(|s| s.template || matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped));
        if engine_error.is_none() && none_failed {
            self.emit(None, EventKind::RunSuccess { duration_ms });
            return RunStatus::Success;
        }
        self.emit(
            None,
            EventKind::RunFailure {
                failed: self.keys_with(StepStatus::Failed),
                skipped: self.keys_with(StepStatus::Skipped),
                duration_ms,
            },
        );
        RunStatus::Failure
    }
}

/// `90 s`, `1.5 s`: a limit as messages name it.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// A run state shared by an executor's threads and the interrupt handler.
#[derive(Debug)]
pub(crate) struct SharedState {
    state: Mutex<RunState>,
    /// Wakes threads that wait for a step to end, a retry or a cancel.
    pub(crate) wake: Condvar,
}

impl SharedState {
    pub(crate) fn new(state: RunState) -> Self {
        Self {
            state: Mutex::new(state),
            wake: Condvar::new(),
        }
    }

    /// The state. Steps run outside the lock and op panics are caught, so a poisoned lock
    /// still holds a consistent state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits on [`wake`](Self::wake), at most `timeout`.
    pub(crate) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, RunState>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, RunState> {
        match timeout {
            None => self
                .wake
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner),
            Some(t) => {
                self.wake
                    .wait_timeout(guard, t)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RunLog;
    use crate::graph::JobBuilder;
    use crate::op::OpDef;

    fn diamond() -> crate::graph::Job {
        let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
        let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (i64,)| x + 1);
        let mut b = JobBuilder::new("d");
        let a = b.add(&one, ());
        let l = b.add_as("left", &inc, a);
        let r = b.add_as("right", &inc, a);
        b.add_as("after_left", &inc, l);
        let _ = r;
        b.build().unwrap()
    }

    fn state(job: &crate::graph::Job) -> (RunState, Arc<RunLog>) {
        let log = Arc::new(RunLog::in_memory(false));
        let sink: Arc<dyn EventSink> = Arc::clone(&log) as _;
        (RunState::new(job.plan(), "r", sink), log)
    }

    #[test]
    fn a_failure_skips_downstream_only() {
        let job = diamond();
        let (mut s, log) = state(&job);
        assert_eq!(s.next(Instant::now()), Next::Run(0, 1));
        s.end_attempt(
            0,
            1,
            AttemptEnd::Success {
                duration_ms: 1.0,
                not_produced: vec![],
                mapping_keys: vec![],
            },
        )
        .unwrap();
        let Next::Run(left, 1) = s.next(Instant::now()) else {
            panic!("left is ready")
        };
        let error = ErrorInfo::new(ErrorKind::Input, "bad");
        s.end_attempt(left, 1, AttemptEnd::Failure(error)).unwrap();
        let after = job.plan().index_of("after_left").unwrap();
        assert_eq!(s.status(after), StepStatus::Skipped);
        let right = job.plan().index_of("right").unwrap();
        assert_eq!(s.status(right), StepStatus::NotRun);
        let kinds: Vec<_> = log.events().iter().map(|e| e.kind.type_name()).collect();
        assert!(kinds.contains(&"STEP_SKIPPED"), "{kinds:?}");
    }

    #[test]
    fn worker_events_cannot_end_a_step_or_speak_for_another_attempt() {
        let job = diamond();
        let (mut s, _log) = state(&job);
        let success = EventKind::StepSuccess { duration_ms: 1.0 };
        assert!(s.accept_step_event(0, 1, &success).is_err());
        assert!(s.accept_step_event(0, 2, &EventKind::StepStart).is_err());
        let restarted = EventKind::StepRestarted { attempt: 1 };
        assert!(s.accept_step_event(0, 1, &restarted).is_err());
        assert!(s.accept_step_event(0, 1, &EventKind::StepStart).is_ok());
        assert_eq!(s.status(0), StepStatus::NotRun);
    }

    #[test]
    fn steps_added_while_the_run_goes_wait_for_their_upstream() {
        let job = diamond();
        let (mut s, _log) = state(&job);
        let added = s.push_step(
            "late".to_owned(),
            0,
            RetryPolicy::default(),
            None,
            vec![0],
            0,
        );
        assert_eq!(s.next(Instant::now()), Next::Run(0, 1));
        assert_eq!(s.next(Instant::now()), Next::Wait(None));
        s.end_attempt(
            0,
            1,
            AttemptEnd::Success {
                duration_ms: 1.0,
                not_produced: vec![],
                mapping_keys: vec![],
            },
        )
        .unwrap();
        let mut ran = Vec::new();
        while let Next::Run(i, _) = s.next(Instant::now()) {
            ran.push(i);
        }
        assert!(ran.contains(&added), "{ran:?}");
    }
}
