//! Adding op instances (and graph instances, whose ops are named inside them) to a job.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::handle::{IntoInputs, StepRef, Wiring};
use super::node::{GraphDef, GraphInputs};
use crate::op::{AnyOp, Inputs, OpDef, OpOutput, OpSpec, RetryPolicy, Tags};
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
    /// The graph instances being added, outermost first.
    scopes: Vec<Scope>,
    /// Steps whose output a map's body returned (by declaration index): each must take a
    /// value per mapping key.
    pub(super) map_results: Vec<usize>,
}

/// A graph instance being added: its steps' key prefix, and what its ops inherit.
struct Scope {
    /// `clean.` (or `outer.clean.`).
    prefix: String,
    tags: Tags,
    retry_policy: Option<RetryPolicy>,
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
            scopes: Vec::new(),
            map_results: Vec::new(),
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
        self.add_wired(op, None, inputs.into_wirings())
    }

    /// Adds an instance of `graph` fed by `inputs`; returns what the graph gives back. Its
    /// steps are named `<graph>.<op>` (a second instance is `<graph>_2`).
    pub fn add_graph<I, O, H>(&mut self, graph: &GraphDef<I, O>, inputs: H) -> O
    where
        I: GraphInputs,
        H: IntoInputs<I>,
    {
        graph.add_to(self, None, inputs.into_wirings())
    }

    /// Like [`add_graph`](Self::add_graph), naming the instance `alias`.
    pub fn add_graph_as<I, O, H>(&mut self, alias: &str, graph: &GraphDef<I, O>, inputs: H) -> O
    where
        I: GraphInputs,
        H: IntoInputs<I>,
    {
        graph.add_to(self, Some(alias), inputs.into_wirings())
    }

    /// Adds an instance of `op`, named `alias` or after the op, fed by `inputs`.
    pub(super) fn add_wired<I, O: OpOutput>(
        &mut self,
        op: &OpDef<I, O>,
        alias: Option<&str>,
        inputs: Vec<Wiring>,
    ) -> O::Handles {
        let key = match alias {
            Some(alias) => self.alias_key(alias),
            None => self.fresh_key(op.name()),
        };
        self.push::<O>(key, Arc::clone(op.spec()), InputsDecl::Typed(inputs))
    }

    /// Starts adding an instance of `graph`: the steps added until
    /// [`leave_graph`](Self::leave_graph) are its own.
    pub(super) fn enter_graph<I: GraphInputs, O>(
        &mut self,
        graph: &GraphDef<I, O>,
        alias: Option<&str>,
    ) -> usize {
        let instance = match alias {
            Some(alias) => self.alias_key(alias),
            None => self.fresh_key(graph.name()),
        };
        let (mut tags, outer_retry) = match self.scopes.last() {
            Some(outer) => (outer.tags.clone(), outer.retry_policy),
            None => (Tags::default(), None),
        };
        tags.overlay(&graph.tags);
        self.scopes.push(Scope {
            prefix: format!("{instance}."),
            tags,
            retry_policy: graph.retry_policy.or(outer_retry),
        });
        self.scopes.len() - 1
    }

    /// Ends the graph instance `enter_graph` started.
    pub(super) fn leave_graph(&mut self, depth: usize) {
        self.scopes.truncate(depth);
    }

    /// `name` inside the graph instance being added, if any.
    fn scoped(&self, name: &str) -> String {
        match self.scopes.last() {
            Some(scope) => format!("{}{name}", scope.prefix),
            None => name.to_owned(),
        }
    }

    fn alias_key(&mut self, alias: &str) -> String {
        let key = self.scoped(alias);
        self.used_keys.insert(key.clone());
        key
    }

    /// Like [`add`](Self::add), naming the step `alias`; two steps with one name are an error
    /// at [`build`](Self::build).
    pub fn add_as<I, O, H>(&mut self, alias: &str, op: &OpDef<I, O>, inputs: H) -> O::Handles
    where
        I: Inputs,
        O: OpOutput,
        H: IntoInputs<I>,
    {
        self.add_wired(op, Some(alias), inputs.into_wirings())
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
            Some(alias) => self.alias_key(alias),
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
        let name = self.scoped(name);
        let name = name.as_str();
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
        let spec = match self.scopes.last() {
            Some(scope) => inherit(spec, scope),
            None => spec,
        };
        self.steps.push(StepDecl { key, spec, inputs });
        O::handles(self.id, self.steps.len() - 1)
    }
}

/// An op's spec inside a graph instance: the graph's tags, resource requirements and retry
/// policy, where the op sets none of its own.
fn inherit(mut spec: Arc<OpSpec>, scope: &Scope) -> Arc<OpSpec> {
    let inherits = spec.tags.lacks_any_of(&scope.tags)
        || (scope.retry_policy.is_some() && !spec.retry_policy_set);
    if !inherits {
        return spec;
    }
    let own = Arc::make_mut(&mut spec);
    own.tags.inherit(&scope.tags);
    if let (Some(policy), false) = (scope.retry_policy, own.retry_policy_set) {
        own.retry_policy = policy;
    }
    spec
}
