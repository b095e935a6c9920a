//! The embedded executor: the plan runs in this process, on a bounded pool of threads
//! (`multithread`) or strictly one step after another in the calling thread (`in_process`).
//!
//! The threads share the run's state under its mutex: a thread that finishes a step records
//! it and takes the next ready step itself. A chain of steps therefore runs on one thread
//! without a hand-off per step, and a fan-out wakes as many threads as there are ready steps.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use super::state::{Next, SharedState};
use super::step::{StepTarget, execute_step};
use super::{Executor, RunContext, RunError};

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
}

impl Executor for EmbeddedExecutor {
    fn name(&self) -> String {
        EmbeddedExecutor::name(self)
    }

    fn execute(&self, run: &RunContext<'_>, state: &Arc<SharedState>) -> Result<(), RunError> {
        run.interrupts.set({
            let state = Arc::clone(state);
            move |count| {
                if count > 1 {
                    let _ = writeln!(std::io::stderr(), "interrupted twice: exiting now");
                    std::process::exit(130);
                }
                state.lock().cancel(
                    "interrupted (SIGINT/SIGTERM): running steps finished, no new step started",
                );
                state.wake.notify_all();
            }
        });
        match self.threads {
            None => work(run, state),
            Some(n) => {
                let threads = n.min(run.job.plan().steps.len()).max(1);
                std::thread::scope(|scope| {
                    for _ in 1..threads {
                        scope.spawn(|| work(run, state));
                    }
                    work(run, state);
                });
            }
        }
        Ok(())
    }
}

/// One thread's share of the run: take a ready step, run it, record how it ended, until the
/// run is over.
fn work(run: &RunContext<'_>, shared: &SharedState) {
    let env = run.step_env();
    let mut state = shared.lock();
    loop {
        match state.next(Instant::now()) {
            Next::Run(index, attempt) => {
                let deadline = state.deadline(index);
                let (plan, key) = (state.plan_index(index), state.key(index).to_owned());
                drop(state);
                let target = StepTarget { plan, key: &key };
                let end = execute_step(&env, target, attempt, deadline);
                state = shared.lock();
                // (the attempt `next` handed out: always the current one)
                let _ = match end {
                    Some(end) => state.end_attempt(index, attempt, end),
                    None => state.time_out(
                        index,
                        attempt,
                        Instant::now(),
                        "; the op's thread was abandoned (threads cannot be killed) and what \
                         it does from now on is dropped",
                    ),
                };
                // New ready steps, a retry to time, or the end: others may have work.
                shared.wake.notify_all();
            }
            Next::Wait(timeout) => state = shared.wait(state, timeout),
            Next::Done => return,
        }
    }
}
