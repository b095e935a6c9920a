//! Op selection: running part of a job, with Dagster's syntax.
//!
//! A selection is clauses separated by commas, their union. Each clause names a step (its
//! key, e.g. `clean.dedupe`) or a graph instance (`clean`: all its steps), with optional
//! marks: `*name` adds all its ancestors, `+name` its direct upstream steps (`++name` two
//! levels up, and so on), `name*` all its descendants, `name+` its direct downstream steps.
//!
//! ```
//! use dagster_dask::selection::Selection;
//!
//! let selection = Selection::parse("*total, clean+").unwrap();
//! assert_eq!(selection.to_string(), "*total, clean+");
//! assert!(Selection::parse("a,,b").is_err());
//! ```

use std::collections::VecDeque;
use std::fmt;

use crate::graph::Job;
use crate::plan::Plan;

/// How far a clause reaches from the steps it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// `n` levels (0: none).
    Levels(usize),
    /// Every level.
    All,
}

/// One clause: `[*|+...]name[*|+...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    up: Reach,
    name: String,
    down: Reach,
}

/// A parsed op selection; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    clauses: Vec<Clause>,
}

/// Why a selection cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectionError {
    /// The text is not a selection.
    #[error(
        "invalid selection `{expr}`: {problem}; write names separated by commas, each with \
         `*` or `+` before it (ancestors) or after it (descendants), e.g. `*total, clean+`"
    )]
    Syntax {
        /// The whole selection.
        expr: String,
        /// What is wrong.
        problem: String,
    },
    /// Selected steps read outputs of steps that are not selected, and no parent run was
    /// given to read them from (or it did not store them).
    #[error(
        "selection `{expr}` leaves inputs without a value: {}; select their steps too, or \
         read them from an earlier run with `--from RUN_ID` (`Run::from_run`)",
        inputs.join("; ")
    )]
    MissingInputs {
        /// The whole selection.
        expr: String,
        /// Each input: `step `s` input `x` <- u` (and why, with a parent run).
        inputs: Vec<String>,
    },
    /// A name matches no step or graph instance of the job.
    #[error("selection `{expr}`: job `{job}` has no step or graph `{name}` (steps: {steps})")]
    Unknown {
        /// The whole selection.
        expr: String,
        /// The job.
        job: String,
        /// The name.
        name: String,
        /// The job's steps, or the first of them.
        steps: String,
    },
}

/// Leading or trailing marks of a clause: all `*` (one only) or all `+`.
fn reach(marks: &str, expr: &str) -> Result<Reach, SelectionError> {
    match marks {
        "" => Ok(Reach::Levels(0)),
        "*" => Ok(Reach::All),
        m if m.bytes().all(|b| b == b'+') => Ok(Reach::Levels(m.len())),
        m => Err(SelectionError::Syntax {
            expr: expr.to_owned(),
            problem: format!("`{m}` mixes `*` and `+` (or repeats `*`)"),
        }),
    }
}

impl Selection {
    /// Parses `expr`.
    pub fn parse(expr: &str) -> Result<Self, SelectionError> {
        let mut clauses = Vec::new();
        for raw in expr.split(',') {
            let clause = raw.trim();
            let name = clause.trim_matches(|c| c == '*' || c == '+');
            let start = clause.len() - clause.trim_start_matches(['*', '+']).len();
            let end = clause.trim_end_matches(['*', '+']).len();
            let valid_name = !name.is_empty() && name.split('.').all(crate::graph::is_valid_name);
            if !valid_name || start > end {
                return Err(SelectionError::Syntax {
                    expr: expr.to_owned(),
                    problem: if clause.is_empty() {
                        "an empty clause".to_owned()
                    } else {
                        format!("`{clause}` does not name a step")
                    },
                });
            }
            clauses.push(Clause {
                up: reach(&clause[..start], expr)?,
                name: name.to_owned(),
                down: reach(&clause[end..], expr)?,
            });
        }
        Ok(Self { clauses })
    }

    /// Which steps of `plan` it selects, by index.
    pub fn steps(&self, plan: &Plan) -> Result<Vec<bool>, SelectionError> {
        let mut selected = vec![false; plan.steps.len()];
        for clause in &self.clauses {
            let prefix = format!("{}.", clause.name);
            let named: Vec<usize> = (0..plan.steps.len())
                .filter(|&i| {
                    let key = &plan.steps[i].key;
                    *key == clause.name || key.starts_with(&prefix)
                })
                .collect();
            if named.is_empty() {
                return Err(SelectionError::Unknown {
                    expr: self.to_string(),
                    job: plan.job.clone(),
                    name: clause.name.clone(),
                    steps: plan.step_keys_to_show(),
                });
            }
            for (reach, links) in [
                (clause.up, plan.upstream()),
                (clause.down, plan.downstream()),
            ] {
                for i in walk(&named, links, reach) {
                    selected[i] = true;
                }
            }
        }
        Ok(selected)
    }
}

impl Selection {
    /// The steps of `job` it selects, as a job of their own. An input whose upstream step is
    /// not selected reads that step's output stored by run `parent`; without a parent, such
    /// inputs are an error that lists each.
    pub fn apply(&self, job: &Job, parent: Option<&str>) -> Result<Job, SelectionError> {
        part_of(job, &self.steps(job.plan())?, parent, &self.to_string())
    }
}

/// The steps of `job` that `keep` marks (what selection `expr` names, for errors), as a job
/// of their own: see [`Selection::apply`].
pub(crate) fn part_of(
    job: &Job,
    keep: &[bool],
    parent: Option<&str>,
    expr: &str,
) -> Result<Job, SelectionError> {
    if parent.is_none() {
        let plan = job.plan();
        let mut missing = Vec::new();
        let selected = plan.steps.iter().zip(keep).filter(|(_, k)| **k);
        for (step, _) in selected {
            for input in &step.inputs {
                for source in &input.sources {
                    if plan.index_of(&source.step).is_some_and(|u| !keep[u]) {
                        missing.push(format!(
                            "step `{}` input `{}` <- {source}",
                            step.key, input.name
                        ));
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(SelectionError::MissingInputs {
                expr: expr.to_owned(),
                inputs: missing,
            });
        }
    }
    Ok(job.subset(keep, parent.unwrap_or_default()))
}

/// `start` and the steps `reach` levels away along `links` (breadth first).
fn walk(start: &[usize], links: &[Vec<usize>], reach: Reach) -> Vec<usize> {
    let limit = match reach {
        Reach::Levels(n) => n,
        Reach::All => usize::MAX,
    };
    let mut seen = vec![false; links.len()];
    let mut queue: VecDeque<(usize, usize)> = start.iter().map(|&i| (i, 0)).collect();
    for &i in start {
        seen[i] = true;
    }
    let mut out = Vec::new();
    while let Some((i, depth)) = queue.pop_front() {
        out.push(i);
        if depth == limit {
            continue;
        }
        for &next in &links[i] {
            if !seen[next] {
                seen[next] = true;
                queue.push_back((next, depth + 1));
            }
        }
    }
    out
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .clauses
            .iter()
            .map(|c| {
                let marks = |r: Reach| match r {
                    Reach::All => "*".to_owned(),
                    Reach::Levels(n) => "+".repeat(n),
                };
                format!("{}{}{}", marks(c.up), c.name, marks(c.down))
            })
            .collect();
        f.write_str(&shown.join(", "))
    }
}
