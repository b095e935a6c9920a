//! The HTML run report: one self-contained file (no script, no fetch) that shows a person
//! what a run did: its header, a timeline of every attempt on every worker, the job's graph
//! coloured by outcome, and each step's logs and error with its causes.
//!
//! The timeline and the graph are SVG laid out here. Big runs stay usable: the graph draws a
//! wide layer's steps of one op as one node (`work ×1000`), and the step list and its logs
//! are folded (`<details>`) past a few hundred steps.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::events::{Event, EventKind};
use crate::history::{StepRow, step_rows};
use crate::plan::Plan;

/// The report's name beside the run's event log.
pub const REPORT_FILE: &str = "report.html";

/// Width of the timeline's time axis, pixels.
const TIMELINE_WIDTH: f64 = 1000.0;
/// Height of one track of the timeline.
const TRACK: f64 = 14.0;
/// Steps of one op in one layer of the graph past which they are drawn as one node.
const GROUP_OVER: usize = 12;
/// Steps past which the step list is folded.
const FOLD_OVER: usize = 300;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Retry,
    Unfinished,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Retry => "retry",
            Outcome::Unfinished => "unfinished",
        }
    }
}

/// One attempt of one step, as its events tell it.
#[derive(Debug, Clone)]
struct Attempt {
    step: String,
    attempt: u32,
    worker: Option<String>,
    start: f64,
    end: Option<f64>,
    outcome: Outcome,
    error: Option<String>,
}

/// The attempts of a run, in the order they started.
fn attempts(events: &[Event]) -> Vec<Attempt> {
    let mut all: Vec<Attempt> = Vec::new();
    let mut open: HashMap<&str, usize> = HashMap::new();
    for event in events {
        let Some(step) = event.step_key.as_deref() else {
            continue;
        };
        let started = match &event.kind {
            EventKind::StepStart => Some(1),
            EventKind::StepRestarted { attempt } => Some(*attempt),
            _ => None,
        };
        if let Some(attempt) = started {
            open.insert(step, all.len());
            all.push(Attempt {
                step: step.to_owned(),
                attempt,
                worker: event.worker.clone(),
                start: event.timestamp,
                end: None,
                outcome: Outcome::Unfinished,
                error: None,
            });
            continue;
        }
        let Some(&i) = open.get(step) else { continue };
        let a = &mut all[i];
        if event.worker.is_some() {
            a.worker.clone_from(&event.worker);
        }
        let (outcome, error) = match &event.kind {
            EventKind::StepSuccess { .. } => (Outcome::Success, None),
            EventKind::StepFailure { error, .. } => (Outcome::Failure, Some(error.to_string())),
            EventKind::StepUpForRetry { error, .. } => (Outcome::Retry, Some(error.to_string())),
            _ => continue,
        };
        a.end = Some(event.timestamp);
        a.outcome = outcome;
        a.error = error;
        open.remove(step);
    }
    all
}

/// `&`, `<`, `>` and quotes escaped for HTML text and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}\
.success{fill:#3a9a4a;color:#2d7a3a}.failure{fill:#d9453d;color:#b3261e}\
.retry{fill:#e8a33d;color:#a86a00}.unfinished,.running,.not-run{fill:#9aa0a6;color:#666}\
.skipped{fill:#c8ccd0;color:#777}.lane{font-size:11px;fill:#444}\
pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;margin:4px 0}\
.node rect{stroke:#333;stroke-width:1}.node text{font-size:11px;fill:#fff}\
.edge{stroke:#999;fill:none}";

/// The report of a run of `plan`, from its events.
pub fn render(plan: &Plan, run_id: &str, events: &[Event]) -> String {
    let rows = step_rows(events);
    let attempts = attempts(events);
    let mut out = String::with_capacity(16 * 1024 + 600 * rows.len());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>run {} of {}</title><style>{STYLE}</style></head><body>\n",
        esc(run_id),
        esc(&plan.job)
    );
    header(&mut out, plan, run_id, events, &rows);
    timeline(&mut out, events, &attempts);
    graph(&mut out, plan, &rows);
    steps(&mut out, events, &rows);
    out.push_str("</body></html>\n");
    out
}

fn header(out: &mut String, plan: &Plan, run_id: &str, events: &[Event], rows: &[StepRow]) {
    let start = events.iter().find_map(|e| match &e.kind {
        EventKind::RunStart {
            executor,
            parent_run_id,
            ..
        } => Some((e.timestamp, executor.clone(), parent_run_id.clone())),
        _ => None,
    });
    let end = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::RunSuccess { .. } => Some(("success", e.timestamp)),
        EventKind::RunFailure { .. } => Some(("failure", e.timestamp)),
        EventKind::RunCanceled { .. } => Some(("canceled", e.timestamp)),
        _ => None,
    });
    let status = end.map_or("running", |(s, _)| s);
    let _ = writeln!(
        out,
        "<h1>Job <code>{}</code>, run <code>{}</code>: <span id=\"status\" class=\"{}\">{status}</span></h1>",
        esc(&plan.job),
        esc(run_id),
        if status == "success" {
            "success"
        } else if status == "running" {
            "running"
        } else {
            "failure"
        }
    );
    out.push_str("<table id=\"header\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    if let Some((t0, executor, parent)) = &start {
        row("executor", esc(executor));
        row("started", crate::history::time(*t0));
        if let Some((_, t1)) = end {
            row("duration", crate::history::took(t1 - t0));
        }
        if let Some(parent) = parent {
            row("parent run", esc(parent));
        }
    }
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    row(
        "steps",
        format!(
            "{} succeeded, {} failed, {} skipped, {} other",
            count("succeeded"),
            count("failed"),
            count("skipped"),
            rows.len() - count("succeeded") - count("failed") - count("skipped")
        ),
    );
    if let Some(link) = crate::history::dashboard_link(events) {
        let link = esc(&link);
        row("Dask dashboard", format!("<a href=\"{link}\">{link}</a>"));
    }
    out.push_str("</table>\n");
}

/// One lane per worker (this process when none), each attempt a bar on the first track of
/// its lane that is free then.
fn timeline(out: &mut String, events: &[Event], attempts: &[Attempt]) {
    out.push_str("<h2>Timeline</h2>\n");
    if attempts.is_empty() {
        out.push_str("<p>No step started.</p>\n");
        return;
    }
    let t0 = attempts
        .iter()
        .map(|a| a.start)
        .fold(f64::INFINITY, f64::min);
    let last = events.last().map_or(t0, |e| e.timestamp);
    let t1 = attempts
        .iter()
        .map(|a| a.end.unwrap_or(last))
        .fold(last, f64::max);
    let span = (t1 - t0).max(1e-3);
    let mut lanes: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut placed: Vec<(&str, usize)> = Vec::with_capacity(attempts.len());
    for a in attempts {
        let lane = a.worker.as_deref().unwrap_or("this process");
        let tracks = lanes.entry(lane).or_default();
        let end = a.end.unwrap_or(t1);
        let track = match tracks.iter().position(|&free| free <= a.start) {
            Some(t) => t,
            None => {
                tracks.push(0.0);
                tracks.len() - 1
            }
        };
        tracks[track] = end;
        placed.push((lane, track));
    }
    let label_width = 180.0;
    let mut top: BTreeMap<&str, f64> = BTreeMap::new();
    let mut y = 20.0;
    for (lane, tracks) in &lanes {
        top.insert(lane, y);
        y += tracks.len() as f64 * TRACK + 8.0;
    }
    let _ = writeln!(
        out,
        "<p>{} attempt(s) over {}; hover a bar for its step.</p>\n\
         <svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{y}\">",
        attempts.len(),
        crate::history::took(span),
        label_width + TIMELINE_WIDTH + 10.0
    );
    for (lane, at) in &top {
        let _ = writeln!(
            out,
            "<text class=\"lane\" x=\"0\" y=\"{}\">{}</text>",
            at + 10.0,
            esc(lane)
        );
    }
    for (a, (lane, track)) in attempts.iter().zip(placed) {
        let x = label_width + (a.start - t0) / span * TIMELINE_WIDTH;
        let w = ((a.end.unwrap_or(t1) - a.start) / span * TIMELINE_WIDTH).max(1.0);
        let y = top[lane] + track as f64 * TRACK;
        let took = a.end.map_or_else(
            || "not ended".to_owned(),
            |e| format!("{:.3} s", e - a.start),
        );
        let error = a
            .error
            .as_deref()
            .map(|e| format!("\n{}", esc(e)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<rect class=\"bar {o}\" data-step=\"{s}\" data-attempt=\"{n}\" data-outcome=\"{o}\" \
             x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h}\"><title>{s} attempt {n}: {o}, \
             {took}{error}</title></rect>",
            o = a.outcome.name(),
            s = esc(&a.step),
            n = a.attempt,
            h = TRACK - 2.0,
        );
    }
    out.push_str("</svg>\n");
}

/// The class of a step's status, for colour.
fn status_class(status: &str) -> &'static str {
    match status {
        "succeeded" => "success",
        "failed" => "failure",
        "skipped" => "skipped",
        "running" => "running",
        _ => "not-run",
    }
}

/// The job's graph, layered by longest path from the sources; a layer's steps of one op
/// are one node when there are many of them.
fn graph(out: &mut String, plan: &Plan, rows: &[StepRow]) {
    out.push_str("<h2>Graph</h2>\n");
    let status: HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r.key.as_str(), r.status.as_str()))
        .collect();
    // The status of a plan step; a mapped one's is the worst of its steps'.
    let of = |key: &str, mapped: bool| -> (String, usize) {
        if !mapped {
            return (status.get(key).copied().unwrap_or("not run").to_owned(), 1);
        }
        let made: Vec<&str> = rows
            .iter()
            .filter(|r| crate::dynamic::split_instance(&r.key).is_some_and(|(t, _)| t == key))
            .map(|r| r.status.as_str())
            .collect();
        (worst(&made).to_owned(), made.len())
    };
    let upstream = plan.upstream();
    let mut rank = vec![0_usize; plan.steps.len()];
    for i in 0..plan.steps.len() {
        rank[i] = upstream[i].iter().map(|&u| rank[u] + 1).max().unwrap_or(0);
    }
    // Nodes: (rank, op) groups in wide layers, single steps elsewhere.
    let mut per_layer_op: HashMap<(usize, &str), usize> = HashMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        *per_layer_op.entry((rank[i], step.op.as_str())).or_default() += 1;
    }
    let mut node_of = vec![0_usize; plan.steps.len()];
    let mut nodes: Vec<(usize, String, Vec<String>)> = Vec::new(); // (rank, label, statuses)
    let mut grouped: HashMap<(usize, &str), usize> = HashMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let (st, made) = of(&step.key, step.mapped.is_some());
        let key = (rank[i], step.op.as_str());
        if per_layer_op[&key] > GROUP_OVER {
            if let Some(&n) = grouped.get(&key) {
                node_of[i] = n;
                nodes[n].2.push(st);
                continue;
            }
            grouped.insert(key, nodes.len());
        }
        node_of[i] = nodes.len();
        let label = if step.mapped.is_some() {
            format!("{}[*] ×{made}", step.key)
        } else {
            step.key.clone()
        };
        nodes.push((rank[i], label, vec![st]));
    }
    for (&(_, op), &n) in &grouped {
        let count = nodes[n].2.len();
        nodes[n].1 = format!("{op} ×{count}");
    }
    let (w, h, gap_x, gap_y) = (170.0, 34.0, 20.0, 36.0);
    let mut slot: BTreeMap<usize, usize> = BTreeMap::new();
    let mut pos = Vec::with_capacity(nodes.len());
    for (r, _, _) in &nodes {
        let s = slot.entry(*r).or_default();
        pos.push((
            *s as f64 * (w + gap_x) + 10.0,
            *r as f64 * (h + gap_y) + 10.0,
        ));
        *s += 1;
    }
    let width = slot.values().max().copied().unwrap_or(1) as f64 * (w + gap_x) + 20.0;
    let height = (slot.keys().max().copied().unwrap_or(0) + 1) as f64 * (h + gap_y) + 10.0;
    let _ = writeln!(
        out,
        "<svg id=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">"
    );
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (i, ups) in upstream.iter().enumerate() {
        for &u in ups {
            edges.push((node_of[u], node_of[i]));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    for (a, b) in edges {
        let ((xa, ya), (xb, yb)) = (pos[a], pos[b]);
        let _ = writeln!(
            out,
            "<path class=\"edge\" d=\"M{:.0},{:.0} L{:.0},{:.0}\"/>",
            xa + w / 2.0,
            ya + h,
            xb + w / 2.0,
            yb
        );
    }
    for ((_, label, statuses), (x, y)) in nodes.iter().zip(&pos) {
        let shown: Vec<&str> = statuses.iter().map(String::as_str).collect();
        let st = worst(&shown);
        let short: String = label.chars().take(24).collect();
        let _ = writeln!(
            out,
            "<g class=\"node\" data-step=\"{l}\" data-status=\"{st}\"><title>{l}: {st}</title>\
             <rect class=\"{c}\" x=\"{x:.0}\" y=\"{y:.0}\" width=\"{w}\" height=\"{h}\" rx=\"4\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\">{}</text></g>",
            x + 6.0,
            y + h / 2.0 + 4.0,
            esc(&short),
            l = esc(label),
            c = status_class(st),
        );
    }
    out.push_str("</svg>\n");
}

/// The status that says most: failed, then running, not run, skipped, succeeded.
fn worst<'a>(statuses: &[&'a str]) -> &'a str {
    const ORDER: [&str; 5] = ["failed", "running", "not run", "skipped", "succeeded"];
    ORDER
        .iter()
        .find_map(|o| statuses.iter().find(|s| *s == o).copied())
        .or_else(|| statuses.first().copied())
        .unwrap_or("not run")
}

/// The step table, then each step's logs and errors.
fn steps(out: &mut String, events: &[Event], rows: &[StepRow]) {
    let fold = if rows.len() > FOLD_OVER { "" } else { " open" };
    let _ = writeln!(
        out,
        "<h2>Steps</h2>\n<details{fold}><summary>{} step(s)</summary><table id=\"steps\">\
         <tr><th>step</th><th>status</th><th>attempts</th><th>worker</th><th>start</th>\
         <th>duration</th><th>error</th></tr>",
        rows.len()
    );
    let secs = |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{s:.3} s"));
    for r in rows {
        let _ = writeln!(
            out,
            "<tr data-step=\"{k}\"><td><a href=\"#step-{k}\">{k}</a></td><td class=\"{c}\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.status),
            r.attempts,
            esc(r.worker.as_deref().unwrap_or("-")),
            secs(r.start_offset),
            secs(r.duration),
            esc(r.error.as_deref().unwrap_or("")),
            k = esc(&r.key),
            c = status_class(&r.status),
        );
    }
    out.push_str("</table></details>\n<h2>Logs and errors</h2>\n");
    let mut lines: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for event in events {
        let Some(step) = event.step_key.as_deref() else {
            continue;
        };
        let line = match &event.kind {
            EventKind::Log { .. } | EventKind::StepOutputLine { .. } => event.display_line(),
            EventKind::StepFailure { error, .. } | EventKind::StepUpForRetry { error, .. } => {
                format!("{}\n{error}", event.display_line())
            }
            _ => continue,
        };
        lines.entry(step).or_default().push(line);
    }
    if lines.is_empty() {
        out.push_str("<p>No step logged anything or failed.</p>\n");
    }
    for (step, lines) in lines {
        let failed = rows.iter().any(|r| r.key == step && r.status == "failed");
        let open = if failed || rows.len() <= FOLD_OVER {
            " open"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<details{open} id=\"step-{s}\" class=\"step-log\" data-step=\"{s}\"><summary>{s} \
             ({} line(s))</summary><pre>{}</pre></details>",
            lines.len(),
            esc(&lines.join("\n")),
            s = esc(step)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_worst_status_wins() {
        assert_eq!(worst(&["succeeded", "failed", "skipped"]), "failed");
        assert_eq!(worst(&["succeeded", "skipped"]), "skipped");
        assert_eq!(worst(&[]), "not run");
    }
}
