//! The driver's side of a Dask run: what each step did, and what to do next.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::DaskOutcome;
use super::bridge::{Bridge, Done, DoneStatus, FromBridge, Input, Line, ToBridge};
use crate::events::{ErrorInfo, ErrorKind, Event, EventKind};
use crate::exec::{RunContext, RunError, StepStatus, mark_skipped, report_skips};

/// How long the driver waits for a finished step's last forwarded lines.
const LINES_GRACE: Duration = Duration::from_secs(5);

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

pub(super) struct Driver<'r, 'a> {
    run: &'r RunContext<'a>,
    pub(super) upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    status: Vec<StepStatus>,
    track: Vec<StepTrack>,
    index: HashMap<String, usize>,
    retries: Vec<(Instant, usize)>,
    rng: fastrand::Rng,
}

impl<'r, 'a> Driver<'r, 'a> {
    pub(super) fn new(run: &'r RunContext<'a>) -> Self {
        let plan = run.job.plan();
        let (upstream, downstream) = plan.adjacency();
        Self {
            run,
            upstream,
            downstream,
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

    pub(super) fn run(mut self, bridge: &mut Bridge) -> Result<DaskOutcome, RunError> {
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
