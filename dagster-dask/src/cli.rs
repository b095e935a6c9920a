//! The job binary's command line: `dagster_dask::main(job)`.
//!
//! ```text
//! job run [-c FILE]... [--run-id ID] [--quiet]   run the job (the default command)
//! job plan [--format text|json]                  print the execution plan
//! job graph [--format text|mermaid|dot]          print the graph
//! job validate -c FILE...                        check run config against the job
//! ```
//!
//! A hidden `__step` command runs exactly one step of one run: the step mode that executors
//! start on workers. It loads the step's inputs from the IO manager, runs it, stores its
//! output and writes its events as JSON lines on stdout (any other stdout line is the op's
//! own output). Exit codes: 0 success, 1 the run (or step) failed, 2 bad usage or config.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{self, RunConfig};
use crate::events::{EventKind, EventSink, JsonLinesStdout};
use crate::exec::step::{StepEnv, StepOutcome, execute_step};
use crate::exec::{Run, RunResult, RunStatus, StepStatus, check_run_id, open_io_manager};
use crate::graph::Job;

/// Exit code of a run or step that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage or bad config: nothing ran.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(about = "A dagster-dask job binary", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the job (the default when no command is given).
    Run(RunArgs),
    /// Print the execution plan: steps in order, inputs, types, resources, retries.
    Plan {
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Print the job's graph.
    Graph {
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Check run config files against the job without running anything.
    Validate {
        /// Run config YAML; several files merge, later ones win.
        #[arg(short = 'c', long = "config", required = true)]
        config: Vec<PathBuf>,
    },
    /// Run one step of one run (what executors start on workers).
    #[command(name = "__step", hide = true)]
    Step(StepArgs),
}

#[derive(Debug, Default, clap::Args)]
struct RunArgs {
    /// Run config YAML; several files merge, later ones win.
    #[arg(short = 'c', long = "config")]
    config: Vec<PathBuf>,
    /// Use this run id instead of a new one.
    #[arg(long)]
    run_id: Option<String>,
    /// Do not print events while the run goes (the summary is still printed).
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct StepArgs {
    /// The run the step belongs to.
    #[arg(long)]
    run_id: String,
    /// The step's key.
    #[arg(long)]
    step: String,
    /// Which attempt this is, from 1.
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    /// Run config YAML files.
    #[arg(short = 'c', long = "config")]
    config: Vec<PathBuf>,
    /// Run config as JSON (merged over the files): what the driver validated.
    #[arg(long)]
    config_json: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Text,
    Mermaid,
    Dot,
}

/// Runs the job binary's command line over `std::env::args`.
pub fn main(job: Job) -> ExitCode {
    main_with_args(job, None, std::env::args_os())
}

/// Like [`main`], with a default run config (YAML) under the files given with `-c`, as
/// Dagster's `@job(config=...)`: `-c` files merge over it, key by key.
pub fn main_with_defaults(job: Job, default_config_yaml: &str) -> ExitCode {
    main_with_args(job, Some(default_config_yaml), std::env::args_os())
}

/// Runs the command line over `args` (the first is the program name), with an optional
/// default run config.
pub fn main_with_args<I, T>(job: Job, defaults: Option<&str>, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let defaults = match defaults.map(|y| config::parse_yaml(y, "the job's default run config")) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let defaults = defaults.as_ref();
    // The help names the job and says what it does; the binary's file name may not.
    let about = match &job.plan().description {
        Some(d) => format!("Job `{}`: {d}", job.name()),
        None => format!("Job `{}`, a dagster-dask job binary", job.name()),
    };
    let parsed = Cli::command()
        .about(about)
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => run(&job, defaults, args),
        Command::Plan { format } => {
            match format {
                PlanFormat::Text => print!("{}", job.plan().to_text()),
                PlanFormat::Json => println!("{}", job.plan().to_json()),
            }
            ExitCode::SUCCESS
        }
        Command::Graph { format } => {
            let plan = job.plan();
            print!(
                "{}",
                match format {
                    GraphFormat::Text => plan.to_text(),
                    GraphFormat::Mermaid => plan.to_mermaid(),
                    GraphFormat::Dot => plan.to_dot(),
                }
            );
            ExitCode::SUCCESS
        }
        Command::Validate { config } => match load_config(&job, defaults, &config, None) {
            Ok(_) => {
                println!("run config is valid for job `{}`", job.name());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Step(args) => step(&job, defaults, args),
    }
}

/// Reads, merges and validates run config; prints the error and returns the exit code.
fn load_config(
    job: &Job,
    defaults: Option<&serde_json::Value>,
    files: &[PathBuf],
    json: Option<&str>,
) -> Result<RunConfig, ExitCode> {
    let usage = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    };
    let mut value = defaults.cloned().unwrap_or_else(|| serde_json::json!({}));
    config::merge(
        &mut value,
        config::load_files(files).map_err(|e| usage(&e))?,
    );
    if let Some(json) = json {
        let overlay: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| usage(&format!("--config-json is not JSON: {e}")))?;
        config::merge(&mut value, overlay);
    }
    RunConfig::from_value(&value, job).map_err(|e| usage(&e))
}

fn run(job: &Job, defaults: Option<&serde_json::Value>, args: RunArgs) -> ExitCode {
    let config = match load_config(job, defaults, &args.config, None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut launch = Run::new(job)
        .config(config)
        .console(!args.quiet)
        .cancel_on_interrupt(true);
    if let Some(id) = args.run_id {
        launch = launch.run_id(id);
    }
    match launch.execute() {
        Ok(result) => {
            print_summary(job, &result);
            if result.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The longest output value printed in a run summary.
const SUMMARY_VALUE_CHARS: usize = 200;

fn print_summary(job: &Job, result: &RunResult) {
    let plan = job.plan();
    let count = |s: StepStatus| {
        plan.steps
            .iter()
            .filter(|p| result.step_status(&p.key) == Some(s))
            .count()
    };
    if result.success() {
        println!(
            "RUN_SUCCESS job `{}` run {}: {} steps succeeded",
            plan.job,
            result.run_id(),
            plan.steps.len()
        );
        for index in plan.sinks() {
            let key = &plan.steps[index].key;
            let shown = result
                .output_bytes(key)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    (job.step(index).spec.output_to_json)(&bytes).map_err(|e| e.to_string())
                })
                .map(|v| truncate(&v.to_string(), SUMMARY_VALUE_CHARS));
            match shown {
                Ok(value) => println!("  {key} = {value}"),
                Err(e) => println!("  {key}: (cannot show: {e})"),
            }
        }
    } else {
        let outcome = if result.status() == RunStatus::Canceled {
            "RUN_CANCELED"
        } else {
            "RUN_FAILURE"
        };
        println!(
            "{outcome} job `{}` run {}: {} succeeded, {} failed, {} skipped, {} not run",
            plan.job,
            result.run_id(),
            count(StepStatus::Succeeded),
            count(StepStatus::Failed),
            count(StepStatus::Skipped),
            count(StepStatus::NotRun)
        );
        for event in result.events() {
            if let (Some(step), EventKind::StepFailure { error, .. }) =
                (&event.step_key, &event.kind)
            {
                let place = event
                    .worker
                    .as_deref()
                    .map(|w| format!(" on worker {w}"))
                    .unwrap_or_default();
                println!(
                    "  {step} failed{place}: {}",
                    error.to_string().replace('\n', "\n  ")
                );
            }
        }
    }
    let placement = placement(result);
    if !placement.is_empty() {
        println!("workers: {placement}");
    }
    if let Some(path) = result.event_log() {
        println!("event log: {}", path.display());
    }
}

/// `worker-a [step1, step2], worker-b [step3]`: where the steps ran, from their events.
fn placement(result: &RunResult) -> String {
    let mut by_worker: std::collections::BTreeMap<&str, Vec<&str>> =
        std::collections::BTreeMap::new();
    for event in result.events() {
        if let (Some(step), Some(worker), EventKind::StepStart | EventKind::StepRestarted { .. }) =
            (&event.step_key, &event.worker, &event.kind)
        {
            let steps = by_worker.entry(worker).or_default();
            if !steps.contains(&step.as_str()) {
                steps.push(step);
            }
        }
    }
    by_worker
        .iter()
        .map(|(w, steps)| format!("{w} [{}]", steps.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}... ({} chars)", &s[..cut], s.chars().count()),
        None => s.to_owned(),
    }
}

/// Ends this step process when its parent (the Dask worker) is gone, so a lost worker leaves
/// no orphan step behind. (Polling the parent id needs no `unsafe` and, unlike a
/// `PR_SET_PDEATHSIG` set up in the worker, keeps the worker's fast spawn path.)
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if std::os::unix::process::parent_id() != parent {
                // Not `eprintln!`: with the worker gone, stderr may be a broken pipe.
                let _ = writeln!(
                    std::io::stderr(),
                    "dagster-dask step: the process that started this step (pid {parent}) is gone; stopping"
                );
                std::process::exit(i32::from(EXIT_FAILURE));
            }
        }
    });
}

fn step(job: &Job, defaults: Option<&serde_json::Value>, args: StepArgs) -> ExitCode {
    exit_with_parent();
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(EXIT_USAGE)
    };
    let config = match load_config(job, defaults, &args.config, args.config_json.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = check_run_id(&args.run_id) {
        return usage(e.to_string());
    }
    let Some(index) = job.plan().index_of(&args.step) else {
        let known: Vec<&str> = job.plan().steps.iter().map(|s| s.key.as_str()).collect();
        return usage(format!(
            "job `{}` has no step `{}` (steps: {})",
            job.name(),
            args.step,
            known.join(", ")
        ));
    };
    if args.attempt == 0 {
        return usage("--attempt counts from 1".to_owned());
    }
    if config.io_manager.in_memory {
        return usage("step mode needs storage other processes can read: the in-memory IO manager is per process".to_owned());
    }
    let io = match open_io_manager(&config.io_manager) {
        Ok(io) => io,
        Err(e) => return usage(e.to_string()),
    };
    let sink: Arc<dyn EventSink> = Arc::new(JsonLinesStdout);
    let env = StepEnv {
        job,
        run_id: &args.run_id,
        io: io.as_ref(),
        sink: &sink,
        op_config: &config.ops,
    };
    match execute_step(&env, index, args.attempt, &mut fastrand::Rng::new()) {
        StepOutcome::Success => ExitCode::SUCCESS,
        StepOutcome::Failed { .. } => ExitCode::from(EXIT_FAILURE),
    }
}
