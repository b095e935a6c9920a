//! The Python bridge: the process, and the JSON lines both ways.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{PYTHON_ENV, distributed_requirement};
use crate::exec::RunError;
use crate::exec::interrupt::Interrupts;

/// The bridge script the driver runs with Python.
const BRIDGE: &str = include_str!("../../../python/bridge.py");

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum ToBridge<'a> {
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
        ship_binary: &'static str,
        platform: [&'static str; 2],
        steps: Vec<SubmitStep<'a>>,
    },
    Retry {
        step: &'a str,
        attempt: u32,
    },
    Cancel,
    Close,
}

#[derive(Serialize)]
pub(super) struct SubmitStep<'a> {
    pub(super) step: &'a str,
    pub(super) deps: Vec<&'a str>,
    #[serde(with = "crate::op::resource_amounts")]
    pub(super) resources: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum FromBridge {
    Connected {
        dashboard: Option<String>,
        workers: BTreeMap<String, BTreeMap<String, f64>>,
    },
    Line(Line),
    Done(Done),
    Info {
        message: String,
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
pub(super) struct Line {
    pub(super) step: String,
    pub(super) attempt: u32,
    pub(super) worker: Option<String>,
    pub(super) stream: String,
    pub(super) line: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Done {
    pub(super) step: String,
    pub(super) attempt: u32,
    pub(super) status: DoneStatus,
    pub(super) worker: Option<String>,
    pub(super) lines: Option<usize>,
    pub(super) message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum DoneStatus {
    Success,
    Failed,
    Killed,
    NoWorker,
}

/// What the driver loop waits on.
pub(super) enum Input {
    Bridge(FromBridge),
    /// A stdout line of the bridge that is not a message (a stray print).
    Stray(String),
    /// The bridge's stdout closed: it exited.
    Closed,
    /// SIGINT or SIGTERM.
    Interrupt,
}

/// The bridge process and the channel its messages arrive on.
pub(super) struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    inputs: mpsc::Receiver<Input>,
    _interrupts: Option<Interrupts>,
}

impl Bridge {
    pub(super) fn start(python: &str, interrupts: bool) -> Result<Self, RunError> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(python)
            .arg("-c")
            .arg(BRIDGE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Dask's INFO logging would drown the run's own events.
            .env("DASK_LOGGING__DISTRIBUTED", "warning")
            // Its own process group: Ctrl-C reaches the driver, which cancels in order.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                RunError::Dask(format!(
                    "cannot start Python `{python}` for the Dask executor: {e}; install Python 3 \
                     with `{}`, or set {PYTHON_ENV} (or `execution.config.python`) to one",
                    distributed_requirement()
                ))
            })?;
        let (tx, rx) = mpsc::channel();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| RunError::Dask("no bridge stdout".into()))?;
        let lines_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let input = match serde_json::from_str::<FromBridge>(&line) {
                    Ok(msg) => Input::Bridge(msg),
                    Err(_) => Input::Stray(line),
                };
                if lines_tx.send(input).is_err() {
                    return;
                }
            }
            let _ = lines_tx.send(Input::Closed);
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            inputs: rx,
            _interrupts: interrupts.then(|| {
                Interrupts::start(move || {
                    let _ = tx.send(Input::Interrupt);
                })
            }),
        })
    }

    pub(super) fn send(&mut self, command: &ToBridge<'_>) -> Result<(), RunError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| RunError::Dask("the Dask bridge is closed".to_owned()))?;
        let mut line = serde_json::to_vec(command)
            .map_err(|e| RunError::Dask(format!("cannot encode a bridge command: {e}")))?;
        line.push(b'\n');
        stdin
            .write_all(&line)
            .and_then(|()| stdin.flush())
            .map_err(|e| RunError::Dask(format!("the Dask bridge stopped listening: {e}")))
    }

    pub(super) fn recv(&self, timeout: Option<Duration>) -> Option<Input> {
        match timeout {
            None => self.inputs.recv().ok(),
            Some(t) => self.inputs.recv_timeout(t).ok(),
        }
    }

    /// Asks the bridge to close the client (and a local cluster), then waits for it.
    pub(super) fn close(&mut self) {
        let _ = self.send(&ToBridge::Close);
        self.stdin = None; // EOF: the bridge also stops on it
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
