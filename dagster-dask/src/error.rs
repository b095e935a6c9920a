//! Errors as a run records them: what went wrong in a step, and where it came from.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Any error an op may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error as events carry it: the message, then its chain of causes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorInfo {
    /// Where the error came from.
    pub kind: ErrorKind,
    /// The error's own message.
    pub message: String,
    /// `source()` messages, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
}

/// Where a step error came from; decides whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The op returned an error.
    Op,
    /// The op panicked.
    Panic,
    /// An input could not be loaded or decoded.
    Input,
    /// The output could not be encoded or stored.
    Output,
    /// The op's config could not be read.
    Config,
    /// The step could not be run at all (process, worker, executor).
    Engine,
    /// No worker could take the step: retrying would wait for the same workers.
    Placement,
    /// The run was canceled while the step ran.
    Interrupted,
    /// The attempt ran past its op's `max_runtime` (retryable), or the run past its own.
    Timeout,
}

impl ErrorInfo {
    /// An error with no causes.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            causes: Vec::new(),
        }
    }

    /// Captures `err` and its `source()` chain.
    pub fn from_error(kind: ErrorKind, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut causes = Vec::new();
        let mut next = err.source();
        while let Some(cause) = next {
            causes.push(cause.to_string());
            next = cause.source();
        }
        Self {
            kind,
            message: err.to_string(),
            causes,
        }
    }

    /// Whether another attempt could succeed: a bad input or config will not change.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Op
                | ErrorKind::Panic
                | ErrorKind::Output
                | ErrorKind::Engine
                | ErrorKind::Timeout
        )
    }
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, "\n  caused by: {cause}")?;
        }
        Ok(())
    }
}
