//! The live progress display of a run on a terminal: steps done, running, failed and in
//! all, the steps running now and where, the time so far and an estimate; logs, output
//! lines and failures print above it, the routine events of each step do not.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Event, EventKind};

/// How many running steps the display names.
const RUNNING_SHOWN: usize = 3;

/// A progress bar on stderr, kept current from the run's events.
#[derive(Debug)]
pub(crate) struct LiveProgress {
    bar: ProgressBar,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    failed: usize,
    skipped: usize,
    /// The steps running now, and the worker of each (when a cluster runs it).
    running: BTreeMap<String, Option<String>>,
}

impl LiveProgress {
    /// A display of a run of `steps` steps, drawn on stderr when it is a terminal.
    pub(crate) fn new(steps: usize) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(steps as u64),
            ProgressDrawTarget::stderr_with_hz(8),
        );
        // (the template is a constant: it always parses)
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:24}] {pos}/{len} steps done (eta {eta}), {wide_msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("0 running");
        bar.enable_steady_tick(Duration::from_millis(250));
        Self {
            bar,
            counts: Mutex::new(Counts::default()),
        }
    }

    /// The run made `count` more steps (mapping keys of a dynamic output).
    pub(crate) fn steps_made(&self, count: usize) {
        self.bar.inc_length(count as u64);
    }

    /// Takes `event` into the display; returns whether its line prints above it.
    pub(crate) fn on_event(&self, event: &Event) -> bool {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = event.step_key.clone().unwrap_or_default();
        let shown = match &event.kind {
            EventKind::StepStart | EventKind::StepRestarted { .. } => {
                counts.running.insert(key, event.worker.clone());
                matches!(event.kind, EventKind::StepRestarted { .. })
            }
            EventKind::StepSuccess { .. } => {
                counts.running.remove(&key);
                self.bar.inc(1);
                false
            }
            EventKind::StepFailure { .. } => {
                counts.running.remove(&key);
                counts.failed += 1;
                self.bar.inc(1);
                true
            }
            EventKind::StepSkipped { .. } => {
                counts.skipped += 1;
                self.bar.inc(1);
                false
            }
            EventKind::StepUpForRetry { .. } => {
                counts.running.remove(&key);
                true
            }
            EventKind::LoadedInput { .. }
            | EventKind::StepOutput { .. }
            | EventKind::HandledOutput { .. } => {
                if let (Some(w), Some(slot)) = (&event.worker, counts.running.get_mut(&key)) {
                    *slot = Some(w.clone());
                }
                false
            }
            _ => true,
        };
        self.bar.set_message(counts.message());
        shown
    }

    /// Prints `line` above the display.
    pub(crate) fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the display: the run is over.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Counts {
    /// `2 running, 1 failed, 3 skipped; now: a (worker-1), b, and 4 more`.
    fn message(&self) -> String {
        let mut msg = format!("{} running", self.running.len());
        if self.failed > 0 {
            msg.push_str(&format!(", {} failed", self.failed));
        }
        if self.skipped > 0 {
            msg.push_str(&format!(", {} skipped", self.skipped));
        }
        if !self.running.is_empty() {
            let now: Vec<String> = self
                .running
                .iter()
                .take(RUNNING_SHOWN)
                .map(|(step, worker)| match worker {
                    Some(w) => format!("{step} on {w}"),
                    None => step.clone(),
                })
                .collect();
            msg.push_str("; now: ");
            msg.push_str(&now.join(", "));
            if let Some(more) = self
                .running
                .len()
                .checked_sub(RUNNING_SHOWN)
                .filter(|m| *m > 0)
            {
                msg.push_str(&format!(", and {more} more"));
            }
        }
        msg
    }
}
