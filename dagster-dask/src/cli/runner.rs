//! The warm runner (`__serve`): one process per run and worker thread that runs the run's
//! steps one at a time, as the worker's task wrapper asks.
//!
//! A fresh process per step builds the job again each time, which grows with the job (17 ms
//! a step for a 10,000-step job on a small machine); the runner builds it, reads the run
//! config and opens the IO manager once. Requests are JSON lines on a pipe of their own
//! (`--requests`), so an op that reads stdin never takes one. Each attempt's messages go to
//! `--events` as in `__step`, ending with its `ended` message; then the runner writes the
//! request's marker, a string only the task wrapper knows, on stdout and on stderr, so the
//! wrapper knows where the step's output ends on each stream. The wrapper kills the runner's
//! process group to stop a step (cancel, `max_runtime`) and when the run ends.

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;

use serde::Deserialize;

use super::ServeArgs;
use super::step::{StepProcess, usage};
use crate::error::{ErrorInfo, ErrorKind};
use crate::exec::dask::protocol::StepMessage;
use crate::exec::state::AttemptEnd;
use crate::graph::Job;

/// One request: run this attempt of this step, then write `marker` on stdout and stderr.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    step: String,
    attempt: u32,
    marker: String,
}

pub(super) fn serve(job: &Job, defaults: Option<&serde_json::Value>, args: ServeArgs) -> ExitCode {
    let requests = match std::fs::File::open(&args.requests) {
        Ok(f) => BufReader::new(f),
        Err(e) => {
            return usage(format!(
                "cannot open --requests {}: {e}",
                args.requests.display()
            ));
        }
    };
    let process = match StepProcess::open(job, defaults, &args.process) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // The launcher closing the requests ends the runner.
    for line in requests.lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return usage(format!("cannot read a step request: {e}")),
        };
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                return usage(format!(
                    "a step request is not {{\"step\", \"attempt\", \"marker\"}} JSON ({e}): {line}"
                ));
            }
        };
        if let Err(message) = process.run(job, &request.step, request.attempt) {
            process
                .messages
                .send(&StepMessage::Ended(AttemptEnd::Failure(ErrorInfo::new(
                    ErrorKind::Engine,
                    message,
                ))));
        }
        // What the op wrote is out before the marker; a closed stream has no one to tell.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", request.marker).and_then(|()| out.flush());
        drop(out);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", request.marker).and_then(|()| err.flush());
    }
    ExitCode::SUCCESS
}
