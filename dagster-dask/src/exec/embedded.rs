//! The embedded executor: the plan runs in this process, on a bounded pool of threads
//! (`multithread`) or strictly one step after another in the calling thread (`in_process`).
//!
//! Scheduling is one state machine, [`Schedule`], shared by the threads under a mutex: a
//! thread that finishes a step updates it and takes the next ready step itself. A chain of
//! steps therefore runs on one thread without a hand-off per step, and a fan-out wakes as
//! many threads as there are ready steps.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::interrupt::Interrupts;
use super::step::{StepOutcome, execute_step};
use super::{RunContext, StepStatus, mark_skipped, report_skips};

/// Runs a plan in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedExecutor {
    /// `None`: in the calling thread, one step at a time. `Some(n)`: up to `n` threads.
    threads: Option<usize>,
}

impl EmbeddedExecutor {
    /// Strictly sequential, in the calling thread.
    pub fn in_process() -> Self {
        Self { threads: None }
    }

    /// Up to `max_concurrent` steps at once (the number of CPUs when `None`).
    pub fn multithread(max_concurrent: Option<usize>) -> Self {
        let n = max_concurrent
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1)
            .max(1);
        Self { threads: Some(n) }
    }

    /// The executor's name in events.
    pub fn name(&self) -> String {
        match self.threads {
            None => "in_process".to_owned(),
            Some(n) => format!("multithread (max_concurrent {n})"),
        }
    }

    /// Runs every step of the run's job; returns each step's status, by plan index, and why
    /// the run was canceled, if it was.
    pub(crate) fn execute(&self, run: &RunContext<'_>) -> (Vec<StepStatus>, Option<String>) {
        let shared = Arc::new(Shared {
            schedule: Mutex::new(Schedule::new(run)),
            wake: Condvar::new(),
        });
        let _interrupts = run.cancel_on_interrupt.then(|| {
            let shared = Arc::clone(&shared);
            Interrupts::start(move || {
                if std::mem::replace(&mut lock(&shared.schedule).canceled, true) {
                    let _ = writeln!(std::io::stderr(), "interrupted twice: exiting now");
                    std::process::exit(130);
                }
                shared.wake.notify_all();
            })
        });
        let (schedule, wake) = (&shared.schedule, &shared.wake);
        match self.threads {
            None => work(run, schedule, wake),
            Some(n) => {
                let threads = n.min(run.job.plan().steps.len()).max(1);
                std::thread::scope(|scope| {
                    for _ in 1..threads {
                        scope.spawn(|| work(run, schedule, wake));
                    }
                    work(run, schedule, wake);
                });
            }
        }
        let state = lock(schedule);
        let canceled = state.canceled.then(|| {
            let not_run = state.status.iter().filter(|s| **s == StepStatus::NotRun).count();
            format!(
                "interrupted (SIGINT/SIGTERM): running steps finished, {not_run} step(s) not started"
            )
        });
        (state.status.clone(), canceled)
    }
}

/// The schedule and the condition its threads wait on, shared with the interrupt handler.
struct Shared {
    schedule: Mutex<Schedule>,
    wake: Condvar,
}

fn lock<'a>(schedule: &'a Mutex<Schedule>) -> MutexGuard<'a, Schedule> {
    // Steps run outside the lock and op panics are caught, so a poisoned lock still holds
    // consistent state.
    schedule.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One thread's share of the run: take a ready step, run it, record it, until all is done.
fn work(run: &RunContext<'_>, schedule: &Mutex<Schedule>, wake: &Condvar) {
    let env = run.step_env();
    let mut rng = fastrand::Rng::new();
    let mut state = lock(schedule);
    loop {
        match state.next(Instant::now()) {
            Next::Run(index, attempt) => {
                drop(state);
                let outcome = execute_step(&env, index, attempt, &mut rng);
                state = lock(schedule);
                let skipped = state.complete(index, outcome);
                report_skips(run, &state.upstream, &state.status, &skipped);
                // New ready steps, a retry to time, or the end: others may have work.
                wake.notify_all();
            }
            Next::Wait(None) => {
                state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            Next::Wait(Some(timeout)) => {
                state = wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            Next::Done => return,
        }
    }
}

/// What a thread should do next.
enum Next {
    /// Run attempt `.1` of step `.0`.
    Run(usize, u32),
    /// Nothing to run now: wait for another step to finish, or at most this long for a retry.
    Wait(Option<Duration>),
    /// Every step has ended.
    Done,
}

/// The run's progress: ready steps in plan order, retries after their delay, and everything
/// downstream of a failure skipped.
struct Schedule {
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    /// Upstream steps not yet succeeded, per step.
    remaining: Vec<usize>,
    status: Vec<StepStatus>,
    attempt: Vec<u32>,
    ready: BinaryHeap<Reverse<usize>>,
    retries: Vec<(Instant, usize)>,
    running: usize,
    /// Interrupted: start nothing more.
    canceled: bool,
}

impl Schedule {
    fn new(run: &RunContext<'_>) -> Self {
        let plan = run.job.plan();
        let n = plan.steps.len();
        let (upstream, downstream) = plan.adjacency();
        let remaining: Vec<usize> = upstream.iter().map(Vec::len).collect();
        let ready = (0..n).filter(|&i| remaining[i] == 0).map(Reverse).collect();
        Self {
            downstream,
            upstream,
            remaining,
            status: vec![StepStatus::NotRun; n],
            attempt: vec![1; n],
            ready,
            retries: Vec::new(),
            running: 0,
            canceled: false,
        }
    }

    fn next(&mut self, now: Instant) -> Next {
        if self.canceled {
            return if self.running == 0 {
                Next::Done
            } else {
                Next::Wait(None)
            };
        }
        let ready = &mut self.ready;
        self.retries.retain(|&(due, i)| {
            let is_due = due <= now;
            if is_due {
                ready.push(Reverse(i));
            }
            !is_due
        });
        if let Some(Reverse(i)) = self.ready.pop() {
            self.running += 1;
            return Next::Run(i, self.attempt[i]);
        }
        if self.running == 0 && self.retries.is_empty() {
            return Next::Done;
        }
        let next_retry = self
            .retries
            .iter()
            .map(|(due, _)| due.saturating_duration_since(now))
            .min();
        Next::Wait(next_retry)
    }

    /// Records how an attempt ended; returns the steps newly skipped because of it.
    fn complete(&mut self, i: usize, outcome: StepOutcome) -> Vec<usize> {
        self.running -= 1;
        match outcome {
            StepOutcome::Success => {
                self.status[i] = StepStatus::Succeeded;
                for &d in &self.downstream[i] {
                    self.remaining[d] -= 1;
                    if self.remaining[d] == 0 && self.status[d] == StepStatus::NotRun {
                        self.ready.push(Reverse(d));
                    }
                }
                Vec::new()
            }
            StepOutcome::Failed {
                retry_in: Some(delay),
                ..
            } => {
                self.attempt[i] += 1;
                self.retries.push((Instant::now() + delay, i));
                Vec::new()
            }
            StepOutcome::Failed { retry_in: None, .. } => {
                self.status[i] = StepStatus::Failed;
                mark_skipped(&self.downstream, &mut self.status, i)
            }
        }
    }
}
