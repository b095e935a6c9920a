//! What is wrong with a run config: every problem, each at its YAML path.

use std::fmt;

/// One problem in a run config.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigProblem {
    /// Where: a dotted YAML path (`execution.config.cluster`), or a file.
    pub path: String,
    /// What is wrong, and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(top level): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a run config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid run config ({} problem{}):{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    pub(super) fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![ConfigProblem {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}
