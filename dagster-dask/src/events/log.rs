//! Reading a run's event log back.

use std::path::{Path, PathBuf};

use super::Event;

/// Reads an event log written by [`RunLog`](super::RunLog).
pub fn read_event_log(path: &Path) -> Result<Vec<Event>, EventLogError> {
    let text = std::fs::read_to_string(path).map_err(|source| EventLogError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|source| EventLogError::Parse {
                path: path.to_owned(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Why an event log could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// The file could not be read.
    #[error("cannot read event log {}: {source}", path.display())]
    Io {
        /// The log's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not an event.
    #[error("event log {}, line {line}: not an event: {source}", path.display())]
    Parse {
        /// The log's path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde reported.
        source: serde_json::Error,
    },
}
