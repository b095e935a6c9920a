//! Step mode: attempts of steps in a process that is not the run's driver, as workers run
//! them: `__step` runs one attempt and exits; the warm runner (`__serve`, see `runner`) runs
//! many, one at a time, on the same [`StepProcess`].

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use super::{EXIT_FAILURE, EXIT_USAGE, StepArgs, StepProcessArgs, load_config};
use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, EventSink};
use crate::exec::dask::protocol::StepMessage;
use crate::exec::state::AttemptEnd;
use crate::exec::step::{StepEnv, StepTarget, execute_step};
use crate::graph::Job;
use crate::run::RunId;
use crate::storage::open_io_manager;

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
                // Children the op started go too: the wrapper made this process the leader
                // of its own process group (not a leader: there is no group of this id).
                let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(me),
                    nix::sys::signal::Signal::SIGKILL,
                );
                std::process::exit(i32::from(EXIT_FAILURE));
            }
        }
    });
}

/// The step process's messages: JSON lines on the channel its launcher passed.
pub(super) struct StepMessages {
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

    pub(super) fn send(&self, message: &StepMessage) {
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

/// What every step of a run needs in a step process: set up once per process.
pub(super) struct StepProcess {
    config: crate::config::RunConfig,
    run_id: RunId,
    io: Arc<dyn crate::io::IoManager>,
    /// Built when a step first needs them, for every step this process runs.
    resources: Arc<crate::resource::Resources>,
    /// The run's `--no-cache`.
    no_cache: bool,
    pub(super) messages: Arc<StepMessages>,
}

impl StepProcess {
    /// Reads the run config (files, then stdin), opens the IO manager and the message
    /// channel; an error is printed and becomes the exit code.
    pub(super) fn open(
        job: &Job,
        defaults: Option<&serde_json::Value>,
        args: &StepProcessArgs,
    ) -> Result<Self, ExitCode> {
        exit_with_parent();
        let stdin_config = if args.config_stdin {
            let mut text = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                return Err(usage(format!("cannot read the run config from stdin: {e}")));
            }
            Some(text)
        } else {
            None
        };
        let selected = args.selection.select.is_some();
        let config = load_config(
            job,
            defaults,
            &args.config,
            stdin_config.as_deref(),
            selected,
        )?;
        let run_id = RunId::parse(&args.run_id).map_err(|e| usage(e.to_string()))?;
        if config.io_manager.in_memory {
            return Err(usage("step mode needs storage other processes can read: the in-memory IO manager is per process".to_owned()));
        }
        let io = open_io_manager(&config.io_manager).map_err(|e| usage(e.to_string()))?;
        let messages = StepMessages::open(args.events.as_deref()).map_err(|e| {
            let path = args.events.as_deref().unwrap_or(std::path::Path::new("-"));
            usage(format!("cannot open --events {}: {e}", path.display()))
        })?;
        let resources = Arc::new(crate::resource::Resources::new(
            run_id.as_str(),
            job.resources(),
            &config.resources,
        ));
        Ok(Self {
            config,
            run_id,
            io,
            resources,
            no_cache: args.no_cache,
            messages: Arc::new(messages),
        })
    }

    /// Runs attempt `attempt` of step `key`, sends how it ended as the last message, and
    /// returns it; a step or attempt that cannot be is an error message.
    pub(super) fn run(&self, job: &Job, key: &str, attempt: u32) -> Result<AttemptEnd, String> {
        let Some(target) = StepTarget::find(job.plan(), key) else {
            let mapped = job.plan().steps.iter().any(|s| s.mapped.is_some());
            return Err(format!(
                "job `{}` has no step `{key}` (steps: {}){}",
                job.name(),
                job.plan().step_keys_to_show(),
                if mapped {
                    "; a mapped step runs as `step[mapping_key]`"
                } else {
                    ""
                }
            ));
        };
        if attempt == 0 {
            return Err("--attempt counts from 1".to_owned());
        }
        let sink: Arc<dyn EventSink> = Arc::clone(&self.messages) as Arc<dyn EventSink>;
        let env = StepEnv {
            job,
            run_id: self.run_id.as_str(),
            io: self.io.as_ref(),
            sink: &sink,
            config: &self.config,
            resources: &self.resources,
            cache: !self.no_cache,
        };
        // (no deadline here: the task wrapper on the worker enforces `max_runtime` by killing
        // this process, so the op needs no thread of its own)
        let end = execute_step(&env, target, attempt, None).unwrap_or_else(|| {
            AttemptEnd::Failure(ErrorInfo::new(
                ErrorKind::Timeout,
                "the step passed its deadline",
            ))
        });
        self.messages.send(&StepMessage::Ended(end.clone()));
        Ok(end)
    }
}

/// Prints a usage error; its exit code.
pub(super) fn usage(msg: String) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub(super) fn step(job: &Job, defaults: Option<&serde_json::Value>, args: StepArgs) -> ExitCode {
    let process = match StepProcess::open(job, defaults, &args.process) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match process.run(job, &args.step, args.attempt) {
        Ok(AttemptEnd::Success { .. }) => ExitCode::SUCCESS,
        Ok(AttemptEnd::Failure(_)) => ExitCode::from(EXIT_FAILURE),
        Err(msg) => usage(msg),
    }
}
