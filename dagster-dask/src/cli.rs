//! The job binary's command line: `dagster_dask::main(job)`.
//!
//! ```text
//! job run [-c FILE]... [--run-id ID] [--quiet]   run the job (the default command)
//! job plan [--format text|json]                  print the execution plan
//! job graph [--format text|mermaid|dot]          print the graph
//! job validate -c FILE...                        check run config against the job
//! ```
//!
//! A hidden `__step` command runs exactly one attempt of one step of one run: the step mode
//! that executors start on workers. It reads the run config from `-c` files and, with
//! `--config-stdin`, from its stdin (never argv), loads the step's inputs from the IO manager,
//! runs it, stores its output and writes its messages as JSON lines to `--events` (a pipe its
//! launcher passes, e.g. `/dev/fd/3`; stdout when absent, for a person running a step by
//! hand). What the op writes to stdout and stderr is only ever its output.
//!
//! Exit codes: 0 the run succeeded; 1 the run started and failed or was canceled, whatever
//! the cause (a step, a lost cluster, Ctrl-C); 2 the run never started (bad usage, config or
//! anything checked before `RUN_START`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{self, RunConfig};
use crate::events::{Event, EventKind, EventSink};
use crate::exec::dask::protocol::StepMessage;
use crate::exec::state::AttemptEnd;
use crate::exec::step::{StepEnv, execute_step};
use crate::exec::{Run, RunId, RunResult, RunStatus, StepStatus, open_io_manager};
use crate::graph::Job;

/// Exit code of a run that started and failed or was canceled, or of a failed step.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a run that never started: bad usage, bad config, or anything checked before
/// `RUN_START`.
pub const EXIT_USAGE: u8 = 2;

/// What `--help` says of exit codes.
const EXIT_CODES: &str = "Exit codes: 0 the run succeeded; 1 the run started and failed or was \
canceled (a step failed, the cluster was lost, Ctrl-C); 2 the run never started (bad usage, \
bad config, or anything checked before RUN_START).";

#[derive(Debug, Parser)]
#[command(about = "A dagster-dask job binary", long_about = None, after_help = EXIT_CODES)]
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
    /// Read run config as JSON from stdin (merged over the files): what the driver
    /// validated, kept out of argv.
    #[arg(long)]
    config_stdin: bool,
    /// Where to write the step's messages (JSON lines); stdout when absent.
    #[arg(long)]
    events: Option<PathBuf>,
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
            .map_err(|e| usage(&format!("the run config on stdin is not JSON: {e}")))?;
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
        // The run never started.
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
        if let Some(error) = result.engine_error() {
            println!("  the executor could not go on: {error}");
        }
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

/// The step process's messages: JSON lines on the channel its launcher passed.
struct StepMessages {
    out: std::sync::Mutex<Box<dyn std::io::Write + Send>>,
}

impl StepMessages {
    fn open(path: Option<&std::path::Path>) -> std::io::Result<Self> {
        let out: Box<dyn std::io::Write + Send> = match path {
            Some(path) => Box::new(std::fs::OpenOptions::new().write(true).open(path)?),
            None => Box::new(std::io::stdout()),
        };
        Ok(Self {
            out: std::sync::Mutex::new(out),
        })
    }

    fn send(&self, message: &StepMessage) {
        // Messages are plain serde data: they always serialize.
        let Ok(mut line) = serde_json::to_vec(message) else {
            return;
        };
        line.push(b'\n');
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One write per line; a closed channel means the launcher is gone, with no one left
        // to tell.
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
}

impl EventSink for StepMessages {
    fn emit(&self, event: Event) {
        self.send(&StepMessage::Event(event));
    }
}

fn step(job: &Job, defaults: Option<&serde_json::Value>, args: StepArgs) -> ExitCode {
    exit_with_parent();
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(EXIT_USAGE)
    };
    let stdin_config = if args.config_stdin {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            return usage(format!("cannot read the run config from stdin: {e}"));
        }
        Some(text)
    } else {
        None
    };
    let config = match load_config(job, defaults, &args.config, stdin_config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let run_id = match RunId::parse(&args.run_id) {
        Ok(id) => id,
        Err(e) => return usage(e.to_string()),
    };
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
    let messages = match StepMessages::open(args.events.as_deref()) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            let path = args.events.as_deref().unwrap_or(std::path::Path::new("-"));
            return usage(format!("cannot open --events {}: {e}", path.display()));
        }
    };
    let sink: Arc<dyn EventSink> = Arc::clone(&messages) as Arc<dyn EventSink>;
    let env = StepEnv {
        job,
        run_id: run_id.as_str(),
        io: io.as_ref(),
        sink: &sink,
        op_config: &config.ops,
    };
    let end = execute_step(&env, index, args.attempt);
    let code = match end {
        AttemptEnd::Success { .. } => ExitCode::SUCCESS,
        AttemptEnd::Failure(_) => ExitCode::from(EXIT_FAILURE),
    };
    messages.send(&StepMessage::Ended(end));
    code
}
