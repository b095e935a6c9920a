//! The summary a run prints when it ends: outcome, results or failures, placement, log.

use crate::events::EventKind;
use crate::exec::{RunResult, RunStatus, StepStatus};
use crate::graph::Job;
use crate::types::short_type_name;

/// Prints one output of a successful run: its value, or why it is not shown.
fn print_output(
    result: &RunResult,
    name: &str,
    type_name: &str,
    to_json: fn(&[u8]) -> Result<serde_json::Value, crate::codec::CodecError>,
) {
    if let Ok(size) = result.output_size(name) {
        if size > SUMMARY_DECODE_BYTES {
            let type_name = short_type_name(type_name);
            println!("  {name}: a `{type_name}` of {size} bytes (too large to show here)");
            return;
        }
    }
    let shown = result
        .output_bytes(name)
        .map_err(|e| e.to_string())
        .and_then(|bytes| match to_json(&bytes) {
            Err(e) if e.is_not_produced() => Err("not produced".to_owned()),
            other => other.map_err(|e| e.to_string()),
        })
        .map(|v| truncate(&v.to_string(), SUMMARY_VALUE_CHARS));
    match shown {
        Ok(value) => println!("  {name} = {value}"),
        Err(e) if e == "not produced" => println!("  {name}: not produced"),
        Err(e) => println!("  {name}: (cannot show: {e})"),
    }
}

/// The longest output value printed in a run summary.
const SUMMARY_VALUE_CHARS: usize = 200;
/// The largest output the summary decodes to show; a larger one shows its type and size, so
/// that the summary takes bounded time and memory whatever a job returns.
const SUMMARY_DECODE_BYTES: u64 = 64 * 1024;
/// How many steps the summary names per worker.
const SUMMARY_STEPS_PER_WORKER: usize = 10;

pub(super) fn print_summary(job: &Job, result: &RunResult) {
    let plan = job.plan();
    // (the run's steps: those made for mapping keys included)
    let count = |s: StepStatus| result.steps.values().filter(|&&status| status == s).count();
    if result.success() {
        let skipped = count(StepStatus::Skipped);
        let skipped = if skipped > 0 {
            format!(", {skipped} skipped (an output they read was not produced)")
        } else {
            String::new()
        };
        println!(
            "RUN_SUCCESS job `{}` run {}: {} steps succeeded{skipped}",
            plan.job,
            result.run_id(),
            count(StepStatus::Succeeded)
        );
        for index in plan.sinks() {
            let step = &plan.steps[index];
            if result.step_status(&step.key) != Some(StepStatus::Succeeded) {
                continue;
            }
            for (output, spec) in step.outputs.iter().zip(&job.step(index).spec.outputs) {
                if output.dynamic {
                    continue; // (stored item by item: its mapped steps show it)
                }
                let name = if step.outputs.len() == 1 {
                    step.key.clone()
                } else {
                    format!("{}.{}", step.key, output.name)
                };
                print_output(result, &name, &output.type_name, spec.to_json);
            }
        }
    } else {
        let outcome = if result.status() == RunStatus::Canceled {
            "RUN_CANCELED"
        } else {
            "RUN_FAILURE"
        };
        println!(
            "{outcome} job `{}` run {}: {} succeeded, {} failed, {} skipped, {} not run",
            plan.job,
            result.run_id(),
            count(StepStatus::Succeeded),
            count(StepStatus::Failed),
            count(StepStatus::Skipped),
            count(StepStatus::NotRun)
        );
        if let Some(error) = result.engine_error() {
            println!("  the executor could not go on: {error}");
        }
        for event in result.events() {
            if let (Some(step), EventKind::StepFailure { error, .. }) =
                (&event.step_key, &event.kind)
            {
                let place = event
                    .worker
                    .as_deref()
                    .map(|w| format!(" on worker {w}"))
                    .unwrap_or_default();
                println!(
                    "  {step} failed{place}: {}",
                    error.to_string().replace('\n', "\n  ")
                );
            }
        }
    }
    let placement = placement(result);
    if !placement.is_empty() {
        println!("workers: {placement}");
    }
    if let Some(place) = result.stored_log() {
        println!("event log: {place}/events/ (summary {place}/run.json)");
    }
    if let Some(path) = result.event_log() {
        match result.output_lines_in_file_only() {
            0 => println!("event log: {}", path.display()),
            n => println!(
                "event log: {} ({n} output lines are in it only)",
                path.display()
            ),
        }
    }
    match result.report() {
        Some(Ok(place)) => println!("report: {place}"),
        Some(Err(why)) => println!("report: not written: {why}"),
        None => {}
    }
}

/// `worker-a [step1, step2], worker-b [step3]`: where the steps ran, from their events; a
/// worker that ran many names the first few and counts the rest, so that the line stays
/// readable at 10,000 steps.
fn placement(result: &RunResult) -> String {
    let mut by_worker: std::collections::BTreeMap<&str, Vec<&str>> =
        std::collections::BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for event in result.events() {
        if let (Some(step), Some(worker), EventKind::StepStart | EventKind::StepRestarted { .. }) =
            (&event.step_key, &event.worker, &event.kind)
        {
            if seen.insert((worker.as_str(), step.as_str())) {
                by_worker.entry(worker).or_default().push(step);
            }
        }
    }
    by_worker
        .iter()
        .map(|(w, steps)| {
            let shown = steps[..steps.len().min(SUMMARY_STEPS_PER_WORKER)].join(", ");
            match steps.len().saturating_sub(SUMMARY_STEPS_PER_WORKER) {
                0 => format!("{w} [{shown}]"),
                more => format!("{w} [{shown}, and {more} more]"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}... ({} chars)", &s[..cut], s.chars().count()),
        None => s.to_owned(),
    }
}
