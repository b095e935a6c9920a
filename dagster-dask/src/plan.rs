//! The frozen execution plan of a validated job.
//!
//! A [`Plan`] lists the steps in a topological order (every step after the steps it reads
//! from), each with its inputs and their upstream steps, its output type, tags, resource
//! requirements and retry policy. It is plain data: it serializes to JSON, renders as text,
//! mermaid or dot, and is all an executor needs to know about the graph.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::op::{RetryPolicy, Tags};
pub use crate::types::short_type_name;

/// A validated job, frozen and ordered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Plan {
    /// The job's name.
    pub job: String,
    /// The job's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The job's tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The steps, each after all of its upstream steps.
    pub steps: Vec<PlanStep>,
    /// The resources the job provides: name (its key in run config) to Rust type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, String>,
    /// Steps by key and the adjacency, computed once on first use.
    #[serde(skip)]
    index: PlanIndexCell,
}

/// How steps find each other by index: built once per plan.
#[derive(Debug, Clone)]
struct PlanIndex {
    by_key: HashMap<String, usize>,
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
}

/// The plan's index; always equal, since it is derived from the steps.
#[derive(Debug, Clone, Default)]
struct PlanIndexCell(std::sync::OnceLock<PlanIndex>);

impl PartialEq for PlanIndexCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One step of a plan: an op instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanStep {
    /// The step's key (the op name, or its alias), unique in the job.
    pub key: String,
    /// The op this step runs.
    pub op: String,
    /// The op's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The step's inputs, in the op's order.
    pub inputs: Vec<PlanInput>,
    /// The step's outputs, in the op's order: one, `result`, unless the op names several.
    pub outputs: Vec<PlanOutput>,
    /// Tags and resource requirements.
    #[serde(default)]
    pub tags: Tags,
    /// The job resources its op needs, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// What happens when the step fails.
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// The op's code version, when it has one (its steps may be cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_version: Option<String>,
    /// The Rust type of the op's config, if it takes config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_type: Option<String>,
    /// The dynamic output it is mapped over, when it is: a template, made into one step
    /// `key[mapping_key]` per mapping key at run time (see [`crate::dynamic`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<PlanSource>,
}

/// One input of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanInput {
    /// The input's name.
    pub name: String,
    /// The input's Rust type.
    pub type_name: String,
    /// The upstream outputs that feed it: one, or several for a fan-in.
    pub sources: Vec<PlanSource>,
    /// Whether the input collects several upstream outputs into a `Vec`.
    #[serde(default)]
    pub fan_in: bool,
    /// Whether its value comes from run config (`ops.<step>.inputs.<name>`): it then has no
    /// sources.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_config: bool,
    /// How it reads its source where the plan has a dynamic part.
    #[serde(default, skip_serializing_if = "Fan::is_one")]
    pub fan: Fan,
    /// For [`Fan::Each`] and [`Fan::All`]: the dynamic output whose mapping keys it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PlanSource>,
}

/// One upstream output feeding an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanSource {
    /// The upstream step's key.
    pub step: String,
    /// The upstream step's output.
    pub output: String,
    /// The earlier run whose stored output it is, when the step is not part of this plan (a
    /// selection of a job, its other inputs from a parent run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

impl std::fmt::Display for PlanSource {
    /// `step` for the single output `result`, else Dagster's `step.output`; `(run R)` after
    /// it when it comes from another run.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.output == crate::op::RESULT {
            f.write_str(&self.step)?;
        } else {
            write!(f, "{}.{}", self.step, self.output)?;
        }
        match &self.run {
            Some(run) => write!(f, " (run {run})"),
            None => Ok(()),
        }
    }
}

/// One output of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanOutput {
    /// The output's name: `result`, or the name the op gave it.
    pub name: String,
    /// The output's Rust type.
    pub type_name: String,
    /// Whether the op may end without producing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Whether it is a dynamic output: items under mapping keys, of type `type_name`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic: bool,
}

/// How a step reads its input's source, where the plan has a dynamic part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fan {
    /// One stored value (or a fan-in list of them).
    #[default]
    One,
    /// The value of the reading step's own mapping key (the step is mapped over the source).
    Each,
    /// The values of every mapping key, in emission order (a collect).
    All,
}

impl Fan {
    fn is_one(&self) -> bool {
        *self == Fan::One
    }
}

/// Why a plan read from JSON is not a plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The text is not a plan's JSON.
    #[error("not a plan: {0}")]
    Json(#[from] serde_json::Error),
    /// The plan's steps are out of order, duplicated or refer to unknown steps.
    #[error("plan of job `{job}` is inconsistent: {message}")]
    Inconsistent {
        /// The job.
        job: String,
        /// What is wrong.
        message: String,
    },
}

impl Plan {
    pub(crate) fn new(
        job: String,
        description: Option<String>,
        tags: BTreeMap<String, String>,
        steps: Vec<PlanStep>,
    ) -> Self {
        Self {
            job,
            description,
            tags,
            steps,
            resources: BTreeMap::new(),
            index: PlanIndexCell::default(),
        }
    }

    /// The whole run's limit from the job's `dagster/max_runtime` tag, when it has one.
    pub fn max_runtime(&self) -> Option<std::time::Duration> {
        crate::op::parse_max_runtime(self.tags.get(crate::op::MAX_RUNTIME_TAG)?).ok()
    }

    /// The index, built on first use. (`steps` is public: a plan edited after its first
    /// lookup keeps the old index, so edit plans before using them.)
    fn index(&self) -> &PlanIndex {
        self.index.0.get_or_init(|| {
            let by_key: HashMap<String, usize> = self
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.key.clone(), i))
                .collect();
            let upstream: Vec<Vec<usize>> = self
                .steps
                .iter()
                .map(|step| {
                    let mut up: Vec<usize> = step
                        .inputs
                        .iter()
                        .flat_map(|input| input.sources.iter())
                        .filter_map(|src| by_key.get(src.step.as_str()).copied())
                        .collect();
                    up.sort_unstable();
                    up.dedup();
                    up
                })
                .collect();
            let downstream = invert(&upstream);
            PlanIndex {
                by_key,
                upstream,
                downstream,
            }
        })
    }

    /// The step with key `key`.
    pub fn step(&self, key: &str) -> Option<&PlanStep> {
        self.index_of(key).map(|i| &self.steps[i])
    }

    /// For each step (by index), whether it may find an input not produced: it reads an
    /// optional output, or an output of a step that may itself be skipped so. Such a step is
    /// *gated*: whether it runs is decided when its upstream steps have ended, from what they
    /// produced (a fan-in list runs with the items produced, and is skipped when none was).
    ///
    /// A step that collects a dynamic part is gated too (what it reads is known once the
    /// dynamic output is stored, and an empty one skips it), and so is every mapped step.
    pub fn gated(&self) -> Vec<bool> {
        let mut gated = vec![false; self.steps.len()];
        for (i, step) in self.steps.iter().enumerate() {
            gated[i] = step.mapped.is_some()
                || step.inputs.iter().any(|input| input.fan == Fan::All)
                || step
                    .inputs
                    .iter()
                    .flat_map(|input| &input.sources)
                    .any(|src| {
                        self.index_of(&src.step).is_some_and(|u| {
                            // (plan order: `u` is decided before `i`)
                            gated[u]
                                || self.steps[u]
                                    .outputs
                                    .iter()
                                    .any(|o| o.optional && o.name == src.output)
                        })
                    });
        }
        gated
    }

    /// The step keys for an error message: all of them, or the first few and a count, so
    /// that a message about a 10,000-step job stays readable.
    pub(crate) fn step_keys_to_show(&self) -> String {
        const SHOWN: usize = 20;
        let shown: Vec<&str> = self
            .steps
            .iter()
            .take(SHOWN)
            .map(|s| s.key.as_str())
            .collect();
        match self.steps.len().saturating_sub(SHOWN) {
            0 => shown.join(", "),
            more => format!("{}, and {more} more", shown.join(", ")),
        }
    }

    /// The position of step `key` in [`steps`](Self::steps).
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.index().by_key.get(key).copied()
    }

    /// For each step (by index), the indices of its distinct upstream steps.
    pub fn upstream(&self) -> &[Vec<usize>] {
        &self.index().upstream
    }

    /// For each step (by index), the indices of its distinct downstream steps.
    pub fn downstream(&self) -> &[Vec<usize>] {
        &self.index().downstream
    }

    /// An owned copy of [`upstream`](Self::upstream).
    pub fn upstream_indices(&self) -> Vec<Vec<usize>> {
        self.upstream().to_vec()
    }

    /// An owned copy of [`downstream`](Self::downstream).
    pub fn downstream_indices(&self) -> Vec<Vec<usize>> {
        self.downstream().to_vec()
    }

    /// Owned copies of [`upstream`](Self::upstream) and [`downstream`](Self::downstream).
    pub fn adjacency(&self) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
        (self.upstream_indices(), self.downstream_indices())
    }

    /// The steps no other step reads from: the job's results.
    pub fn sinks(&self) -> Vec<usize> {
        self.downstream()
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_empty())
            .map(|(i, _)| i)
            .collect()
    }

    /// The plan as JSON.
    pub fn to_json(&self) -> String {
        // A plan is strings, numbers and maps with string keys: it always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a plan from JSON and checks that it is consistent: unique step keys, and every
    /// input's upstream step present and earlier in the order.
    pub fn from_json(json: &str) -> Result<Self, PlanError> {
        let plan: Self = serde_json::from_str(json)?;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, step) in plan.steps.iter().enumerate() {
            for input in &step.inputs {
                for src in input.sources.iter().filter(|s| s.run.is_none()) {
                    let known = seen.get(src.step.as_str()).is_some_and(|&u| {
                        plan.steps[u].outputs.iter().any(|o| o.name == src.output)
                    });
                    if !known {
                        return Err(PlanError::Inconsistent {
                            job: plan.job.clone(),
                            message: format!(
                                "step `{}` input `{}` reads `{src}`, which is not an output of an earlier step",
                                step.key, input.name
                            ),
                        });
                    }
                }
            }
            if seen.insert(&step.key, i).is_some() {
                return Err(PlanError::Inconsistent {
                    job: plan.job.clone(),
                    message: format!("two steps are named `{}`", step.key),
                });
            }
        }
        Ok(plan)
    }

    /// The plan as indented text, one step per line and one line per input.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "job `{}`: {} step{}\n",
            self.job,
            self.steps.len(),
            if self.steps.len() == 1 { "" } else { "s" }
        );
        if let Some(d) = &self.description {
            let _ = writeln!(out, "  {d}");
        }
        for (i, step) in self.steps.iter().enumerate() {
            // (a mapped step is one step per mapping key at run time: `step[*]`)
            let each = if step.mapped.is_some() { "[*]" } else { "" };
            let _ = write!(out, "{:>4}. {}{each}", i + 1, step.key);
            if step.op != step.key {
                let _ = write!(out, " (op {})", step.op);
            }
            let _ = write!(out, " -> {}", step.outputs_text());
            if let Some(root) = &step.mapped {
                let _ = write!(out, "  mapped over {root}");
            }
            if !step.tags.resource_requirements.is_empty() {
                let resources = crate::op::resources_json(&step.tags.resource_requirements);
                let _ = write!(out, "  resources {resources}");
            }
            if !step.resources.is_empty() {
                let _ = write!(out, "  uses {}", step.resources.join(", "));
            }
            if let Some(version) = &step.code_version {
                let _ = write!(out, "  code_version {version}");
            }
            if step.retry_policy.max_retries > 0 {
                let _ = write!(out, "  retries {}", step.retry_policy.max_retries);
            }
            for (k, v) in &step.tags.values {
                let _ = write!(out, "  {k}={v}");
            }
            out.push('\n');
            for input in &step.inputs {
                let from = if input.from_config {
                    format!("run config (ops.{}.inputs.{})", step.key, input.name)
                } else {
                    let sources: Vec<String> =
                        input.sources.iter().map(ToString::to_string).collect();
                    if input.fan != Fan::One {
                        let collect = if input.fan == Fan::All {
                            " (collect)"
                        } else {
                            ""
                        };
                        format!("{}[*]{collect}", sources.join(", "))
                    } else if input.fan_in {
                        format!("[{}]", sources.join(", "))
                    } else {
                        sources.join(", ")
                    }
                };
                let _ = writeln!(
                    out,
                    "        {}: {} <- {from}",
                    input.name,
                    short_type_name(&input.type_name)
                );
            }
        }
        out
    }

    /// The plan as a mermaid flowchart; each graph instance is a subgraph.
    pub fn to_mermaid(&self) -> String {
        self.render(
            "flowchart TD\n".to_owned(),
            &Drawing {
                node: &|id, label, ty, pad| format!("{pad}{id}[\"{label}<br/>{ty}\"]"),
                open: &|id, label, pad| format!("{pad}subgraph {id}[\"{label}\"]"),
                close: &|pad| format!("{pad}end"),
                edge: &|src, input, dst| format!("    {src} -->|{input}| {dst}"),
                id: &|key| key.replace('.', "__"),
            },
        )
    }

    /// The plan as a graphviz digraph; each graph instance is a cluster.
    pub fn to_dot(&self) -> String {
        let mut out = self.render(
            format!("digraph \"{}\" {{\n    rankdir=TB;\n", self.job),
            &Drawing {
                node: &|id, label, ty, pad| {
                    format!("{pad}\"{id}\" [shape=box, label=\"{label}\\n{ty}\"];")
                },
                open: &|id, label, pad| {
                    format!("{pad}subgraph \"cluster_{id}\" {{\n{pad}    label=\"{label}\";")
                },
                close: &|pad| format!("{pad}}}"),
                edge: &|src, input, dst| format!("    \"{src}\" -> \"{dst}\" [label=\"{input}\"];"),
                id: &|key| key.to_owned(),
            },
        );
        out.push_str("}\n");
        out
    }

    /// `header`, the steps (key, outputs) with each graph instance's steps inside it, then
    /// one line per edge (upstream, input, step).
    fn render(&self, header: String, draw: &Drawing<'_>) -> String {
        let mut out = header;
        self.render_level(&mut out, draw, "", 1);
        for step in &self.steps {
            for input in &step.inputs {
                // (an output of another run is not drawn: its step is not in the plan)
                for src in input.sources.iter().filter(|s| s.run.is_none()) {
                    let label = if src.output == crate::op::RESULT {
                        input.name.clone()
                    } else {
                        format!("{} -> {}", src.output, input.name)
                    };
                    let _ = writeln!(
                        out,
                        "{}",
                        (draw.edge)(&(draw.id)(&src.step), &label, &(draw.id)(&step.key))
                    );
                }
            }
        }
        out
    }

    /// The steps whose keys start with `prefix`, those one level down as nodes and the rest
    /// in one subgraph per graph instance, in plan order.
    fn render_level(&self, out: &mut String, draw: &Drawing<'_>, prefix: &str, depth: usize) {
        let pad = "    ".repeat(depth);
        let mut instances: Vec<&str> = Vec::new();
        for step in &self.steps {
            let Some(rest) = step.key.strip_prefix(prefix) else {
                continue;
            };
            match rest.split_once('.') {
                None => {
                    let ty = escape_label(&step.outputs_text());
                    let label = if prefix.is_empty() { &step.key } else { rest };
                    // (one step per mapping key at run time)
                    let each = if step.mapped.is_some() { "[*]" } else { "" };
                    let _ = writeln!(
                        out,
                        "{}",
                        (draw.node)(&(draw.id)(&step.key), &format!("{label}{each}"), &ty, &pad)
                    );
                }
                Some((instance, _)) if !instances.contains(&instance) => {
                    instances.push(instance);
                    let full = format!("{prefix}{instance}");
                    let _ = writeln!(out, "{}", (draw.open)(&(draw.id)(&full), instance, &pad));
                    self.render_level(out, draw, &format!("{full}."), depth + 1);
                    let _ = writeln!(out, "{}", (draw.close)(&pad));
                }
                Some(_) => {}
            }
        }
    }
}

/// How a format draws nodes, subgraphs and edges.
struct Drawing<'a> {
    /// (id, label, output types, indentation)
    node: &'a dyn Fn(&str, &str, &str, &str) -> String,
    /// (id, label, indentation): a subgraph's first line.
    open: &'a dyn Fn(&str, &str, &str) -> String,
    /// (indentation): a subgraph's last line.
    close: &'a dyn Fn(&str) -> String,
    /// (upstream id, label, step id)
    edge: &'a dyn Fn(&str, &str, &str) -> String,
    /// A step key as the format names a node.
    id: &'a dyn Fn(&str) -> String,
}

impl PlanStep {
    /// Its outputs as the plan shows them: `T` for `result`, else `name: T` each, an
    /// optional one marked `?`.
    pub fn outputs_text(&self) -> String {
        match self.outputs.as_slice() {
            [only] if only.name == crate::op::RESULT && !only.optional && !only.dynamic => {
                short_type_name(&only.type_name)
            }
            outputs => {
                let shown: Vec<String> = outputs
                    .iter()
                    .map(|o| {
                        let mark = if o.optional { "?" } else { "" };
                        let ty = short_type_name(&o.type_name);
                        let ty = if o.dynamic {
                            format!("Dynamic<{ty}>")
                        } else {
                            ty
                        };
                        format!("{}{mark}: {ty}", o.name)
                    })
                    .collect();
                format!("({})", shown.join(", "))
            }
        }
    }
}

/// Downstream lists from upstream lists.
fn invert(upstream: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut down = vec![Vec::new(); upstream.len()];
    for (i, ups) in upstream.iter().enumerate() {
        for &u in ups {
            down[u].push(i);
        }
    }
    down
}

fn escape_label(s: &str) -> String {
    s.replace('"', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<alloc::string::String>"),
            "Vec<String>"
        );
        assert_eq!(short_type_name("(i64, my::Point)"), "(i64, Point)");
        assert_eq!(short_type_name("()"), "()");
    }
}
