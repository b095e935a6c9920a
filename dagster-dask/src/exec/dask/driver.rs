//! The driver's side of a Dask run: what the cluster says, checked, and handed to the run's
//! state.
//!
//! Nothing a step process sends is trusted: every message is checked against the run's state
//! (right run, step and attempt, a kind a step may send, numbers in range) before it is
//! recorded. A bad one is an engine error of that step's attempt, never a transition.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::bridge::{Bridge, Input};
use super::protocol::{
    Done, DoneStatus, EVENTS_STREAM, FromBridge, Line, StepMessage, SubmitStep, ToBridge,
};
use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, EventKind};
use crate::exec::state::{AttemptEnd, RunState, SharedState};
use crate::exec::{RunContext, RunError};
use crate::graph::RESULT;

/// How many inputs the driver loop handles before it looks at every step again.
const INPUT_BATCH: usize = 1_000;
/// How long the driver waits for a finished step's last forwarded lines.
const LINES_GRACE: Duration = Duration::from_secs(5);
/// How long a cancel waits for the cluster to confirm.
const CANCEL_WAIT: Duration = Duration::from_secs(15);
/// How long past a step's deadline the driver waits for its worker to report the kill before
/// it ends the attempt itself (a frozen or unreachable worker).
const OVERDUE_GRACE: Duration = Duration::from_secs(10);
/// The longest duration a step may report, milliseconds (about 30 years).
const MAX_DURATION_MS: f64 = 1e12;

/// What the driver knows of one step's attempts, beyond the run's state.
#[derive(Default)]
struct StepTrack {
    /// Lines received per attempt.
    lines: HashMap<u32, usize>,
    /// How the step process said the attempt ended.
    ended: HashMap<u32, AttemptEnd>,
    /// The first invalid message of an attempt.
    invalid: HashMap<u32, String>,
    /// The bridge's word that the attempt's task ended, and when it came.
    done: Option<(Done, Instant)>,
    worker: Option<String>,
}

/// How the bridge submits step `i` of `state`: after its upstream steps, with its op's
/// resources and limit; `gated` (or made while the run goes): only when released.
pub(super) fn submit_step(
    plan: &crate::plan::Plan,
    state: &RunState,
    i: usize,
    gated: bool,
) -> SubmitStep {
    let tags = &plan.steps[state.plan_index(i)].tags;
    SubmitStep {
        step: state.key(i).to_owned(),
        deps: state
            .upstream_of(i)
            .iter()
            .map(|&u| state.key(u).to_owned())
            .collect(),
        resources: tags.resource_requirements.clone(),
        max_runtime: tags.max_runtime().map(|d| d.as_secs_f64()),
        gated: gated || state.is_made(i),
    }
}

pub(super) struct Driver<'r, 'a> {
    run: &'r RunContext<'a>,
    state: &'r SharedState,
    track: Vec<StepTrack>,
    /// How long the bridge may be silent, or its scheduler lost, before the run ends.
    cluster_timeout: Duration,
    /// The cluster, as errors name it.
    target: String,
    /// When the bridge last sent anything.
    last_heard: Instant,
    /// Since when the bridge's client has not been connected to the scheduler.
    lost_since: Option<(Instant, String)>,
    /// Steps whose task someone else cancelled before it started: submitted again.
    resubmit: Vec<usize>,
    /// Gated steps the run's state made ready, for the bridge to submit (it submits them only
    /// when told: see [`Plan::gated`](crate::plan::Plan::gated)).
    release: Vec<usize>,
}

impl<'r, 'a> Driver<'r, 'a> {
    pub(super) fn new(
        run: &'r RunContext<'a>,
        state: &'r SharedState,
        cluster_timeout: Duration,
        target: String,
    ) -> Self {
        Self {
            run,
            state,
            track: (0..run.job.plan().steps.len())
                .map(|_| StepTrack::default())
                .collect(),
            cluster_timeout,
            target,
            last_heard: Instant::now(),
            lost_since: None,
            resubmit: Vec::new(),
            release: Vec::new(),
        }
    }

    /// Why the run cannot go on, when the bridge has been silent (it is then marked so) or the
    /// scheduler lost for longer than the cluster timeout; else how long until that could be.
    fn cluster_check(&self, now: Instant, bridge: &mut Bridge) -> Result<Duration, RunError> {
        let limit = self.cluster_timeout;
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= limit {
            bridge.mark_unresponsive();
            return Err(RunError::Dask(format!(
                "the Dask bridge sent nothing for {:.0} s (frozen or stuck); {}",
                silent.as_secs_f64(),
                self.running_steps()
            )));
        }
        let mut left = limit - silent;
        if let Some((since, status)) = &self.lost_since {
            let lost = now.saturating_duration_since(*since);
            if lost >= limit {
                return Err(RunError::Dask(format!(
                    "lost {}: the Dask client has been `{status}` for {:.0} s; {}",
                    self.target,
                    lost.as_secs_f64(),
                    self.running_steps()
                )));
            }
            left = left.min(limit - lost);
        }
        Ok(left)
    }

    /// The steps the run was waiting on, for errors that end it.
    fn running_steps(&self) -> String {
        let waiting = self.state.lock().keys_with(crate::run::StepStatus::NotRun);
        if waiting.is_empty() {
            "every step had ended".to_owned()
        } else {
            format!("steps not ended: {}", waiting.join(", "))
        }
    }

    pub(super) fn run(mut self, bridge: &mut Bridge) -> Result<(), RunError> {
        loop {
            let now = Instant::now();
            let (add, submit, release, next_wake) = {
                let mut state = self.state.lock();
                if state.all_ended() {
                    return Ok(());
                }
                state.check_run_deadline(now);
                if state.canceled().is_some() {
                    drop(state);
                    return self.cancel(bridge);
                }
                for (i, attempt) in state.overdue(now, OVERDUE_GRACE) {
                    let worker = state.worker(i).unwrap_or("its worker").to_owned();
                    let why = format!(
                        "; {worker} did not report stopping it within {} s (frozen or \
                         unreachable?)",
                        OVERDUE_GRACE.as_secs()
                    );
                    // (an overdue attempt is the current one of a step that has not ended)
                    let _ = state.time_out(i, attempt, now, &why);
                }
                let mut submit: Vec<(String, u32)> = state
                    .due_retries(now)
                    .into_iter()
                    .map(|(i, attempt)| (state.key(i).to_owned(), attempt))
                    .collect();
                submit.extend(
                    self.resubmit
                        .drain(..)
                        .map(|i| (state.key(i).to_owned(), state.attempt(i))),
                );
                let add: Vec<SubmitStep> = state
                    .take_made()
                    .into_iter()
                    .map(|i| submit_step(self.run.job.plan(), &state, i, true))
                    .collect();
                self.release.extend(state.take_released());
                let release: Vec<String> = std::mem::take(&mut self.release)
                    .into_iter()
                    .map(|i| state.key(i).to_owned())
                    .collect();
                let wake = [
                    state.next_retry_in(now),
                    state.run_deadline_in(now),
                    state.next_overdue_in(now, OVERDUE_GRACE),
                ];
                (add, submit, release, wake.into_iter().flatten().min())
            };
            if !add.is_empty() {
                bridge.send(&ToBridge::Add { steps: add })?;
            }
            for (key, attempt) in submit {
                bridge.send(&ToBridge::Retry {
                    step: &key,
                    attempt,
                })?;
            }
            for key in release {
                bridge.send(&ToBridge::Release { step: &key })?;
            }
            // Wake for the next retry, or for a finished step whose lines are late.
            let next_grace = self
                .track
                .iter()
                .filter_map(|t| {
                    t.done
                        .as_ref()
                        .map(|(_, at)| (*at + LINES_GRACE).saturating_duration_since(now))
                })
                .min();
            let cluster_left = self.cluster_check(now, bridge)?;
            let timeout = [next_wake, next_grace]
                .into_iter()
                .flatten()
                .fold(cluster_left, Duration::min);
            // What came meanwhile is handled together: the bookkeeping above looks at every
            // step, and doing it per message made a 10,000-step run quadratic.
            let mut next = bridge.recv(Some(timeout));
            let mut handled = 0;
            while let Some(input) = next.take() {
                self.handle(input, bridge)?;
                handled += 1;
                if handled < INPUT_BATCH {
                    next = bridge.try_recv();
                }
            }
            self.settle(false);
        }
    }

    /// Handles one input of the driver loop; an input that ends the run is its error.
    fn handle(&mut self, input: Input, bridge: &mut Bridge) -> Result<(), RunError> {
        if matches!(input, Input::Bridge(_) | Input::Stray(_)) {
            self.last_heard = Instant::now();
        }
        match input {
            Input::Bridge(FromBridge::Heartbeat { client }) => {
                if client == "running" {
                    self.lost_since = None;
                } else if self.lost_since.is_none() {
                    self.engine(
                        None,
                        format!(
                            "the Dask client lost {} (it is `{client}`); the run ends if it \
                             is not back within {:.0} s",
                            self.target,
                            self.cluster_timeout.as_secs_f64()
                        ),
                    );
                    self.lost_since = Some((Instant::now(), client));
                }
            }
            Input::Bridge(FromBridge::Line(line)) => self.on_line(line),
            Input::Bridge(FromBridge::Done(done)) => self.on_done(done),
            Input::Bridge(FromBridge::Fatal { message, .. }) => {
                return Err(RunError::Dask(format!(
                    "the Dask bridge failed: {message}; {}",
                    self.running_steps()
                )));
            }
            Input::Bridge(FromBridge::Info { message }) => self.engine(None, message),
            Input::Bridge(FromBridge::Connected { .. } | FromBridge::Canceled) => {}
            Input::Stray(line) => {
                self.engine(None, format!("bridge: {line}"));
            }
            // The hook canceled the state: the top of the loop cancels the cluster.
            Input::Interrupt(_) => {}
            Input::Closed => {
                let how = match bridge.exit_status() {
                    Some(status) => format!(" ({status})"),
                    None => String::new(),
                };
                return Err(RunError::Dask(format!(
                    "the Dask bridge exited before the run ended{how}; {}",
                    self.running_steps()
                )));
            }
        }
        Ok(())
    }

    fn engine(&self, step: Option<&str>, message: String) {
        self.run.sink.emit(Event::new(
            self.run.run_id,
            step,
            EventKind::EngineEvent { message },
        ));
    }

    fn on_done(&mut self, done: Done) {
        let Some(i) = self.state.lock().index_of(&done.step) else {
            self.engine(
                None,
                format!("the bridge reported unknown step `{}`", done.step),
            );
            return;
        };
        let state = self.state.lock();
        if done.attempt == state.attempt(i) && state.status(i) == crate::run::StepStatus::NotRun {
            drop(state);
            self.track(i).done = Some((done, Instant::now()));
        }
    }

    /// What the driver knows of step `i`; a step made while the run goes gets its track on
    /// first use.
    fn track(&mut self, i: usize) -> &mut StepTrack {
        if i >= self.track.len() {
            self.track.resize_with(i + 1, StepTrack::default);
        }
        &mut self.track[i]
    }

    fn on_line(&mut self, msg: Line) {
        let Line {
            step,
            attempt,
            worker,
            stream,
            line,
        } = msg;
        let Some(i) = self.state.lock().index_of(&step) else {
            self.engine(None, format!("output of unknown step `{step}`: {line}"));
            return;
        };
        let track = self.track(i);
        *track.lines.entry(attempt).or_default() += 1;
        if worker.is_some() {
            track.worker.clone_from(&worker);
        }
        if stream != EVENTS_STREAM {
            // Whatever the op printed, however it looks: an output line of the step.
            let mut event = Event::new(
                self.run.run_id,
                Some(&step),
                EventKind::StepOutputLine { stream, line },
            );
            event.worker = worker;
            self.run.sink.emit(event);
            return;
        }
        match self.check_message(i, attempt, &line) {
            Ok(Some(mut event)) => {
                event.worker = worker;
                self.run.sink.emit(event);
            }
            Ok(None) => {}
            Err(problem) => {
                let problem = format!(
                    "step `{step}` attempt {attempt} sent an invalid message, ignored: {problem}"
                );
                self.engine(Some(&step), problem.clone());
                self.track[i].invalid.entry(attempt).or_insert(problem);
            }
        }
    }

    /// Checks one message of a step process; returns the event to record, if it is one.
    fn check_message(
        &mut self,
        i: usize,
        attempt: u32,
        line: &str,
    ) -> Result<Option<Event>, String> {
        let message: StepMessage = serde_json::from_str(line).map_err(|e| {
            let shown: String = line.chars().take(200).collect();
            format!("not a step message ({e}): {shown}")
        })?;
        match message {
            StepMessage::Event(event) => {
                let key = self.state.lock().key(i).to_owned();
                if event.run_id != self.run.run_id {
                    return Err(format!("an event of run `{}`", event.run_id));
                }
                if event.step_key.as_deref() != Some(key.as_str()) {
                    return Err(format!("an event of step {:?}", event.step_key));
                }
                if !event.timestamp.is_finite() {
                    return Err("a timestamp that is not a number".to_owned());
                }
                self.state
                    .lock()
                    .accept_step_event(i, attempt, &event.kind)?;
                Ok(Some(event))
            }
            StepMessage::Ended(end) => {
                if let AttemptEnd::Success {
                    duration_ms,
                    not_produced,
                    ..
                } = &end
                {
                    if !(0.0..MAX_DURATION_MS).contains(duration_ms) {
                        return Err(format!("a duration of {duration_ms} ms"));
                    }
                    let plan_index = self.state.lock().plan_index(i);
                    let outputs = &self.run.job.plan().steps[plan_index].outputs;
                    if let Some(k) = not_produced
                        .iter()
                        .find(|&&k| !outputs.get(k).is_some_and(|o| o.optional))
                    {
                        return Err(format!("output #{k}, not an optional one, as not produced"));
                    }
                }
                let current = self.state.lock().attempt(i);
                if attempt != current {
                    return Err(format!(
                        "the end of attempt {attempt}, at attempt {current}"
                    ));
                }
                // (a later end of the same attempt is Dask running it again after a lost
                // worker: the latest run is the one its task reports on)
                self.track[i].ended.insert(attempt, end);
                Ok(None)
            }
        }
    }

    /// Finishes every step whose task ended and whose lines have all arrived (or are late,
    /// or `now` is asked for).
    fn settle(&mut self, now_all: bool) {
        let now = Instant::now();
        for i in 0..self.track.len() {
            let Some((done, at)) = &self.track[i].done else {
                continue;
            };
            let received = self.track[i].lines.get(&done.attempt).copied().unwrap_or(0);
            let complete = done.lines.is_none_or(|n| received >= n);
            if now_all || complete || now >= *at + LINES_GRACE {
                if let Some((done, _)) = self.track[i].done.take() {
                    self.finish(i, done);
                }
            }
        }
    }

    /// What the step process said and what its task did, together: how the attempt ended.
    fn attempt_end(&mut self, i: usize, done: Done) -> AttemptEnd {
        let plan = self.run.job.plan();
        let (key, plan_index) = {
            let state = self.state.lock();
            (state.key(i).to_owned(), state.plan_index(i))
        };
        let key = key.as_str();
        let track = &mut self.track[i];
        let worker = done.worker.clone().or_else(|| track.worker.clone());
        let on = worker.map(|w| format!(" (worker {w})")).unwrap_or_default();
        let detail = done
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let engine =
            |message: String| AttemptEnd::Failure(ErrorInfo::new(ErrorKind::Engine, message));
        if let Some(problem) = track.invalid.remove(&done.attempt) {
            return engine(problem);
        }
        let reported = track.ended.remove(&done.attempt);
        let unstored = || {
            engine(format!(
                "step `{key}`{on} exited without storing output `{RESULT}`: its process ended \
                 with code 0 before it reported the end of attempt {}",
                done.attempt
            ))
        };
        match (done.status, reported) {
            (DoneStatus::NoWorker, _) => {
                let resources = &plan.steps[plan_index].tags.resource_requirements;
                let message = done.message.unwrap_or_default();
                let message = if resources.is_empty() {
                    format!("step `{key}` found no worker: {message}")
                } else {
                    format!(
                        "step `{key}` needs {}: {message}",
                        crate::op::resources_json(resources)
                    )
                };
                AttemptEnd::Failure(ErrorInfo::new(ErrorKind::Placement, message))
            }
            (DoneStatus::Success, Some(end))
            | (DoneStatus::Failed, Some(end @ AttemptEnd::Failure(_))) => end,
            (DoneStatus::Success, None) => unstored(),
            (DoneStatus::Failed, None) if done.exit_code == Some(0) => unstored(),
            (DoneStatus::Failed, Some(AttemptEnd::Success { .. })) => engine(format!(
                "step `{key}`{on} reported success, then its process failed{detail}"
            )),
            // (settled by `finish` through the run's state; kept for completeness)
            (DoneStatus::Timeout, _) => engine(format!("step `{key}`{on} timed out{detail}")),
            (DoneStatus::Cancelled, _) => engine(format!(
                "the task of step `{key}` was cancelled on the cluster, not by this run{detail}"
            )),
            (DoneStatus::Killed, _) => {
                engine(format!("the worker running step `{key}` died{on}{detail}"))
            }
            (DoneStatus::Failed, None) => {
                // It crashed or could not start: the op's retry policy decides, as for an
                // op error.
                engine(format!("step `{key}` did not run to the end{on}{detail}"))
            }
        }
    }

    fn finish(&mut self, i: usize, done: Done) {
        if done.status == DoneStatus::Timeout {
            let why = done.message.map(|m| format!("; {m}")).unwrap_or_default();
            let mut state = self.state.lock();
            state.set_worker(i, done.worker);
            // (a task's end is only settled for the current attempt of a step not ended)
            let _ = state.time_out(i, done.attempt, Instant::now(), &why);
            return;
        }
        if done.status == DoneStatus::Cancelled {
            let state = self.state.lock();
            if !state.started(i) {
                // Cancelled before it started (a restart by someone else): no attempt was
                // made. Submitted again once its upstream steps are done; those that failed
                // and are retried take it along.
                if state.is_ready(i) {
                    self.resubmit.push(i);
                }
                return;
            }
        }
        let attempt = done.attempt;
        let worker = done.worker.clone().or_else(|| self.track[i].worker.clone());
        let mut end = self.attempt_end(i, done);
        if let AttemptEnd::Failure(error) = &mut end {
            self.explain_missing_input(i, worker.as_deref(), error);
        }
        let mut state = self.state.lock();
        state.set_worker(i, worker);
        let result = state.end_attempt(i, attempt, end);
        self.release.extend(state.take_released());
        let key = state.key(i).to_owned();
        drop(state);
        if let Err(problem) = result {
            self.engine(Some(&key), problem);
        }
    }

    /// A missing upstream output on a cluster is most often storage the workers do not
    /// share: says where the upstream steps ran, next to where this one did.
    fn explain_missing_input(&self, i: usize, worker: Option<&str>, error: &mut ErrorInfo) {
        // (an object store is one place for every worker: nothing to explain there)
        if error.kind != ErrorKind::Input
            || !error.message.contains("no stored output")
            || self.run.io.local_base().is_none()
        {
            return;
        }
        let state = self.state.lock();
        let upstream: Vec<String> = state
            .upstream_of(i)
            .iter()
            .filter_map(|&u| {
                let w = state.worker(u)?;
                (Some(w) != worker).then(|| format!("`{}` on worker {w}", state.key(u)))
            })
            .collect();
        if !upstream.is_empty() {
            error.message.push_str(&format!(
                " (stored by {}; this step ran on worker {}: every worker must see the same \
                 `base_dir`)",
                upstream.join(", "),
                worker.unwrap_or("?")
            ));
        }
    }

    /// Cancels the run's tasks, waits for the cluster to confirm (a second interrupt stops
    /// waiting), and records every attempt that started and did not end as interrupted.
    fn cancel(mut self, bridge: &mut Bridge) -> Result<(), RunError> {
        let why = self
            .state
            .lock()
            .canceled()
            .unwrap_or("canceled")
            .to_owned();
        self.engine(
            None,
            format!("{why}: canceling the run's tasks on the cluster (interrupt to stop waiting)"),
        );
        let mut confirmed = bridge.send(&ToBridge::Cancel).is_ok();
        if confirmed {
            confirmed = false;
            let deadline = Instant::now() + CANCEL_WAIT;
            loop {
                match bridge.recv(Some(deadline.saturating_duration_since(Instant::now()))) {
                    Some(Input::Bridge(FromBridge::Canceled)) => {
                        confirmed = true;
                        break;
                    }
                    Some(Input::Closed) | None => break,
                    Some(Input::Interrupt(n)) if n > 1 => break,
                    Some(Input::Bridge(FromBridge::Line(line))) => self.on_line(line),
                    // A step that succeeded before the cancel keeps its success; any other
                    // end now is the cancel's doing, recorded below as interrupted.
                    Some(Input::Bridge(FromBridge::Done(done)))
                        if done.status == DoneStatus::Success =>
                    {
                        self.on_done(done);
                    }
                    Some(_) => {}
                }
            }
        }
        // Attempts whose task already ended keep how they ended.
        self.settle(true);
        self.state.lock().interrupt_started(if confirmed {
            "the run was canceled and its step process killed"
        } else {
            "the run was canceled; the cluster did not confirm that the step process stopped"
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::RunConfig;
    use crate::events::{EventSink, RunLog};
    use crate::exec::interrupt::InterruptHook;
    use crate::exec::state::RunState;
    use crate::graph::JobBuilder;
    use crate::io::ObjectStoreIoManager;
    use crate::op::OpDef;
    use crate::run::StepStatus;

    /// Valid messages of step `one`, attempt 1, then mutated at random: truncated, bytes
    /// flipped, numbers swapped for absurd ones, other runs, steps and attempts.
    fn messages(run_id: &str) -> Vec<String> {
        let event = |kind| {
            serde_json::to_string(&StepMessage::Event(Event::new(run_id, Some("one"), kind)))
                .unwrap()
        };
        vec![
            event(EventKind::StepStart),
            event(EventKind::StepSuccess { duration_ms: 1.0 }),
            event(EventKind::RunSuccess { duration_ms: 1.0 }),
            event(EventKind::StepUpForRetry {
                attempt: 1,
                delay_ms: 1e300,
                error: ErrorInfo::new(ErrorKind::Op, "x"),
            }),
            serde_json::to_string(&StepMessage::Ended(AttemptEnd::Success {
                duration_ms: 2.0,
                not_produced: vec![],
                mapping_keys: vec![],
            }))
            .unwrap(),
            r#"{"msg":"ended","body":{"outcome":"success","duration_ms":1e300}}"#.to_owned(),
            // (`one` has one output, `result`, which is not optional)
            r#"{"msg":"ended","body":{"outcome":"success","duration_ms":1,"not_produced":[0]}}"#
                .to_owned(),
            r#"{"msg":"ended","body":{"outcome":"success","duration_ms":-1}}"#.to_owned(),
        ]
    }

    /// Runs `f` with a driver of a two-step job (`one` -> `inc`) and its state.
    fn with_driver(f: impl FnOnce(&mut Driver<'_, '_>, &SharedState, &RunLog)) {
        let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
        let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (i64,)| x + 1);
        let mut b = JobBuilder::new("j");
        let a = b.add(&one, ());
        b.add(&inc, a);
        let job = b.build().unwrap();
        let config = RunConfig::default();
        let dir = tempfile::tempdir().unwrap();
        let io = ObjectStoreIoManager::local(dir.path()).unwrap();
        let log = Arc::new(RunLog::in_memory(false));
        let sink: Arc<dyn EventSink> = Arc::clone(&log) as Arc<dyn EventSink>;
        let run = RunContext {
            job: &job,
            run_id: "r",
            config: &config,
            io: &io,
            sink: Arc::clone(&sink),
            interrupts: Arc::new(InterruptHook::default()),
            resources: Arc::new(crate::resource::Resources::new("r", &[], &config.resources)),
            step_args: Vec::new(),
            cache: true,
        };
        let state = SharedState::new(RunState::new(job.plan(), "r", sink));
        let mut driver = Driver::new(&run, &state, Duration::from_secs(1), "a test".to_owned());
        f(&mut driver, &state, &log);
    }

    #[test]
    fn no_message_from_a_worker_panics_or_ends_a_step() {
        with_driver(|driver, state, _| {
            let mut rng = fastrand::Rng::with_seed(7);
            let seeds = messages("r");
            let (mut accepted, mut refused) = (0, 0);
            for n in 0..20_000 {
                let mut line = seeds[n % seeds.len()].clone().into_bytes();
                match rng.u8(..4) {
                    0 => line.truncate(rng.usize(..=line.len())),
                    1 => {
                        for _ in 0..rng.usize(1..4) {
                            let at = rng.usize(..line.len());
                            line[at] = rng.u8(..);
                        }
                    }
                    2 => {
                        let text = String::from_utf8_lossy(&line)
                            .replace("\"r\"", "\"other\"")
                            .replace("\"one\"", "\"inc\"");
                        line = text.into_bytes();
                    }
                    _ => {}
                }
                let line = String::from_utf8_lossy(&line);
                let step = rng.usize(..2);
                let attempt = rng.u32(..3);
                match driver.check_message(step, attempt, &line) {
                    Ok(_) => accepted += 1,
                    Err(_) => refused += 1,
                }
            }
            assert!(
                accepted > 0 && refused > accepted,
                "{accepted} accepted, {refused} refused"
            );
            // Nothing a worker sent ended a step: only the run's state does that.
            let state = state.lock();
            assert_eq!(state.statuses(), [StepStatus::NotRun, StepStatus::NotRun]);
            assert!(!state.all_ended());
        });
    }

    #[test]
    fn no_message_from_the_bridge_panics() {
        with_driver(|driver, state, _| {
            let mut rng = fastrand::Rng::with_seed(11);
            let seeds = [
                r#"{"type":"line","step":"one","attempt":1,"worker":"w","stream":"stdout","line":"x"}"#,
                r#"{"type":"line","step":"nope","attempt":4294967295,"worker":null,"stream":"events","line":"{}"}"#,
                r#"{"type":"done","step":"one","attempt":1,"status":"success","worker":"w","lines":99999999999,"message":null}"#,
                r#"{"type":"done","step":"inc","attempt":0,"status":"killed","worker":null,"lines":null,"message":"m"}"#,
                r#"{"type":"done","step":"one","attempt":1,"status":"cancelled","worker":null,"lines":0,"message":"c","exit_code":-9}"#,
                r#"{"type":"done","step":"one","attempt":2,"status":"no_worker","worker":null,"lines":null,"message":"n"}"#,
                r#"{"type":"heartbeat","client":"closed"}"#,
                r#"{"type":"info","message":"i"}"#,
            ];
            let mut parsed = 0;
            for n in 0..20_000 {
                let mut line = seeds[n % seeds.len()].as_bytes().to_vec();
                for _ in 0..rng.usize(0..3) {
                    if line.is_empty() {
                        break;
                    }
                    let at = rng.usize(..line.len());
                    if rng.bool() {
                        line[at] = rng.u8(..);
                    } else {
                        line.truncate(at);
                    }
                }
                let Ok(message) = serde_json::from_slice::<FromBridge>(&line) else {
                    continue;
                };
                parsed += 1;
                match message {
                    FromBridge::Line(line) => driver.on_line(line),
                    FromBridge::Done(done) => driver.on_done(done),
                    _ => {}
                }
                driver.settle(true);
            }
            assert!(parsed > 1_000, "{parsed}");
            // However the bridge's word went, every step is in a state the rules allow.
            let state = state.lock();
            let statuses = state.statuses();
            if statuses[0] != StepStatus::Succeeded {
                assert_ne!(statuses[1], StepStatus::Succeeded, "{statuses:?}");
            }
        });
    }

    #[test]
    fn a_missing_input_on_a_cluster_names_the_worker_that_stored_it() {
        with_driver(|driver, state, log| {
            state.lock().set_worker(0, Some("w1".to_owned()));
            let ended = StepMessage::Ended(AttemptEnd::Failure(ErrorInfo::new(
                ErrorKind::Input,
                "cannot load input `x` of step `inc` from step `one`: no stored output `result`",
            )));
            let line = serde_json::to_string(&ended).unwrap();
            assert!(driver.check_message(1, 1, &line).unwrap().is_none());
            driver.on_done(Done {
                step: "inc".to_owned(),
                attempt: 1,
                status: DoneStatus::Failed,
                worker: Some("w2".to_owned()),
                lines: None,
                message: None,
                exit_code: Some(1),
            });
            driver.settle(true);
            let failure = log.events().into_iter().find_map(|e| match e.kind {
                EventKind::StepFailure { error, .. } => Some(error.message),
                _ => None,
            });
            let failure = failure.expect("inc failed");
            assert!(
                failure.ends_with(
                    "(stored by `one` on worker w1; this step ran on worker w2: every worker \
                     must see the same `base_dir`)"
                ),
                "{failure}"
            );
        });
    }
}
