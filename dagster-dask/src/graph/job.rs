//! A validated job: its plan and the code of each step.

use std::fmt;
use std::sync::Arc;

use super::handle::{CollectFn, FromJsonFn};
use crate::op::{DecodeFn, OpSpec};
use crate::plan::Plan;
use crate::resource::ResourceSpec;

/// A validated job: its [`Plan`] and the code of each step.
pub struct Job {
    pub(super) plan: Plan,
    pub(super) steps: Vec<JobStep>,
    pub(super) resources: Vec<ResourceSpec>,
}

pub(crate) struct JobStep {
    pub(crate) spec: Arc<OpSpec>,
    pub(crate) inputs: Vec<ResolvedInput>,
}

pub(crate) struct ResolvedInput {
    /// The upstream outputs, (step, output): steps by declaration index while building, by
    /// plan index in a `Job`; outputs by position among the op's outputs.
    pub(crate) sources: Vec<(usize, usize)>,
    pub(crate) decode: DecodeFn,
    pub(crate) collect: Option<CollectFn>,
    /// Set when the value comes from run config.
    pub(crate) from_config: Option<FromJsonFn>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.plan.job
    }

    /// The frozen, ordered plan executors run.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub(crate) fn step(&self, index: usize) -> &JobStep {
        &self.steps[index]
    }

    /// The resources the job provides.
    pub(crate) fn resources(&self) -> &[ResourceSpec] {
        &self.resources
    }
}
