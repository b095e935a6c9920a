//! The Python bridge: the process, and the channel its messages arrive on.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::protocol::{FromBridge, ToBridge};
use super::{PYTHON_ENV, distributed_requirement};
use crate::exec::RunError;

/// The bridge script the driver runs with Python.
const BRIDGE: &str = include_str!("../../../python/bridge.py");

/// What the driver loop waits on.
pub(super) enum Input {
    Bridge(FromBridge),
    /// A stdout line of the bridge that is not a message (a stray print).
    Stray(String),
    /// The bridge's stdout closed: it exited.
    Closed,
    /// SIGINT or SIGTERM; the count so far.
    Interrupt(u32),
}

/// The bridge process and the channel its messages arrive on.
pub(super) struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    inputs: mpsc::Receiver<Input>,
    /// Lets others (the interrupt hook) wake the driver loop.
    waker: mpsc::Sender<Input>,
    /// It stopped answering: closing it gets no grace.
    unresponsive: bool,
}

impl Bridge {
    pub(super) fn start(python: &str) -> Result<Self, RunError> {
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
            waker: tx,
            unresponsive: false,
        })
    }

    /// A sender onto the driver's inputs.
    pub(super) fn waker(&self) -> mpsc::Sender<Input> {
        self.waker.clone()
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

    /// The next input if one is waiting.
    pub(super) fn try_recv(&self) -> Option<Input> {
        self.inputs.try_recv().ok()
    }

    /// Asks the bridge to close the client (and a local cluster), waits for it at most
    /// `grace`, then kills its process group (a local cluster's processes with it).
    pub(super) fn close(&mut self, grace: Duration) {
        let _ = self.send(&ToBridge::Close);
        self.stdin = None; // EOF: the bridge also stops on it
        let grace = if self.unresponsive {
            Duration::ZERO
        } else {
            grace
        };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The bridge leads its own process group (see `start`).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Marks the bridge as no longer answering.
    pub(super) fn mark_unresponsive(&mut self) {
        self.unresponsive = true;
    }

    /// How the bridge process ended, once its stdout closed (it may take a moment to be
    /// reaped; `None` if it is still running after a second).
    pub(super) fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return None,
            }
        }
    }
}
