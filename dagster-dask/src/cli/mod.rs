//! The job binary's command line: `dagster_dask::main(job)`.
//!
//! ```text
//! job run [-c FILE]... [--run-id ID] [--quiet] [--progress auto|always|never]
//!                                                run the job (the default command)
//! job plan [--format text|json]                  print the execution plan
//! job graph [--format text|mermaid|dot]          print the graph
//! job validate -c FILE...                        check run config against the job
//! job runs [-c FILE] [--job J] [--status S]      list the runs on the storage, newest first
//! job runs delete RUN... | prune --older-than D  remove runs (outputs, logs, cache entries)
//! job show RUN [-c FILE]                         a run's summary and a table of its steps
//! job logs RUN [--step S] [--follow]             a run's events, as the console showed them
//! job report RUN [-o FILE]                       a run's HTML report
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

mod history;
mod runner;
mod step;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use self::runner::serve;
use self::step::step;
use self::summary::print_summary;
use crate::config::{self, RunConfig};
use crate::exec::Run;
use crate::graph::Job;
use crate::selection::Selection;

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
        #[command(flatten)]
        selection: SelectionArgs,
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
    /// List the runs on the storage, newest first; `runs delete`, `runs prune` remove them.
    Runs(history::RunsArgs),
    /// Show one run: its summary and a table of its steps.
    Show(history::RunRef),
    /// Print a run's events as the console showed them; `--follow` a run that goes on.
    Logs(history::LogsArgs),
    /// Write a run's HTML report (timeline, graph, logs), beside its event log or to `-o`.
    Report(history::ReportArgs),
    /// Run one step of one run (what executors start on workers).
    #[command(name = "__step", hide = true)]
    Step(StepArgs),
    /// Run steps of one run, one at a time, as requests come (the warm runner Dask workers
    /// keep per run).
    #[command(name = "__serve", hide = true)]
    Serve(ServeArgs),
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
    /// A live progress display instead of a line per event: `auto` when stderr is a
    /// terminal; logs, output lines and failures print above it.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    #[command(flatten)]
    selection: SelectionArgs,
    /// Re-execute this earlier run: a new run whose RUN_START names it; with --select or
    /// --from-failure, only those steps, their other inputs read from its stored outputs.
    #[arg(long, value_name = "RUN_ID", conflicts_with = "from")]
    reexecute: Option<String>,
    /// With --reexecute: only the steps that failed, never ended, or are downstream of one.
    #[arg(long, requires = "reexecute")]
    from_failure: bool,
    /// Run every step, also those of ops with a code version whose outputs are cached.
    #[arg(long)]
    no_cache: bool,
}

/// Part of the job: `--select EXPR [--from RUN_ID]`.
#[derive(Debug, Default, Clone, clap::Args)]
struct SelectionArgs {
    /// Run only these steps, Dagster's op selection: `name`, `*name` (with its ancestors),
    /// `name*` (descendants), `+name` / `name+` (one level), comma for a union.
    #[arg(long, value_name = "EXPR")]
    select: Option<String>,
    /// With --select: inputs from steps not selected read what this earlier run stored.
    #[arg(long = "from", value_name = "RUN_ID", requires = "select")]
    from: Option<String>,
}

impl SelectionArgs {
    /// The selected part of `job` (`None`: all of it); an error is printed, as usage.
    fn apply(&self, job: &Job) -> Result<Option<Job>, ExitCode> {
        let Some(expr) = &self.select else {
            return Ok(None);
        };
        Selection::parse(expr)
            .and_then(|s| s.apply(job, self.from.as_deref()))
            .map(Some)
            .map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_USAGE)
            })
    }
}

#[derive(Debug, clap::Args)]
struct StepArgs {
    /// The step's key.
    #[arg(long)]
    step: String,
    /// Which attempt this is, from 1.
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    #[command(flatten)]
    process: StepProcessArgs,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Where step requests come from: JSON lines `{"step", "attempt", "marker"}`.
    #[arg(long)]
    requests: PathBuf,
    #[command(flatten)]
    process: StepProcessArgs,
}

/// What a process that runs steps of a run needs: the run, its config, where messages go.
#[derive(Debug, clap::Args)]
struct StepProcessArgs {
    /// The run the steps belong to.
    #[arg(long)]
    run_id: String,
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
    /// The run's op selection, as the driver was given it.
    #[command(flatten)]
    selection: SelectionArgs,
    /// The run's `--no-cache`.
    #[arg(long)]
    no_cache: bool,
    /// What to capture of what ops log with `tracing` and `log` (the driver's `RUST_LOG`).
    #[arg(long, value_name = "DIRECTIVES")]
    log_filter: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    /// When stderr is a terminal.
    #[default]
    Auto,
    /// Always (drawn only where the terminal allows).
    Always,
    /// Never: a line per event.
    Never,
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

/// The hidden commands executors start job binaries with on workers (`__step`, `__serve`).
const STEP_COMMANDS: [&str; 2] = ["__step", "__serve"];

/// Whether this process was started by an executor to run steps (the job binary's hidden
/// `__step` or `__serve` command). A binary whose `main` does more than
/// [`main`] (a benchmark that starts its own cluster, say) hands over to it at
/// once when this is true.
pub fn is_step_process() -> bool {
    std::env::args()
        .nth(1)
        .is_some_and(|a| STEP_COMMANDS.contains(&a.as_str()))
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
    let command = cli.command.unwrap_or(Command::Run(RunArgs::default()));
    // What ops log is captured as the filter says: the driver's `RUST_LOG`, passed on to
    // step processes. The job binary owns the process: `log` records are bridged too.
    let directives = match &command {
        Command::Step(StepArgs { process, .. }) | Command::Serve(ServeArgs { process, .. }) => {
            process.log_filter.clone()
        }
        _ => std::env::var("RUST_LOG").ok(),
    };
    if let Err(e) = crate::events::set_filter(directives.as_deref().unwrap_or_default()) {
        eprintln!("error: {e} (RUST_LOG: e.g. `info` or `my_crate=debug,hyper=warn`)");
        return ExitCode::from(EXIT_USAGE);
    }
    crate::events::bridge_log_records();
    match command {
        Command::Run(args) => run(&job, defaults, args),
        Command::Plan { format, selection } => {
            let selected = match selection.apply(&job) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let plan = selected.as_ref().unwrap_or(&job).plan();
            match format {
                PlanFormat::Text => print!("{}", plan.to_text()),
                PlanFormat::Json => println!("{}", plan.to_json()),
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
        Command::Validate { config } => match load_config(&job, defaults, &config, None, false) {
            Ok(_) => {
                println!("run config is valid for job `{}`", job.name());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Runs(args) => history::runs(&job, args),
        Command::Show(args) => history::show(&job, args),
        Command::Logs(args) => history::logs(&job, args),
        Command::Report(args) => history::report(&job, args),
        // (step processes run the part of the job their run runs)
        Command::Step(args) => match args.process.selection.apply(&job) {
            Ok(selected) => step(selected.as_ref().unwrap_or(&job), defaults, args),
            Err(code) => code,
        },
        Command::Serve(args) => match args.process.selection.apply(&job) {
            Ok(selected) => serve(selected.as_ref().unwrap_or(&job), defaults, args),
            Err(code) => code,
        },
    }
}

/// Reads, merges and validates run config; prints the error and returns the exit code.
/// For part of a job (`selected`), the config of the other steps is dropped unread.
fn load_config(
    job: &Job,
    defaults: Option<&serde_json::Value>,
    files: &[PathBuf],
    json: Option<&str>,
    selected: bool,
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
    if selected {
        config::retain_steps(&mut value, job.plan());
    }
    RunConfig::from_value(&value, job).map_err(|e| usage(&e))
}

fn run(job: &Job, defaults: Option<&serde_json::Value>, args: RunArgs) -> ExitCode {
    // (a re-execution's parent is where steps outside the selection read from)
    let mut selection = args.selection.clone();
    selection.from = selection.from.or_else(|| args.reexecute.clone());
    let selected = match selection.apply(job) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let config = match load_config(
        selected.as_ref().unwrap_or(job),
        defaults,
        &args.config,
        None,
        selected.is_some(),
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut launch = Run::new(job)
        .config(config)
        .console(!args.quiet)
        .live_progress(match args.progress {
            ProgressMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ProgressMode::Always => true,
            ProgressMode::Never => false,
        })
        .cancel_on_interrupt(true)
        .no_cache(args.no_cache);
    if let Some(id) = args.run_id {
        launch = launch.run_id(id);
    }
    if let Some(expr) = &args.selection.select {
        launch = launch.select(expr.clone());
    }
    if let Some(parent) = &args.selection.from {
        launch = launch.from_run(parent.clone());
    }
    if let Some(parent) = &args.reexecute {
        launch = launch
            .reexecute(parent.clone())
            .from_failure(args.from_failure);
    }
    match launch.execute() {
        Ok(result) => {
            print_summary(selected.as_ref().unwrap_or(job), &result);
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
