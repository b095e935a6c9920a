//! The run history commands: `runs` (list, `delete`, `prune`), `show RUN`, `logs RUN`.
//!
//! They read the storage that the run config names (`-c`, as for `run`), so that a person
//! sees the runs of a bucket or a shared directory from any host.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::events::{Event, EventKind, RunSummary, read_run_summary};
use crate::graph::Job;
use crate::history::{self, HistoryError, time, took};
use crate::io::IoManager;

/// Where the runs are: the storage of the run config in these files.
#[derive(Debug, Default, Clone, clap::Args)]
pub(super) struct StorageArgs {
    /// Run config YAML naming the storage (`resources.io_manager`); the default storage
    /// directory without one.
    #[arg(short = 'c', long = "config", global = true)]
    config: Vec<PathBuf>,
}

/// `runs`: the runs on the storage, newest first.
#[derive(Debug, clap::Args)]
pub(super) struct RunsArgs {
    #[command(subcommand)]
    action: Option<RunsAction>,
    /// Only runs of this job.
    #[arg(long)]
    job: Option<String>,
    /// Only runs with this status: running, success, failure, canceled.
    #[arg(long)]
    status: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, clap::Subcommand)]
enum RunsAction {
    /// Remove runs: their outputs, logs, summary and the cache entries that point at them.
    Delete {
        /// Run ids (or unique prefixes).
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Remove the runs that ended more than a while ago.
    Prune {
        /// How long ago: `30d`, `12h`, `1h 30m`.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// Only runs with this status.
        #[arg(long)]
        status: Option<String>,
    },
}

/// `show RUN` and `logs RUN`.
#[derive(Debug, clap::Args)]
pub(super) struct RunRef {
    /// The run's id, or a prefix no other run shares.
    run: String,
    #[command(flatten)]
    storage: StorageArgs,
}

/// `logs RUN [--step S] [--follow]`.
#[derive(Debug, clap::Args)]
pub(super) struct LogsArgs {
    #[command(flatten)]
    run: RunRef,
    /// Only this step's events (a mapped step: `step[key]`, or `step` for all its keys).
    #[arg(long)]
    step: Option<String>,
    /// Keep printing events as they come until the run ends.
    #[arg(long, short = 'f')]
    follow: bool,
}

/// `report RUN [-o FILE]`.
#[derive(Debug, clap::Args)]
pub(super) struct ReportArgs {
    #[command(flatten)]
    run: RunRef,
    /// Write it here instead of beside the run's event log.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

/// The storage `args` names, or the error to print.
fn storage(job: &Job, args: &StorageArgs) -> Result<std::sync::Arc<dyn IoManager>, ExitCode> {
    let usage = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    };
    // Only the storage is read (`resources.io_manager`): the rest of a run config, checked
    // against no step, may be another run's.
    let value = crate::config::load_files(&args.config).map_err(|e| usage(&e))?;
    let io_manager = value
        .pointer("/resources/io_manager")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let only = serde_json::json!({ "resources": { "io_manager": io_manager } });
    let no_steps = crate::graph::JobBuilder::new(job.name())
        .build()
        .map_err(|e| usage(&e))?;
    let config = crate::config::RunConfig::from_value(&only, &no_steps).map_err(|e| usage(&e))?;
    crate::storage::open_io_manager(&config.io_manager).map_err(|e| usage(&e))
}

fn failed(e: &HistoryError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_FAILURE)
}

/// How long a run took, or has been going.
fn duration(run: &RunSummary) -> String {
    match run.ended {
        Some(end) => took(end - run.started),
        None => format!("{} so far", took(run.heartbeat - run.started)),
    }
}

pub(super) fn runs(job: &Job, args: RunsArgs) -> ExitCode {
    let io = match storage(job, &args.storage) {
        Ok(io) => io,
        Err(code) => return code,
    };
    match args.action {
        None => list(io.as_ref(), &args),
        Some(RunsAction::Delete { runs }) => {
            let mut code = ExitCode::SUCCESS;
            for prefix in runs {
                let removed = history::resolve_run(io.as_ref(), &prefix)
                    .and_then(|id| Ok((history::delete_run(io.as_ref(), &id)?, id)));
                match removed {
                    Ok((removed, id)) => println!(
                        "deleted run {id}: {} objects, {} cache entries, {} unfinished uploads",
                        removed.objects, removed.cache_entries, removed.uploads_aborted
                    ),
                    Err(e) => code = failed(&e),
                }
            }
            code
        }
        Some(RunsAction::Prune { older_than, status }) => {
            let runs = match history::prunable(io.as_ref(), older_than, status.as_deref()) {
                Ok(runs) => runs,
                Err(e) => return failed(&e),
            };
            let mut code = ExitCode::SUCCESS;
            for run in &runs {
                match history::delete_run(io.as_ref(), &run.run_id) {
                    Ok(removed) => println!(
                        "deleted run {} ({}, {}, ended {}): {} objects",
                        run.run_id,
                        run.job,
                        run.status,
                        run.ended.map_or_else(|| "?".to_owned(), time),
                        removed.objects
                    ),
                    Err(e) => code = failed(&e),
                }
            }
            println!(
                "pruned {} run(s) older than {}",
                runs.len(),
                humantime::format_duration(older_than)
            );
            code
        }
    }
}

fn list(io: &dyn IoManager, args: &RunsArgs) -> ExitCode {
    let runs = match history::list_runs(io) {
        Ok(runs) => runs,
        Err(e) => return failed(&e),
    };
    let shown: Vec<&RunSummary> = runs
        .iter()
        .filter(|r| args.job.as_ref().is_none_or(|j| *j == r.job))
        .filter(|r| args.status.as_ref().is_none_or(|s| *s == r.status))
        .take(args.limit)
        .collect();
    if shown.is_empty() {
        println!("no runs on {}", io.base_location());
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<36}  {:<16}  {:<21}  {:<20}  {:>12}  {:>14}  executor",
        "run", "job", "status", "started", "duration", "ok/failed/skip"
    );
    for run in shown {
        println!(
            "{:<36}  {:<16}  {:<21}  {:<20}  {:>12}  {:>14}  {}",
            run.run_id,
            run.job,
            history::shown_status(run),
            time(run.started),
            duration(run),
            format!("{}/{}/{}", run.succeeded, run.failed, run.skipped),
            run.executor
        );
    }
    ExitCode::SUCCESS
}

/// The run `run` names, its summary and its events.
fn open_run(
    io: &dyn IoManager,
    run: &str,
) -> Result<(String, RunSummary, Vec<Event>), HistoryError> {
    let id = history::resolve_run(io, run)?;
    let summary = read_run_summary(io, &id)?;
    let events = history::run_events(io, &id)?;
    Ok((id, summary, events))
}

pub(super) fn show(job: &Job, args: RunRef) -> ExitCode {
    let io = match storage(job, &args.storage) {
        Ok(io) => io,
        Err(code) => return code,
    };
    let (id, run, events) = match open_run(io.as_ref(), &args.run) {
        Ok(found) => found,
        Err(e) => return failed(&e),
    };
    println!("run {id}");
    println!("  job       {}", run.job);
    println!("  status    {}", history::shown_status(&run));
    println!("  executor  {}", run.executor);
    println!("  started   {}", time(run.started));
    println!("  duration  {}", duration(&run));
    println!(
        "  steps     {} succeeded, {} failed, {} skipped",
        run.succeeded, run.failed, run.skipped
    );
    if let Some(parent) = events.iter().find_map(|e| match &e.kind {
        EventKind::RunStart { parent_run_id, .. } => parent_run_id.clone(),
        _ => None,
    }) {
        println!("  parent    {parent}");
    }
    if let Some(link) = history::dashboard_link(&events) {
        println!("  dashboard {link}");
    }
    let rows = history::step_rows(&events);
    println!();
    println!(
        "{:<32}  {:<9}  {:>8}  {:<24}  {:>9}  {:>9}  error",
        "step", "status", "attempts", "worker", "start", "duration"
    );
    for row in rows {
        let secs = |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s"));
        println!(
            "{:<32}  {:<9}  {:>8}  {:<24}  {:>9}  {:>9}  {}",
            row.key,
            row.status,
            row.attempts,
            row.worker.as_deref().unwrap_or("-"),
            secs(row.start_offset),
            secs(row.duration),
            row.error.as_deref().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}

/// Whether `event` is one `--step` asks for.
fn of_step(event: &Event, step: Option<&str>) -> bool {
    let Some(step) = step else { return true };
    event.step_key.as_deref().is_some_and(|key| {
        key == step || crate::dynamic::split_instance(key).is_some_and(|(t, _)| t == step)
    })
}

fn ends_run(event: &Event) -> bool {
    matches!(
        event.kind,
        EventKind::RunSuccess { .. } | EventKind::RunFailure { .. } | EventKind::RunCanceled { .. }
    )
}

pub(super) fn logs(job: &Job, args: LogsArgs) -> ExitCode {
    let io = match storage(job, &args.run.storage) {
        Ok(io) => io,
        Err(code) => return code,
    };
    let id = match history::resolve_run(io.as_ref(), &args.run.run) {
        Ok(id) => id,
        Err(e) => return failed(&e),
    };
    let step = args.step.as_deref();
    let mut shown = 0;
    loop {
        let events = match history::run_events(io.as_ref(), &id) {
            Ok(events) => events,
            Err(e) => return failed(&e),
        };
        for event in events.iter().skip(shown).filter(|e| of_step(e, step)) {
            println!("{}", event.display_line());
        }
        shown = events.len();
        if !args.follow || events.iter().any(ends_run) {
            return ExitCode::SUCCESS;
        }
        // (a run whose driver died never writes its end: say so rather than wait forever)
        if let Ok(run) = read_run_summary(io.as_ref(), &id) {
            if run.is_abandoned(history::ABANDONED_AFTER) {
                eprintln!(
                    "run {id} has had no heartbeat since {}: its driver is gone",
                    time(run.heartbeat)
                );
                return ExitCode::from(EXIT_FAILURE);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub(super) fn report(job: &Job, args: ReportArgs) -> ExitCode {
    let io = match storage(job, &args.run.storage) {
        Ok(io) => io,
        Err(code) => return code,
    };
    let (id, events) = match history::resolve_run(io.as_ref(), &args.run.run)
        .and_then(|id| Ok((id.clone(), history::run_events(io.as_ref(), &id)?)))
    {
        Ok(found) => found,
        Err(e) => return failed(&e),
    };
    let html = crate::report::render(job.plan(), &id, &events);
    let size = html.len();
    let written = match &args.output {
        Some(path) => std::fs::write(path, html)
            .map(|()| path.display().to_string())
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => io
            .put_run_file(&id, crate::report::REPORT_FILE, html.into_bytes())
            .map_err(|e| e.to_string()),
    };
    match written {
        Ok(place) => {
            println!(
                "report of run {id} ({:.1} KiB): {place}",
                size as f64 / 1024.0
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
