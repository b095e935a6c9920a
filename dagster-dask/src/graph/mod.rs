//! Wiring ops into a job, and validating the whole graph in one pass.
//!
//! [`JobBuilder::add`] returns an [`Output<T>`] handle for the step it adds; an op's inputs
//! accept only handles of their types ([`IntoInput`]), so a typed edge is checked by rustc.
//! Graphs wired by step name ([`JobBuilder::add_by_name`]) are checked at
//! [`JobBuilder::build`], which reports every problem at once: cycles, dangling or missing
//! inputs, duplicate step names and type mismatches.
//!
//! ```
//! use dagster_dask::graph::JobBuilder;
//! use dagster_dask::op::OpDef;
//!
//! let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
//! let add = OpDef::new("add", ["a", "b"], |_ctx, (a, b): (i64, i64)| a + b);
//! let total = OpDef::new("total", ["xs"], |_ctx, (xs,): (Vec<i64>,)| xs.iter().sum::<i64>());
//!
//! let mut job = JobBuilder::new("sums");
//! let x = job.add(&one, ());
//! let y = job.add(&add, (x, x)); // step "add"
//! let z = job.add(&add, (x, y)); // step "add_2"
//! job.add(&total, ([x, y, z],)); // fan-in: three handles into one Vec<i64>
//! let job = job.build().unwrap();
//! assert_eq!(job.plan().steps.len(), 4);
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use petgraph::graph::{DiGraph, NodeIndex};

mod error;

pub use error::{GraphError, GraphProblem};

use crate::op::{AnyOp, AnyValue, DecodeFn, Inputs, OpDef, OpSpec, TypeInfo, Value, decode_any};
use crate::plan::{Plan, PlanInput, PlanOutput, PlanStep};

/// The name of every op's single output.
pub const RESULT: &str = "result";

static NEXT_BUILDER_ID: AtomicU64 = AtomicU64::new(1);

/// A typed handle to the output of a step added to a [`JobBuilder`].
pub struct Output<T> {
    builder: u64,
    step: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Output<T> {}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Output<{}>(step #{})",
            std::any::type_name::<T>(),
            self.step
        )
    }
}

/// Turns decoded fan-in values into the input's `Vec<T>`.
type CollectFn = fn(Vec<AnyValue>) -> Option<AnyValue>;

fn collect_vec<T: Value>(items: Vec<AnyValue>) -> Option<AnyValue> {
    let items: Option<Vec<T>> = items
        .into_iter()
        .map(|v| v.downcast::<T>().ok().map(|b| *b))
        .collect();
    Some(Box::new(items?))
}

/// How one input of a step receives its value: the upstream steps and how to decode them.
#[derive(Clone)]
pub struct Wiring {
    sources: Vec<(u64, usize)>,
    input_type: TypeInfo,
    source_type: TypeInfo,
    decode: DecodeFn,
    collect: Option<CollectFn>,
}

impl fmt::Debug for Wiring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wiring")
            .field("sources", &self.sources)
            .field("input_type", &self.input_type.name())
            .field("fan_in", &self.collect.is_some())
            .finish()
    }
}

/// Handles that can feed an op input of type `A`.
///
/// An `Output<A>` feeds an `A`; a `Vec<Output<T>>` or `[Output<T>; N]` fans in to a `Vec<T>`.
#[diagnostic::on_unimplemented(
    message = "this op input takes a `{A}`, but the value passed is a `{Self}`",
    label = "expected a handle to a `{A}`",
    note = "pass the handle returned by adding an upstream op whose output is `{A}`; \
            for a `Vec<T>` input, a `Vec<Output<T>>` or an array of handles fans in"
)]
pub trait IntoInput<A> {
    /// The wiring this handle makes.
    fn into_wiring(self) -> Wiring;
}

impl<T: Value> IntoInput<T> for Output<T> {
    fn into_wiring(self) -> Wiring {
        Wiring {
            sources: vec![(self.builder, self.step)],
            input_type: TypeInfo::of::<T>(),
            source_type: TypeInfo::of::<T>(),
            decode: decode_any::<T>,
            collect: None,
        }
    }
}

impl<T: Value> IntoInput<Vec<T>> for Vec<Output<T>> {
    fn into_wiring(self) -> Wiring {
        Wiring {
            sources: self.iter().map(|h| (h.builder, h.step)).collect(),
            input_type: TypeInfo::of::<Vec<T>>(),
            source_type: TypeInfo::of::<T>(),
            decode: decode_any::<T>,
            collect: Some(collect_vec::<T>),
        }
    }
}

impl<T: Value, const N: usize> IntoInput<Vec<T>> for [Output<T>; N] {
    fn into_wiring(self) -> Wiring {
        self.to_vec().into_wiring()
    }
}

/// One argument of an op call checked against the input's type `A`: `job!` wraps each
/// argument in [`edge`] so that a type error points at that argument.
#[doc(hidden)]
#[derive(Debug)]
pub struct Edge<A> {
    wiring: Wiring,
    _type: PhantomData<fn() -> A>,
}

/// Checks that `handle` can feed an input of type `A`.
#[doc(hidden)]
pub fn edge<A, H: IntoInput<A>>(handle: H) -> Edge<A> {
    Edge {
        wiring: handle.into_wiring(),
        _type: PhantomData,
    }
}

impl<A> IntoInput<A> for Edge<A> {
    fn into_wiring(self) -> Wiring {
        self.wiring
    }
}

/// Handles for all inputs of an op with inputs `I`: a tuple with one [`IntoInput`] per input,
/// or, for a one-input op, the handle alone.
#[diagnostic::on_unimplemented(
    message = "these arguments do not fit an op with inputs `{I}`",
    label = "the op takes one argument per input",
    note = "in `job!`, pass one handle per input; with `JobBuilder::add`, pass them as a tuple: \
            `()` for none, `a` or `(a,)` for one, `(a, b)` for two"
)]
pub trait IntoInputs<I> {
    /// One wiring per input, in order.
    fn into_wirings(self) -> Vec<Wiring>;
}

impl<T: Value> IntoInputs<(T,)> for Output<T> {
    fn into_wirings(self) -> Vec<Wiring> {
        vec![self.into_wiring()]
    }
}

impl<T: Value> IntoInputs<(Vec<T>,)> for Vec<Output<T>> {
    fn into_wirings(self) -> Vec<Wiring> {
        vec![self.into_wiring()]
    }
}

macro_rules! impl_into_inputs {
    ($(($a:ident, $h:ident)),*) => {
        impl<$($a, $h: IntoInput<$a>),*> IntoInputs<($($a,)*)> for ($($h,)*) {
            #[allow(non_snake_case)]
            fn into_wirings(self) -> Vec<Wiring> {
                let ($($h,)*) = self;
                vec![$($h.into_wiring()),*]
            }
        }
    };
}

impl_into_inputs!();
impl_into_inputs!((A, HA));
impl_into_inputs!((A, HA), (B, HB));
impl_into_inputs!((A, HA), (B, HB), (C, HC));
impl_into_inputs!((A, HA), (B, HB), (C, HC), (D, HD));
impl_into_inputs!((A, HA), (B, HB), (C, HC), (D, HD), (E, HE));
impl_into_inputs!((A, HA), (B, HB), (C, HC), (D, HD), (E, HE), (F, HF));
impl_into_inputs!(
    (A, HA),
    (B, HB),
    (C, HC),
    (D, HD),
    (E, HE),
    (F, HF),
    (G, HG)
);
impl_into_inputs!(
    (A, HA),
    (B, HB),
    (C, HC),
    (D, HD),
    (E, HE),
    (F, HF),
    (G, HG),
    (H, HH)
);
impl_into_inputs!(
    (A, HA),
    (B, HB),
    (C, HC),
    (D, HD),
    (E, HE),
    (F, HF),
    (G, HG),
    (H, HH),
    (I, HI)
);
impl_into_inputs!(
    (A, HA),
    (B, HB),
    (C, HC),
    (D, HD),
    (E, HE),
    (F, HF),
    (G, HG),
    (H, HH),
    (I, HI),
    (J, HJ)
);
impl_into_inputs!(
    (A, HA),
    (B, HB),
    (C, HC),
    (D, HD),
    (E, HE),
    (F, HF),
    (G, HG),
    (H, HH),
    (I, HI),
    (J, HJ),
    (K, HK)
);
impl_into_inputs!(
    (A, HA),
    (B, HB),
    (C, HC),
    (D, HD),
    (E, HE),
    (F, HF),
    (G, HG),
    (H, HH),
    (I, HI),
    (J, HJ),
    (K, HK),
    (L, HL)
);

/// A handle to a step added by name; use its key to wire later steps by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    key: String,
}

impl StepRef {
    /// The step's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

enum InputsDecl {
    Typed(Vec<Wiring>),
    ByName(Vec<(String, Vec<String>)>),
}

struct StepDecl {
    key: String,
    spec: Arc<OpSpec>,
    inputs: InputsDecl,
}

/// Builds a [`Job`]: add op instances, then [`build`](Self::build) validates the graph.
pub struct JobBuilder {
    id: u64,
    name: String,
    description: Option<String>,
    tags: BTreeMap<String, String>,
    steps: Vec<StepDecl>,
    used_keys: HashSet<String>,
    next_suffix: HashMap<String, usize>,
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

    /// Adds an instance of `op` fed by `inputs`; returns the handle to its output.
    ///
    /// The step is named after the op; a second instance gets `<op>_2`, then `<op>_3`...
    pub fn add<I, O, H>(&mut self, op: &OpDef<I, O>, inputs: H) -> Output<O>
    where
        I: Inputs,
        O: Value,
        H: IntoInputs<I>,
    {
        let key = self.fresh_key(op.name());
        self.push(
            key,
            Arc::clone(op.spec()),
            InputsDecl::Typed(inputs.into_wirings()),
        )
    }

    /// Like [`add`](Self::add), naming the step `alias`; two steps with one name are an error
    /// at [`build`](Self::build).
    pub fn add_as<I, O, H>(&mut self, alias: &str, op: &OpDef<I, O>, inputs: H) -> Output<O>
    where
        I: Inputs,
        O: Value,
        H: IntoInputs<I>,
    {
        self.used_keys.insert(alias.to_owned());
        self.push(
            alias.to_owned(),
            Arc::clone(op.spec()),
            InputsDecl::Typed(inputs.into_wirings()),
        )
    }

    /// Adds an instance of an erased op, wiring each input to an upstream step by key:
    /// `inputs` pairs an input name with the key of the step whose output feeds it.
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

    fn push<O>(&mut self, key: String, spec: Arc<OpSpec>, inputs: InputsDecl) -> Output<O> {
        self.steps.push(StepDecl { key, spec, inputs });
        Output {
            builder: self.id,
            step: self.steps.len() - 1,
            _type: PhantomData,
        }
    }

    /// Validates the whole graph and freezes it into a [`Job`].
    pub fn build(self) -> Result<Job, GraphError> {
        let mut problems = Vec::new();
        if !is_valid_name(&self.name) {
            problems.push(GraphProblem::InvalidName {
                what: "job",
                name: self.name.clone(),
            });
        }

        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.steps.len());
        let mut reported_dup = HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            if !is_valid_name(&step.key) {
                problems.push(GraphProblem::InvalidName {
                    what: "step",
                    name: step.key.clone(),
                });
            }
            if index.insert(&step.key, i).is_some() && reported_dup.insert(step.key.as_str()) {
                let ops = self
                    .steps
                    .iter()
                    .filter(|s| s.key == step.key)
                    .map(|s| s.spec.name.clone())
                    .collect();
                problems.push(GraphProblem::DuplicateStep {
                    step: step.key.clone(),
                    ops,
                });
            }
        }
        // Duplicates resolve to the first step of that name: the error is reported above.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            first.entry(&step.key).or_insert(i);
        }

        let mut resolved: Vec<Vec<ResolvedInput>> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            resolved.push(self.resolve_inputs(step, &first, &mut problems));
        }

        let mut graph: DiGraph<usize, ()> =
            DiGraph::with_capacity(self.steps.len(), self.steps.len());
        let nodes: Vec<NodeIndex> = (0..self.steps.len()).map(|i| graph.add_node(i)).collect();
        for (i, inputs) in resolved.iter().enumerate() {
            for input in inputs {
                for &src in &input.sources {
                    graph.update_edge(nodes[src], nodes[i], ());
                }
            }
        }
        let order = topological_order(&graph, &nodes);
        if order.len() < nodes.len() {
            // Kahn's order stops short exactly when there are cycles; name each one.
            // (Kosaraju is iterative: deep graphs do not overflow the stack.)
            let mut cycles: Vec<Vec<String>> = petgraph::algo::kosaraju_scc(&graph)
                .into_iter()
                .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
                .map(|scc| {
                    cycle_path(&graph, &scc)
                        .iter()
                        .map(|&n| self.steps[graph[n]].key.clone())
                        .collect()
                })
                .collect();
            cycles.sort();
            problems.extend(
                cycles
                    .into_iter()
                    .map(|steps| GraphProblem::Cycle { steps }),
            );
        }

        if !problems.is_empty() {
            problems.sort_by_key(GraphProblem::order);
            return Err(GraphError {
                job: self.name,
                problems,
            });
        }

        let mut position = vec![0; order.len()];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut plan_steps = Vec::with_capacity(order.len());
        let mut job_steps = Vec::with_capacity(order.len());
        for &i in &order {
            let decl = &self.steps[i];
            let spec = &decl.spec;
            let inputs = std::mem::take(&mut resolved[i]);
            plan_steps.push(PlanStep {
                key: decl.key.clone(),
                op: spec.name.clone(),
                description: spec.description.clone(),
                inputs: inputs
                    .iter()
                    .enumerate()
                    .map(|(k, input)| PlanInput {
                        name: spec.input_names[k].to_owned(),
                        type_name: spec.input_types[k].name().to_owned(),
                        sources: input
                            .sources
                            .iter()
                            .map(|&s| self.steps[s].key.clone())
                            .collect(),
                        fan_in: input.collect.is_some(),
                    })
                    .collect(),
                output: PlanOutput {
                    name: RESULT.to_owned(),
                    type_name: spec.output_type.name().to_owned(),
                },
                tags: spec.tags.clone(),
                retry_policy: spec.retry_policy,
                config_type: spec.config.map(|c| c.type_name.to_owned()),
            });
            job_steps.push(JobStep {
                spec: Arc::clone(spec),
                inputs: inputs
                    .into_iter()
                    .map(|mut input| {
                        // From declaration order to plan order.
                        for s in &mut input.sources {
                            *s = position[*s];
                        }
                        input
                    })
                    .collect(),
            });
        }
        Ok(Job {
            plan: Plan::new(self.name, self.description, self.tags, plan_steps),
            steps: job_steps,
        })
    }

    fn resolve_inputs(
        &self,
        step: &StepDecl,
        first: &HashMap<&str, usize>,
        problems: &mut Vec<GraphProblem>,
    ) -> Vec<ResolvedInput> {
        let spec = &step.spec;
        let mut out = Vec::with_capacity(spec.input_names.len());
        match &step.inputs {
            InputsDecl::Typed(wirings) => {
                for (k, wiring) in wirings.iter().enumerate() {
                    let input = spec.input_names.get(k).copied().unwrap_or("?");
                    if spec.input_types.get(k) != Some(&wiring.input_type) {
                        problems.push(GraphProblem::TypeMismatch {
                            step: step.key.clone(),
                            input: input.to_owned(),
                            expected: spec.input_types.get(k).map_or("?", |t| t.name()).to_owned(),
                            upstream: "(handle)".to_owned(),
                            found: wiring.input_type.name().to_owned(),
                        });
                    }
                    let mut sources = Vec::with_capacity(wiring.sources.len());
                    for &(builder, src) in &wiring.sources {
                        if builder != self.id || src >= self.steps.len() {
                            problems.push(GraphProblem::ForeignHandle {
                                step: step.key.clone(),
                                input: input.to_owned(),
                            });
                            continue;
                        }
                        self.check_source_type(step, input, src, wiring.source_type, problems);
                        sources.push(src);
                    }
                    out.push(ResolvedInput {
                        sources,
                        decode: wiring.decode,
                        collect: wiring.collect,
                    });
                }
            }
            InputsDecl::ByName(wired) => {
                for (name, _) in wired {
                    if !spec.input_names.contains(&name.as_str()) {
                        problems.push(GraphProblem::UnknownInput {
                            step: step.key.clone(),
                            op: spec.name.clone(),
                            input: name.clone(),
                            known: spec.input_names.iter().map(|s| (*s).to_owned()).collect(),
                        });
                    }
                }
                for (k, input) in spec.input_names.iter().enumerate() {
                    let mut sources = Vec::new();
                    match wired.iter().find(|(name, _)| name == input) {
                        None => problems.push(GraphProblem::MissingInput {
                            step: step.key.clone(),
                            input: (*input).to_owned(),
                            type_name: spec.input_types[k].name().to_owned(),
                        }),
                        Some((_, upstreams)) if upstreams.len() > 1 => {
                            problems.push(GraphProblem::FanInByName {
                                step: step.key.clone(),
                                input: (*input).to_owned(),
                                upstreams: upstreams.clone(),
                            });
                        }
                        Some((_, upstreams)) => {
                            let upstream = &upstreams[0];
                            match first.get(upstream.as_str()) {
                                None => problems.push(GraphProblem::DanglingInput {
                                    step: step.key.clone(),
                                    input: (*input).to_owned(),
                                    upstream: upstream.clone(),
                                }),
                                Some(&src) => {
                                    self.check_source_type(
                                        step,
                                        input,
                                        src,
                                        spec.input_types[k],
                                        problems,
                                    );
                                    sources.push(src);
                                }
                            }
                        }
                    }
                    out.push(ResolvedInput {
                        sources,
                        decode: spec.input_decoders[k],
                        collect: None,
                    });
                }
            }
        }
        out
    }

    fn check_source_type(
        &self,
        step: &StepDecl,
        input: &str,
        src: usize,
        expected: TypeInfo,
        problems: &mut Vec<GraphProblem>,
    ) {
        let found = self.steps[src].spec.output_type;
        if found != expected {
            problems.push(GraphProblem::TypeMismatch {
                step: step.key.clone(),
                input: input.to_owned(),
                expected: expected.name().to_owned(),
                upstream: self.steps[src].key.clone(),
                found: found.name().to_owned(),
            });
        }
    }
}

/// Step and job names: Dagster's rule, so names work as paths and Dask keys.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Kahn's algorithm, preferring declaration order among ready steps, so plans are stable.
fn topological_order(graph: &DiGraph<usize, ()>, nodes: &[NodeIndex]) -> Vec<usize> {
    let mut indegree: Vec<usize> = nodes
        .iter()
        .map(|&n| {
            graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = indegree
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for next in graph.neighbors_directed(nodes[i], petgraph::Direction::Outgoing) {
            let j = graph[next];
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    order
}

/// One cycle through the strongly connected component `scc`, starting at its first step.
fn cycle_path(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let members: HashSet<NodeIndex> = scc.iter().copied().collect();
    let start = *scc.iter().min_by_key(|n| graph[**n]).unwrap_or(&scc[0]);
    // Depth-first search for a path back to `start` inside the component.
    let mut path = vec![start];
    let mut seen = HashSet::from([start]);
    let mut stack = vec![graph.neighbors(start).collect::<Vec<_>>()];
    while let Some(frontier) = stack.last_mut() {
        match frontier.pop() {
            Some(n) if n == start => return path,
            Some(n) if members.contains(&n) && seen.insert(n) => {
                path.push(n);
                stack.push(graph.neighbors(n).collect());
            }
            Some(_) => {}
            None => {
                stack.pop();
                path.pop();
            }
        }
    }
    scc.to_vec()
}

/// A validated job: its [`Plan`] and the code of each step.
pub struct Job {
    plan: Plan,
    steps: Vec<JobStep>,
}

pub(crate) struct JobStep {
    pub(crate) spec: Arc<OpSpec>,
    pub(crate) inputs: Vec<ResolvedInput>,
}

pub(crate) struct ResolvedInput {
    /// The upstream steps: declaration indices while building, plan indices in a `Job`.
    pub(crate) sources: Vec<usize>,
    pub(crate) decode: DecodeFn,
    pub(crate) collect: Option<CollectFn>,
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
}
