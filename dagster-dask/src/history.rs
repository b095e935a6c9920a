//! The run history a storage keeps: which runs it holds, how each went, step by step, and
//! their removal.
//!
//! Every run that has storage keeps a summary beside its outputs (`<run>/run.json`, see
//! [`RunSummary`]): listing runs reads those, never an event log. A run is named by its id,
//! or by a prefix of it that no other run shares (as git names commits).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::events::{Event, EventKind, RunSummary, read_run_summary};
use crate::io::{IoError, IoManager};

/// How long a `running` run's heartbeat may be silent before its driver counts as gone.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(30);

/// Why the run history could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// No run has this id or prefix.
    #[error("no run `{prefix}` on {storage}{}", nearest_text(.nearest))]
    Unknown {
        /// What was asked for.
        prefix: String,
        /// The storage searched.
        storage: String,
        /// The run ids nearest to it.
        nearest: Vec<String>,
    },
    /// Several runs start with this prefix.
    #[error("run prefix `{prefix}` is ambiguous: {}; give more of the id", .matches.join(", "))]
    Ambiguous {
        /// What was asked for.
        prefix: String,
        /// The runs it names.
        matches: Vec<String>,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] IoError),
    /// A stored event log could not be read.
    #[error("the event log of run `{run_id}` cannot be read: {reason}")]
    EventLog {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
}

fn nearest_text(nearest: &[String]) -> String {
    if nearest.is_empty() {
        "; it holds no runs".to_owned()
    } else {
        format!("; nearest: {}", nearest.join(", "))
    }
}

/// The run ids a storage holds (its top-level directories but the cache's), sorted.
fn run_ids(io: &dyn IoManager) -> Result<Vec<String>, HistoryError> {
    Ok(io
        .list_runs()?
        .into_iter()
        .filter(|id| id != crate::cache::CACHE_DIR && crate::run::RunId::parse(id).is_ok())
        .collect())
}

/// The runs a storage holds, newest first; a directory without a readable summary is left
/// out (another tool's, or a run that never started).
pub fn list_runs(io: &dyn IoManager) -> Result<Vec<RunSummary>, HistoryError> {
    let mut runs: Vec<RunSummary> = run_ids(io)?
        .iter()
        .filter_map(|id| read_run_summary(io, id).ok())
        .collect();
    runs.sort_by(|a, b| b.started.total_cmp(&a.started));
    Ok(runs)
}

/// The full id of the run `prefix` names: the id itself, or the one run whose id starts with
/// it. A prefix that names none is an error listing the nearest ids.
pub fn resolve_run(io: &dyn IoManager, prefix: &str) -> Result<String, HistoryError> {
    let ids = run_ids(io)?;
    if ids.iter().any(|id| id == prefix) {
        return Ok(prefix.to_owned());
    }
    let matches: Vec<String> = ids
        .iter()
        .filter(|id| id.starts_with(prefix))
        .cloned()
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().unwrap_or_default()),
        0 => {
            let mut scored: Vec<(usize, &String)> =
                ids.iter().map(|id| (distance(prefix, id), id)).collect();
            scored.sort();
            Err(HistoryError::Unknown {
                prefix: prefix.to_owned(),
                storage: io.base_location(),
                nearest: scored
                    .into_iter()
                    .take(3)
                    .map(|(_, id)| id.clone())
                    .collect(),
            })
        }
        _ => Err(HistoryError::Ambiguous {
            prefix: prefix.to_owned(),
            matches,
        }),
    }
}

/// How far `asked` is from run id `id`: the edit distance to the id's start of the same
/// length (a mistyped prefix is near its run).
fn distance(asked: &str, id: &str) -> usize {
    let a: Vec<char> = asked.chars().collect();
    let b: Vec<char> = id.chars().take(a.len().max(1)).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// A run's events, from its storage (a directory's event log, or an object store's
/// segments).
pub fn run_events(io: &dyn IoManager, run_id: &str) -> Result<Vec<Event>, HistoryError> {
    let events = match io.local_base() {
        Some(base) => {
            let path = crate::storage::event_log_path(base, run_id);
            crate::events::read_event_log(&path).map_err(|e| e.to_string())
        }
        None => crate::events::read_stored_events(io, run_id).map_err(|e| e.to_string()),
    };
    events.map_err(|reason| HistoryError::EventLog {
        run_id: run_id.to_owned(),
        reason,
    })
}

/// One step of a run, as its events tell it.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct StepRow {
    /// The step's key.
    pub key: String,
    /// `succeeded`, `failed`, `skipped`, `running` or `not run`.
    pub status: String,
    /// Attempts started.
    pub attempts: u32,
    /// Where its last attempt ran.
    pub worker: Option<String>,
    /// Seconds from the run's start to its first attempt's start.
    pub start_offset: Option<f64>,
    /// Seconds from its first start to its end.
    pub duration: Option<f64>,
    /// The first line of its last error.
    pub error: Option<String>,
}

/// Each step of a run, in the order they started (then those that never did).
pub fn step_rows(events: &[Event]) -> Vec<StepRow> {
    let run_start = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::RunStart { .. }))
        .map(|e| e.timestamp);
    let mut rows: BTreeMap<&str, (usize, StepRow, Option<f64>)> = BTreeMap::new();
    for (n, event) in events.iter().enumerate() {
        let Some(key) = event.step_key.as_deref() else {
            continue;
        };
        let (_, row, first) = rows.entry(key).or_insert_with(|| {
            let row = StepRow {
                key: key.to_owned(),
                status: "not run".to_owned(),
                ..StepRow::default()
            };
            (n, row, None)
        });
        if event.worker.is_some() {
            row.worker.clone_from(&event.worker);
        }
        let end = |row: &mut StepRow, status: &str| {
            row.status = status.to_owned();
            row.duration = first.map(|t| event.timestamp - t);
        };
        match &event.kind {
            EventKind::StepStart | EventKind::StepRestarted { .. } => {
                row.attempts += 1;
                row.status = "running".to_owned();
                if first.is_none() {
                    *first = Some(event.timestamp);
                    row.start_offset = run_start.map(|t| event.timestamp - t);
                }
            }
            EventKind::StepSuccess { .. } => end(row, "succeeded"),
            EventKind::StepFailure { error, .. } => {
                end(row, "failed");
                row.error = error.message.lines().next().map(str::to_owned);
            }
            EventKind::StepUpForRetry { error, .. } => {
                row.error = error.message.lines().next().map(str::to_owned);
            }
            EventKind::StepSkipped { .. } => end(row, "skipped"),
            _ => {}
        }
    }
    let mut rows: Vec<(usize, StepRow, Option<f64>)> = rows.into_values().collect();
    rows.sort_by(|a, b| {
        let at = |r: &(usize, StepRow, Option<f64>)| r.2.unwrap_or(f64::INFINITY);
        at(a).total_cmp(&at(b)).then(a.0.cmp(&b.0))
    });
    rows.into_iter().map(|(_, row, _)| row).collect()
}

/// What removing a run took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Removed {
    /// Objects of the run (outputs, summary, logs).
    pub objects: usize,
    /// Cache entries that pointed at its outputs.
    pub cache_entries: usize,
    /// Multipart uploads a killed process had left, aborted.
    pub uploads_aborted: usize,
}

/// Removes run `run_id` from the storage: the multipart uploads a killed process left, its
/// outputs, summary and logs, and the cache entries that point at its outputs (a later step
/// would otherwise miss them anyway).
pub fn delete_run(io: &dyn IoManager, run_id: &str) -> Result<Removed, HistoryError> {
    let uploads_aborted = io.abort_uploads(run_id)?;
    let mut cache_entries = 0;
    for key in io
        .list_run_files(crate::cache::CACHE_DIR, "")
        .unwrap_or_default()
    {
        let points_here = crate::cache::entry_run(io, &key).is_some_and(|r| r == run_id);
        if points_here {
            io.delete_run_file(crate::cache::CACHE_DIR, &key)?;
            cache_entries += 1;
        }
    }
    let objects = io.delete_run(run_id)?;
    Ok(Removed {
        objects,
        cache_entries,
        uploads_aborted,
    })
}

/// The runs that ended more than `older_than` ago (and, with `status`, have it): what
/// [`delete_run`] would prune. A run still going is never one of them; one whose driver is
/// gone counts from its last heartbeat.
pub fn prunable(
    io: &dyn IoManager,
    older_than: Duration,
    status: Option<&str>,
) -> Result<Vec<RunSummary>, HistoryError> {
    let now = crate::events::now();
    Ok(list_runs(io)?
        .into_iter()
        .filter(|run| {
            let ended = run
                .ended
                .or_else(|| run.is_abandoned(ABANDONED_AFTER).then_some(run.heartbeat));
            ended.is_some_and(|t| now - t > older_than.as_secs_f64())
                && status.is_none_or(|s| s == run.status)
        })
        .collect())
}

/// The Dask dashboard link the run printed when it connected, if it did.
pub fn dashboard_link(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::EngineEvent { message } if message.contains("dashboard") => message
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .map(|link| link.trim_end_matches([',', ';', ')']).to_owned()),
        _ => None,
    })
}

/// `2026-11-26 20:10:42Z`: a timestamp (Unix seconds) as people read it.
pub fn time(seconds: f64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0));
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace('T', " ")
}

/// `12 ms`, `1.2 s`, `3m 4s`: a duration in seconds as people read it.
pub fn took(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds.max(0.0) * 1e3)
    } else if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        humantime::format_duration(Duration::from_secs(seconds.round() as u64)).to_string()
    }
}

/// A run's status as a person should read it: `running (driver gone)` when its driver
/// stopped writing.
pub fn shown_status(run: &RunSummary) -> String {
    if run.is_abandoned(ABANDONED_AFTER) {
        "running (driver gone)".to_owned()
    } else {
        run.status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_prefix_is_near_its_run() {
        assert_eq!(distance("0c1f", "0c1f9a"), 0);
        assert_eq!(distance("0c2f", "0c1f9a"), 1);
        assert!(distance("ffff", "0c1f9a") > 2);
    }
}
