//! What can be wrong with a job's graph: every problem [`JobBuilder::build`] finds.
//!
//! [`JobBuilder::build`]: super::JobBuilder::build

use std::fmt;

/// One problem found when building a job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphProblem {
    /// A job or step name has characters other than letters, digits and `_`.
    InvalidName {
        /// `job` or `step`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Two steps share a name.
    DuplicateStep {
        /// The name.
        step: String,
        /// The ops of the steps that share it.
        ops: Vec<String>,
    },
    /// An input is wired to a step that does not exist.
    DanglingInput {
        /// The step.
        step: String,
        /// Its input.
        input: String,
        /// The missing upstream step (or `step.output`).
        upstream: String,
        /// The outputs of the step it names, when that step exists but has several
        /// outputs (or none of that name); empty when there is no such step.
        outputs: Vec<String>,
    },
    /// An input is not wired.
    MissingInput {
        /// The step.
        step: String,
        /// Its input.
        input: String,
        /// The input's type.
        type_name: String,
    },
    /// An input name the op does not have.
    UnknownInput {
        /// The step.
        step: String,
        /// Its op.
        op: String,
        /// The unknown input.
        input: String,
        /// The op's inputs.
        known: Vec<String>,
    },
    /// An input wired to several steps by name.
    FanInByName {
        /// The step.
        step: String,
        /// Its input.
        input: String,
        /// The steps it was wired to.
        upstreams: Vec<String>,
    },
    /// An upstream output's type differs from the input's.
    TypeMismatch {
        /// The step.
        step: String,
        /// Its input.
        input: String,
        /// The input's type.
        expected: String,
        /// The upstream step.
        upstream: String,
        /// The upstream's output type.
        found: String,
    },
    /// A handle from another `JobBuilder`.
    ForeignHandle {
        /// The step.
        step: String,
        /// Its input.
        input: String,
    },
    /// A tag the run reads (such as `dagster/max_runtime`) has a value it cannot use.
    InvalidTag {
        /// `job `name`` or `step `key``.
        owner: String,
        /// The tag.
        key: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// A resource of the job has a name it cannot have, or shares one.
    InvalidResource {
        /// The name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A step's op needs a resource type the job does not provide.
    MissingResource {
        /// The step.
        step: String,
        /// The resource type.
        resource: String,
    },
    /// The dynamic part of the job is wired in a way it cannot run: a per-key value read
    /// without `.map` or `.collect()`, or a dynamic output inside a mapped step.
    Dynamic {
        /// The step.
        step: String,
        /// What is wrong, and how to fix it.
        problem: String,
    },
    /// Steps that depend on each other in a circle.
    Cycle {
        /// The steps, in dependency order; the last feeds the first.
        steps: Vec<String>,
    },
}

impl GraphProblem {
    pub(super) fn order(&self) -> u8 {
        match self {
            Self::InvalidName { .. } => 0,
            Self::DuplicateStep { .. } => 1,
            Self::ForeignHandle { .. } => 2,
            Self::UnknownInput { .. } => 3,
            Self::MissingInput { .. } => 4,
            Self::DanglingInput { .. } => 5,
            Self::FanInByName { .. } => 6,
            Self::TypeMismatch { .. } => 7,
            Self::InvalidTag { .. } => 8,
            Self::InvalidResource { .. } => 9,
            Self::MissingResource { .. } => 10,
            Self::Dynamic { .. } => 11,
            Self::Cycle { .. } => 12,
        }
    }
}

impl fmt::Display for GraphProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName { what, name } => write!(
                f,
                "{what} name `{name}` is invalid: use only letters, digits and `_` (and not nothing)"
            ),
            Self::DuplicateStep { step, ops } => write!(
                f,
                "{} steps are named `{step}` (ops: {}): give each its own alias",
                ops.len(),
                ops.join(", ")
            ),
            Self::DanglingInput {
                step,
                input,
                upstream,
                outputs,
            } if outputs.is_empty() => write!(
                f,
                "step `{step}` input `{input}` is wired to step `{upstream}`, which does not exist"
            ),
            Self::DanglingInput {
                step,
                input,
                upstream,
                outputs,
            } => write!(
                f,
                "step `{step}` input `{input}` is wired to `{upstream}`, which is not one output; \
                 wire one of {}",
                outputs.join(", ")
            ),
            Self::MissingInput {
                step,
                input,
                type_name,
            } => write!(
                f,
                "step `{step}` input `{input}` (a `{type_name}`) is not wired to any step"
            ),
            Self::UnknownInput {
                step,
                op,
                input,
                known,
            } => write!(
                f,
                "step `{step}` wires input `{input}`, but op `{op}` has no such input (inputs: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            Self::FanInByName {
                step,
                input,
                upstreams,
            } => write!(
                f,
                "step `{step}` input `{input}` is wired to {} steps by name ({}); \
                 fan-in needs typed handles: pass a `Vec<Output<T>>` to `JobBuilder::add`",
                upstreams.len(),
                upstreams.join(", ")
            ),
            Self::TypeMismatch {
                step,
                input,
                expected,
                upstream,
                found,
            } => write!(
                f,
                "step `{step}` input `{input}` takes a `{expected}`, but step `{upstream}` outputs a `{found}`"
            ),
            Self::ForeignHandle { step, input } => write!(
                f,
                "step `{step}` input `{input}` is fed by a handle from another JobBuilder"
            ),
            Self::InvalidTag {
                owner,
                key,
                problem,
            } => write!(f, "{owner} tag `{key}`: {problem}"),
            Self::InvalidResource { name, problem } => write!(f, "resource `{name}`: {problem}"),
            Self::MissingResource { step, resource } => write!(
                f,
                "step `{step}` needs resource `{resource}`, which the job does not provide: \
                 add it with `JobBuilder::resource::<{resource}>(\"name\")`"
            ),
            Self::Dynamic { step, problem } => write!(f, "step `{step}`: {problem}"),
            Self::Cycle { steps } => {
                let mut path = steps.join(" -> ");
                if let Some(first) = steps.first() {
                    path.push_str(&format!(" -> {first}"));
                }
                write!(f, "steps form a cycle: {path}")
            }
        }
    }
}

/// Every problem found in a job's graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job `{job}` is invalid ({} problem{}):{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, list(problems))]
pub struct GraphError {
    /// The job's name.
    pub job: String,
    /// The problems, most basic first.
    pub problems: Vec<GraphProblem>,
}

fn list(problems: &[GraphProblem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}
