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

#[derive(Clone)]
pub(crate) struct JobStep {
    pub(crate) spec: Arc<OpSpec>,
    pub(crate) inputs: Vec<StepInput>,
}

/// How one input of a step reads its value (where from is the plan's: its sources).
#[derive(Clone)]
pub(crate) struct StepInput {
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

    /// The steps `keep` marks (by plan index), as a job of their own: an input whose
    /// upstream step is left out reads the output that run `parent` stored.
    pub(crate) fn subset(&self, keep: &[bool], parent: &str) -> Job {
        let mut steps = Vec::new();
        let mut job_steps = Vec::new();
        for (i, step) in self.plan.steps.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let mut step = step.clone();
            let kept = |source: &crate::plan::PlanSource| {
                self.plan.index_of(&source.step).is_some_and(|u| keep[u])
            };
            // (the dynamic output a step follows, when left out, is read from the parent too)
            let inputs = step
                .inputs
                .iter_mut()
                .flat_map(|input| input.root.iter_mut().chain(&mut input.sources));
            for source in inputs.chain(step.mapped.as_mut()) {
                if !kept(source) {
                    source.run = Some(parent.to_owned());
                }
            }
            steps.push(step);
            job_steps.push(self.steps[i].clone());
        }
        let mut plan = Plan::new(
            self.plan.job.clone(),
            self.plan.description.clone(),
            self.plan.tags.clone(),
            steps,
        );
        plan.resources = self.plan.resources.clone();
        Job {
            plan,
            steps: job_steps,
            resources: self.resources.clone(),
        }
    }
}
