//! Adding op instances to a job.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::handle::{IntoInputs, StepRef, Wiring};
use crate::op::{AnyOp, Inputs, OpDef, OpOutput, OpSpec};
use crate::resource::{Resource, ResourceSpec};

static NEXT_BUILDER_ID: AtomicU64 = AtomicU64::new(1);

pub(super) enum InputsDecl {
    Typed(Vec<Wiring>),
    ByName(Vec<(String, Vec<String>)>),
}

pub(super) struct StepDecl {
    pub(super) key: String,
    pub(super) spec: Arc<OpSpec>,
    pub(super) inputs: InputsDecl,
}

/// Builds a [`Job`](super::Job): add op instances, then [`build`](Self::build) validates the graph.
pub struct JobBuilder {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) steps: Vec<StepDecl>,
    pub(super) used_keys: HashSet<String>,
    pub(super) resources: Vec<ResourceSpec>,
    pub(super) next_suffix: HashMap<String, usize>,
}

impl fmt::Debug for JobBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobBuilder")
            .field("name", &self.name)
            .field("steps", &self.steps.len())
            .finish_non_exhaustive()
    }
}

impl JobBuilder {
    /// An empty job named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            id: NEXT_BUILDER_ID.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            description: None,
            tags: BTreeMap::new(),
            steps: Vec::new(),
            used_keys: HashSet::new(),
            resources: Vec::new(),
            next_suffix: HashMap::new(),
        }
    }

    /// Describes the job.
    pub fn description(&mut self, description: impl Into<String>) -> &mut Self {
        self.description = Some(description.into());
        self
    }

    /// Tags the job.
    pub fn tag(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Provides resource `R` to the job's ops under `name`, its key in run config
    /// (`resources.<name>.config`). `io_manager` (and Dagster's `s3`, `gcs`, `adls2`) are
    /// taken: they configure the storage.
    pub fn resource<R: Resource>(&mut self, name: &str) -> &mut Self {
        self.resources.push(ResourceSpec::of::<R>(name));
        self
    }

    /// Adds an instance of `op` fed by `inputs`; returns the handle to its output (one per
    /// output, as a tuple, for an op with several).
    ///
    /// The step is named after the op; a second instance gets `<op>_2`, then `<op>_3`...
    pub fn add<I, O, H>(&mut self, op: &OpDef<I, O>, inputs: H) -> O::Handles
    where
        I: Inputs,
        O: OpOutput,
        H: IntoInputs<I>,
    {
        let key = self.fresh_key(op.name());
        self.push::<O>(
            key,
            Arc::clone(op.spec()),
            InputsDecl::Typed(inputs.into_wirings()),
        )
    }

    /// Like [`add`](Self::add), naming the step `alias`; two steps with one name are an error
    /// at [`build`](Self::build).
    pub fn add_as<I, O, H>(&mut self, alias: &str, op: &OpDef<I, O>, inputs: H) -> O::Handles
    where
        I: Inputs,
        O: OpOutput,
        H: IntoInputs<I>,
    {
        self.used_keys.insert(alias.to_owned());
        self.push::<O>(
            alias.to_owned(),
            Arc::clone(op.spec()),
            InputsDecl::Typed(inputs.into_wirings()),
        )
    }

    /// Adds an instance of an erased op, wiring each input to an upstream step by key:
    /// `inputs` pairs an input name with the key of the step whose output feeds it
    /// (`step.output` for one output of a step with several).
    ///
    /// Steps may be referred to before they are added; [`build`](Self::build) checks that
    /// every input is wired exactly once, to an existing step of the right type.
    pub fn add_by_name(
        &mut self,
        op: &AnyOp,
        alias: Option<&str>,
        inputs: &[(&str, &str)],
    ) -> StepRef {
        let key = match alias {
            Some(alias) => {
                self.used_keys.insert(alias.to_owned());
                alias.to_owned()
            }
            None => self.fresh_key(op.name()),
        };
        let mut wired: Vec<(String, Vec<String>)> = Vec::new();
        for (input, upstream) in inputs {
            match wired.iter_mut().find(|(name, _)| name == input) {
                Some((_, sources)) => sources.push((*upstream).to_owned()),
                None => wired.push(((*input).to_owned(), vec![(*upstream).to_owned()])),
            }
        }
        self.push::<()>(key.clone(), Arc::clone(&op.spec), InputsDecl::ByName(wired));
        StepRef { key }
    }

    fn fresh_key(&mut self, name: &str) -> String {
        // Remember the last suffix per op name: adding an op n times stays linear.
        let n = self.next_suffix.entry(name.to_owned()).or_insert(1);
        let mut key = name.to_owned();
        while self.used_keys.contains(&key) {
            *n += 1;
            key = format!("{name}_{n}");
        }
        self.used_keys.insert(key.clone());
        key
    }

    fn push<O: OpOutput>(
        &mut self,
        key: String,
        spec: Arc<OpSpec>,
        inputs: InputsDecl,
    ) -> O::Handles {
        self.steps.push(StepDecl { key, spec, inputs });
        O::handles(self.id, self.steps.len() - 1)
    }
}
