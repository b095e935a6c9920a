//! Events as a person reads them on the console: one line each.

use super::{Event, EventKind};

impl Event {
    /// One line of human-readable text, as printed on the console.
    pub fn display_line(&self) -> String {
        let short_run = self.run_id.get(..8).unwrap_or(&self.run_id);
        let mut line = format!("{} {short_run}", clock(self.timestamp));
        if let Some(step) = &self.step_key {
            line.push_str(&format!(" {step}"));
        }
        if let Some(worker) = &self.worker {
            line.push_str(&format!(" [{worker}]"));
        }
        line.push_str(&format!(" {}", self.kind.type_name()));
        let detail = match &self.kind {
            EventKind::RunStart {
                job,
                executor,
                steps,
                parent_run_id,
            } => {
                let parent = parent_run_id
                    .as_deref()
                    .map(|p| format!(", parent run {p}"))
                    .unwrap_or_default();
                format!("job `{job}`, {steps} steps, executor {executor}{parent}")
            }
            EventKind::StepStart => String::new(),
            EventKind::StepRestarted { attempt } => format!("attempt {attempt}"),
            EventKind::LoadedInput {
                input, upstream, ..
            } => format!("{input} <- {upstream}"),
            EventKind::StepOutput {
                output,
                type_name,
                bytes,
                cached_from,
                mapping_keys,
            } => format!(
                "{output}: {} ({bytes} bytes{}){}",
                crate::types::short_type_name(type_name),
                mapping_keys
                    .map(|n| format!(", {n} mapping keys"))
                    .unwrap_or_default(),
                cached_from
                    .as_deref()
                    .map(|r| format!(", cached from run {r}"))
                    .unwrap_or_default()
            ),
            EventKind::HandledOutput { location, .. } => location.clone(),
            EventKind::Log {
                level,
                message,
                target,
                fields,
            } => {
                let mut line = match target {
                    Some(target) => format!("{level} {target}: {message}"),
                    None => format!("{level} {message}"),
                };
                for (k, v) in fields {
                    line.push_str(&format!(" {k}={v}"));
                }
                line
            }
            EventKind::StepOutputLine { stream, line } => format!("{stream}: {line}"),
            EventKind::StepSuccess { duration_ms } => format!("in {duration_ms:.1} ms"),
            EventKind::StepUpForRetry {
                attempt,
                delay_ms,
                error,
            } => format!("attempt {attempt} failed, retrying in {delay_ms:.0} ms: {error}"),
            EventKind::StepFailure { attempt, error } => {
                format!("attempt {attempt}: {error}")
            }
            EventKind::StepSkipped {
                upstream,
                not_produced,
            } => match (upstream.is_empty(), not_produced.is_empty()) {
                (_, true) => format!("upstream did not succeed: {}", upstream.join(", ")),
                (true, false) => format!("not produced: {}", not_produced.join(", ")),
                (false, false) => format!(
                    "not produced: {}; upstream skipped: {}",
                    not_produced.join(", "),
                    upstream.join(", ")
                ),
            },
            EventKind::RunSuccess { duration_ms } => format!("in {duration_ms:.1} ms"),
            EventKind::RunFailure {
                failed, skipped, ..
            } => format!(
                "failed: [{}], skipped: [{}]",
                failed.join(", "),
                skipped.join(", ")
            ),
            EventKind::RunCanceled { message } | EventKind::EngineEvent { message } => {
                message.clone()
            }
        };
        if !detail.is_empty() {
            line.push(' ');
            line.push_str(&detail);
        }
        line
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix timestamp.
fn clock(ts: f64) -> String {
    let ms = (ts * 1000.0) as u64;
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}
