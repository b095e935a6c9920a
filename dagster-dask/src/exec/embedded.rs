//! The embedded executor: the plan runs in this process, on a bounded pool of threads
//! (`multithread`) or strictly one step after another in the calling thread (`in_process`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::step::{StepEnv, StepOutcome, execute_step};
use super::{RunContext, StepStatus};
use crate::events::{Event, EventKind};

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

    /// Runs every step of the run's job; returns each step's status, by plan index.
    pub(crate) fn execute(&self, run: &RunContext<'_>) -> Vec<StepStatus> {
        let env = run.step_env();
        match self.threads {
            None => {
                let mut inline = Inline {
                    env: &env,
                    done: VecDeque::new(),
                    rng: fastrand::Rng::new(),
                };
                schedule(run, &mut inline, 1)
            }
            Some(n) => {
                let workers = n.min(run.job.plan().steps.len()).max(1);
                let (work_tx, work_rx) = mpsc::channel::<(usize, u32)>();
                let (done_tx, done_rx) = mpsc::channel::<(usize, StepOutcome)>();
                let work_rx = Mutex::new(work_rx);
                std::thread::scope(|scope| {
                    for _ in 0..workers {
                        let done_tx = done_tx.clone();
                        let (env, work_rx) = (&env, &work_rx);
                        scope.spawn(move || {
                            let mut rng = fastrand::Rng::new();
                            loop {
                                let next = work_rx
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .recv();
                                let Ok((index, attempt)) = next else { break };
                                let outcome = execute_step(env, index, attempt, &mut rng);
                                if done_tx.send((index, outcome)).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    drop(done_tx);
                    let mut pool = Pool {
                        work: work_tx,
                        done: done_rx,
                    };
                    let statuses = schedule(run, &mut pool, workers);
                    drop(pool); // closes the work channel: the workers return
                    statuses
                })
            }
        }
    }
}

/// Where the scheduler sends steps to run and hears back from them.
trait Dispatch {
    fn start(&mut self, index: usize, attempt: u32);
    /// The next finished step, waiting at most `timeout` (forever if `None`).
    fn next(&mut self, timeout: Option<Duration>) -> Option<(usize, StepOutcome)>;
}

struct Inline<'e, 'a> {
    env: &'e StepEnv<'a>,
    done: VecDeque<(usize, StepOutcome)>,
    rng: fastrand::Rng,
}

impl Dispatch for Inline<'_, '_> {
    fn start(&mut self, index: usize, attempt: u32) {
        let outcome = execute_step(self.env, index, attempt, &mut self.rng);
        self.done.push_back((index, outcome));
    }

    fn next(&mut self, timeout: Option<Duration>) -> Option<(usize, StepOutcome)> {
        let next = self.done.pop_front();
        if next.is_none() {
            // Only a retry is pending, and nothing else can happen meanwhile.
            std::thread::sleep(timeout.unwrap_or_default());
        }
        next
    }
}

struct Pool {
    work: mpsc::Sender<(usize, u32)>,
    done: mpsc::Receiver<(usize, StepOutcome)>,
}

impl Dispatch for Pool {
    fn start(&mut self, index: usize, attempt: u32) {
        // The workers live as long as the pool: the send only fails if they all panicked,
        // and `next` then reports the disconnect.
        let _ = self.work.send((index, attempt));
    }

    fn next(&mut self, timeout: Option<Duration>) -> Option<(usize, StepOutcome)> {
        match timeout {
            None => self.done.recv().ok(),
            Some(t) => match self.done.recv_timeout(t) {
                Ok(done) => Some(done),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
            },
        }
    }
}

/// Runs the plan through `dispatch`, at most `limit` steps at a time: ready steps in plan
/// order, retries after their delay, and everything downstream of a failure skipped.
fn schedule(run: &RunContext<'_>, dispatch: &mut dyn Dispatch, limit: usize) -> Vec<StepStatus> {
    let plan = run.job.plan();
    let n = plan.steps.len();
    let upstream = plan.upstream_indices();
    let downstream = plan.downstream_indices();
    let mut remaining: Vec<usize> = upstream.iter().map(Vec::len).collect();
    let mut status = vec![StepStatus::NotRun; n];
    let mut attempt = vec![1_u32; n];
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| remaining[i] == 0).map(Reverse).collect();
    let mut retries: Vec<(Instant, usize)> = Vec::new();
    let mut running = 0;

    loop {
        let now = Instant::now();
        retries.retain(|&(due, i)| {
            let is_due = due <= now;
            if is_due {
                ready.push(Reverse(i));
            }
            !is_due
        });
        while running < limit {
            let Some(Reverse(i)) = ready.pop() else { break };
            running += 1;
            dispatch.start(i, attempt[i]);
        }
        if running == 0 && retries.is_empty() {
            break;
        }
        let timeout = retries
            .iter()
            .map(|(due, _)| due.saturating_duration_since(now))
            .min();
        let Some((i, outcome)) = dispatch.next(timeout) else {
            if timeout.is_none() {
                // Every worker is gone (they only stop early if a thread died): nothing
                // more will finish, so what still runs is lost.
                for s in status.iter_mut().filter(|s| **s == StepStatus::NotRun) {
                    *s = StepStatus::Failed;
                }
                break;
            }
            continue;
        };
        running -= 1;
        match outcome {
            StepOutcome::Success => {
                status[i] = StepStatus::Succeeded;
                for &d in &downstream[i] {
                    remaining[d] -= 1;
                    if remaining[d] == 0 && status[d] == StepStatus::NotRun {
                        ready.push(Reverse(d));
                    }
                }
            }
            StepOutcome::Failed {
                retry_in: Some(delay),
                ..
            } => {
                attempt[i] += 1;
                retries.push((Instant::now() + delay, i));
            }
            StepOutcome::Failed { retry_in: None, .. } => {
                status[i] = StepStatus::Failed;
                skip_downstream(run, i, &upstream, &downstream, &mut status);
            }
        }
    }
    status
}

/// Marks every step downstream of `failed` skipped (they never run) and reports each.
fn skip_downstream(
    run: &RunContext<'_>,
    failed: usize,
    upstream: &[Vec<usize>],
    downstream: &[Vec<usize>],
    status: &mut [StepStatus],
) {
    let plan = run.job.plan();
    let mut stack = downstream[failed].clone();
    let mut newly = Vec::new();
    while let Some(d) = stack.pop() {
        if status[d] == StepStatus::NotRun {
            status[d] = StepStatus::Skipped;
            newly.push(d);
            stack.extend(&downstream[d]);
        }
    }
    newly.sort_unstable();
    for d in newly {
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
