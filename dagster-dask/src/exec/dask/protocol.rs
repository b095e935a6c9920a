//! What travels between the driver, the Python bridge and step processes: serde types only.
//!
//! The driver writes [`ToBridge`] commands as JSON lines on the bridge's stdin and reads
//! [`FromBridge`] messages from its stdout. A step process writes [`StepMessage`]s as JSON
//! lines on a channel of their own (a pipe its launcher passes as `--events`), never on
//! stdout or stderr: whatever an op prints is only ever an output line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::exec::state::AttemptEnd;

/// One message of a step process to whoever launched it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", content = "body", rename_all = "snake_case")]
pub(crate) enum StepMessage {
    /// Something the attempt did (start, inputs, outputs, logs).
    Event(Event),
    /// How the attempt ended: its last message.
    Ended(AttemptEnd),
}

/// The stream name the bridge forwards step messages under (beside `stdout` and `stderr`).
pub(crate) const EVENTS_STREAM: &str = "events";

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum ToBridge<'a> {
    Connect {
        cluster: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        kwargs: Option<&'a serde_json::Map<String, serde_json::Value>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<&'a str>,
        timeout: f64,
    },
    Submit {
        run_id: &'a str,
        binary: String,
        config_json: String,
        no_worker_timeout: f64,
        cluster_timeout: f64,
        ship_binary: &'static str,
        platform: [&'static str; 2],
        /// Passed to every step process (the run's op selection).
        step_args: &'a [String],
        steps: Vec<SubmitStep>,
    },
    /// Steps made while the run goes (for mapping keys): gated, submitted when released.
    Add {
        steps: Vec<SubmitStep>,
    },
    Retry {
        step: &'a str,
        attempt: u32,
    },
    /// Submits a gated step, which the bridge does not submit by itself.
    Release {
        step: &'a str,
    },
    Cancel,
    Close,
}

#[derive(Serialize)]
pub(crate) struct SubmitStep {
    pub(crate) step: String,
    pub(crate) deps: Vec<String>,
    #[serde(with = "crate::op::resource_amounts")]
    pub(crate) resources: BTreeMap<String, f64>,
    /// The op's `max_runtime`, seconds: the task wrapper kills the step's process after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_runtime: Option<f64>,
    /// It reads an optional output: whether it runs depends on what its upstream steps
    /// produced, which the driver knows, so the driver releases it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) gated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum FromBridge {
    Connected {
        dashboard: Option<String>,
        workers: BTreeMap<String, BTreeMap<String, f64>>,
    },
    Line(Line),
    Done(Done),
    Info {
        message: String,
    },
    /// The bridge is alive; `client` is its client's status (`running` while the scheduler
    /// answers).
    Heartbeat {
        client: String,
    },
    Canceled,
    Fatal {
        message: String,
        #[serde(default)]
        missing: bool,
    },
}

/// One line a step process wrote, forwarded from its worker.
#[derive(Debug, Deserialize)]
pub(crate) struct Line {
    pub(crate) step: String,
    pub(crate) attempt: u32,
    pub(crate) worker: Option<String>,
    pub(crate) stream: String,
    pub(crate) line: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Done {
    pub(crate) step: String,
    pub(crate) attempt: u32,
    pub(crate) status: DoneStatus,
    pub(crate) worker: Option<String>,
    pub(crate) lines: Option<usize>,
    pub(crate) message: Option<String>,
    /// The step process's exit code, when it exited.
    #[serde(default)]
    pub(crate) exit_code: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DoneStatus {
    Success,
    Failed,
    Killed,
    NoWorker,
    /// Its task was cancelled on the cluster by someone else than this run.
    Cancelled,
    /// Its process ran past the op's `max_runtime` and the task wrapper killed it.
    Timeout,
}
