//! Where events go: the [`EventSink`] trait, and the run's own log ([`RunLog`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::stored::StoredLog;
use super::{Event, EventKind};

/// Where events go.
pub trait EventSink: Send + Sync {
    /// Records one event. Sinks do not fail: a sink that cannot write reports it once on
    /// stderr and keeps the run going, since losing a log line must not fail a pipeline.
    fn emit(&self, event: Event);

    /// The run made `count` more steps while it went (one per mapping key of a dynamic
    /// output): a sink that counts steps counts them too.
    fn steps_made(&self, _count: usize) {}
}

/// Writes each event as one JSON line on stdout.
#[derive(Debug, Default)]
pub struct JsonLinesStdout;

impl EventSink for JsonLinesStdout {
    fn emit(&self, event: Event) {
        let mut out = std::io::stdout().lock();
        // A closed stdout means the driver is gone; there is no one left to tell.
        if serde_json::to_writer(&mut out, &event).is_ok() {
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }
}

/// How many output lines (`STEP_OUTPUT_LINE`) a run with an event log file keeps in memory;
/// the file has all of them. Without a file, every line stays in memory.
pub const OUTPUT_LINES_IN_MEMORY: usize = 10_000;

/// The events of one run: kept in memory, appended to `events.jsonl` and printed, as asked.
/// With a file, output lines past [`OUTPUT_LINES_IN_MEMORY`] are in the file only, so that a
/// step printing millions of lines does not fill the driver's memory.
#[derive(Debug)]
pub struct RunLog {
    inner: Mutex<RunLogInner>,
    path: Option<PathBuf>,
    console: bool,
    /// The number of steps, when the console shows progress (steps made while the run goes
    /// are added).
    steps: Option<std::sync::atomic::AtomicUsize>,
    /// The run's summary (and an object store's event log) on the run's storage.
    stored: std::sync::OnceLock<StoredLog>,
    /// The live progress display, instead of a line per event.
    live: Option<super::progress::LiveProgress>,
}

#[derive(Debug)]
struct RunLogInner {
    events: Vec<Event>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    write_failed: bool,
    /// Steps that ended (succeeded, failed for good, or skipped).
    ended: usize,
    /// Output lines kept in memory, and those only in the file.
    lines_kept: usize,
    lines_in_file_only: usize,
}

impl RunLog {
    /// A log kept in memory only.
    pub fn in_memory(console: bool) -> Self {
        Self {
            inner: Mutex::new(RunLogInner {
                events: Vec::new(),
                file: None,
                write_failed: false,
                ended: 0,
                lines_kept: 0,
                lines_in_file_only: 0,
            }),
            path: None,
            console,
            steps: None,
            stored: std::sync::OnceLock::new(),
            live: None,
        }
    }

    /// From now on, also keeps the run's summary on `io` (`<run_id>/run.json`), and its
    /// events as segments when `segments` (storage that cannot append). Once per log.
    pub(crate) fn store_on(
        &self,
        io: std::sync::Arc<dyn crate::io::IoManager>,
        run_id: &str,
        segments: bool,
    ) {
        let _ = self
            .stored
            .get_or_init(|| StoredLog::start(io, run_id, segments));
    }

    /// Shows progress on the console: each line that ends a step says how many of `steps`
    /// have ended, so a long run shows how far it is.
    pub fn with_progress(mut self, steps: usize) -> Self {
        self.steps = Some(std::sync::atomic::AtomicUsize::new(steps));
        self
    }

    /// Shows a live progress display of `steps` steps on the console (a terminal) instead of
    /// a line per event: logs, output lines and failures print above it.
    pub fn with_live_progress(mut self, steps: usize) -> Self {
        if self.console {
            self.live = Some(super::progress::LiveProgress::new(steps));
        }
        self
    }

    /// A log also appended, as JSON lines, to `path` (its directory is created).
    pub fn to_file(path: &Path, console: bool) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let log = Self::in_memory(console);
        log.lock().file = Some(std::io::BufWriter::new(file));
        Ok(Self {
            path: Some(path.to_owned()),
            ..log
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunLogInner> {
        // A panic while holding the lock leaves a consistent Vec; keep logging.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The JSON lines file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every event so far (output lines past [`OUTPUT_LINES_IN_MEMORY`] only when there is
    /// no file).
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// Takes the events kept so far, without copying them.
    pub(crate) fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }

    /// How many output lines are in the event log file only.
    pub fn output_lines_in_file_only(&self) -> usize {
        self.lock().lines_in_file_only
    }

    /// Flushes the file.
    pub fn flush(&self) {
        let mut inner = self.lock();
        if let Some(file) = inner.file.as_mut() {
            let _ = file.flush();
        }
    }

    /// Ends the log: flushes the file and stores what the storage does not have yet;
    /// returns where the run's files are on its storage, when they were stored.
    pub(crate) fn close(&self) -> Option<String> {
        if let Some(live) = &self.live {
            live.finish();
        }
        self.flush();
        self.stored.get().and_then(StoredLog::finish)
    }
}

impl EventSink for RunLog {
    fn steps_made(&self, count: usize) {
        if let Some(live) = &self.live {
            live.steps_made(count);
        }
        if let Some(total) = &self.steps {
            total.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn emit(&self, event: Event) {
        let mut inner = self.lock();
        let step_ended = matches!(
            event.kind,
            EventKind::StepSuccess { .. }
                | EventKind::StepFailure { .. }
                | EventKind::StepSkipped { .. }
        );
        if step_ended {
            inner.ended += 1;
        }
        if let Some(live) = &self.live {
            if live.on_event(&event) {
                live.println(&event.display_line());
            }
        } else if self.console {
            // A closed stderr (`| head`) must not stop the run: errors are dropped.
            let mut err = std::io::stderr().lock();
            let _ = match &self.steps {
                Some(total) if step_ended => {
                    let total = total.load(std::sync::atomic::Ordering::Relaxed);
                    writeln!(err, "{} [{}/{total}]", event.display_line(), inner.ended)
                }
                _ => writeln!(err, "{}", event.display_line()),
            };
        }

        let mut in_file = false;
        if let Some(file) = inner.file.as_mut() {
            let written = serde_json::to_writer(&mut *file, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| file.write_all(b"\n"))
                // Every line is flushed: the log is read while runs go (`tail -f`, a UI),
                // and a line costs one write next to the step's own storage work.
                .and_then(|()| file.flush());
            in_file = written.is_ok();
            if let Err(e) = written {
                if !inner.write_failed {
                    inner.write_failed = true;
                    eprintln!(
                        "dagster-dask: cannot write the event log {}: {e}; events stay in memory",
                        self.path.as_deref().unwrap_or(Path::new("?")).display()
                    );
                }
            }
        }
        if let Some(stored) = self.stored.get() {
            in_file |= stored.push(&event);
        }
        if matches!(event.kind, EventKind::StepOutputLine { .. }) {
            if in_file && !inner.write_failed && inner.lines_kept >= OUTPUT_LINES_IN_MEMORY {
                inner.lines_in_file_only += 1;
                return;
            }
            inner.lines_kept += 1;
        }
        inner.events.push(event);
    }
}
