//! What a job (or a graph) can call: an op, or a nested graph of ops.
//!
//! A graph ([`GraphDef`]) is a reusable piece of a job: typed inputs, a body that adds ops
//! (and other graphs), typed outputs. Added to a job, its steps are named after the graph's
//! instance, Dagster's way: `clean.drop_nulls`, `clean.dedupe` (a second instance is
//! `clean_2`), their config sits at `ops.clean.ops.dedupe.config`, and the graph's tags and
//! retry policy apply to its ops unless an op sets its own.
//!
//! ```
//! use dagster_dask::graph::{GraphDef, GraphInput, JobBuilder, Output};
//! use dagster_dask::op::OpDef;
//!
//! let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (i64,)| x + 1);
//! let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
//! let twice = GraphDef::new("twice", ["x"], move |g: &mut JobBuilder, (x,): (GraphInput<i64>,)| {
//!     let y: Output<i64> = g.add(&inc, x);
//!     g.add(&inc, y)
//! });
//! let mut job = JobBuilder::new("counting");
//! let x = job.add(&one, ());
//! let y = job.add_graph(&twice, x);
//! job.add_graph(&twice, y); // steps `twice_2.inc`, `twice_2.inc_2`
//! let job = job.build().unwrap();
//! let keys: Vec<&str> = job.plan().steps.iter().map(|s| s.key.as_str()).collect();
//! assert_eq!(keys, ["one", "twice.inc", "twice.inc_2", "twice_2.inc", "twice_2.inc_2"]);
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::builder::JobBuilder;
use super::handle::{IntoInput, IntoInputs, Wiring};
use crate::op::{Inputs, OpDefinition, OpOutput, RetryPolicy, Tags, Value};
use crate::resource::ResourceList;

/// What `job!` and `graph!` call: an op (every [`OpDefinition`]) or a graph (what
/// `graph!` defines).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither an op nor a graph",
    label = "not an op or a graph",
    note = "ops are functions annotated with `#[dagster_dask::op]`; graphs are defined with \
            `graph!`"
)]
pub trait Node {
    /// Its inputs, as a tuple of value types.
    type Inputs: Inputs;
    /// The handles its call gives back.
    type Handles;
    /// The resources it needs.
    type Resources: ResourceList;

    /// Adds it to `job` (named `alias`, else after itself), fed by `inputs`.
    fn add_to(job: &mut JobBuilder, alias: Option<&str>, inputs: Vec<Wiring>) -> Self::Handles;
}

impl<T: OpDefinition> Node for T {
    type Inputs = T::Inputs;
    type Handles = <T::Output as OpOutput>::Handles;
    type Resources = T::Resources;

    fn add_to(job: &mut JobBuilder, alias: Option<&str>, inputs: Vec<Wiring>) -> Self::Handles {
        job.add_wired(&T::definition(), alias, inputs)
    }
}

/// A graph's input inside its body: it feeds the ops that take it with whatever fed the
/// graph (a handle, a fan-in list, run config).
pub struct GraphInput<T> {
    wiring: Wiring,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for GraphInput<T> {
    fn clone(&self) -> Self {
        Self {
            wiring: self.wiring.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for GraphInput<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GraphInput").field(&self.wiring).finish()
    }
}

impl<T: Value> IntoInput<T> for GraphInput<T> {
    fn into_wiring(self) -> Wiring {
        self.wiring
    }
}

impl<T: Value> IntoInputs<(T,)> for GraphInput<T> {
    fn into_wirings(self) -> Vec<Wiring> {
        vec![self.wiring]
    }
}

/// The inputs of a graph's body: one [`GraphInput`] per input of `Self`.
pub trait GraphInputs: Inputs {
    /// `(GraphInput<A>, GraphInput<B>, ...)`.
    type Handles;

    /// The body's handles, from the wirings that feed the graph.
    #[doc(hidden)]
    fn handles(wirings: Vec<Wiring>) -> Option<Self::Handles>;
}

macro_rules! impl_graph_inputs {
    ($($t:ident),*) => {
        impl<$($t: Value),*> GraphInputs for ($($t,)*) {
            type Handles = ($(GraphInput<$t>,)*);

            #[allow(unused_mut, unused_variables, non_snake_case)]
            fn handles(wirings: Vec<Wiring>) -> Option<Self::Handles> {
                let mut it = wirings.into_iter();
                $(let $t = GraphInput { wiring: it.next()?, _type: PhantomData };)*
                it.next().is_none().then_some(($($t,)*))
            }
        }
    };
}

impl_graph_inputs!();
impl_graph_inputs!(A);
impl_graph_inputs!(A, B);
impl_graph_inputs!(A, B, C);
impl_graph_inputs!(A, B, C, D);
impl_graph_inputs!(A, B, C, D, E);
impl_graph_inputs!(A, B, C, D, E, F);
impl_graph_inputs!(A, B, C, D, E, F, G);
impl_graph_inputs!(A, B, C, D, E, F, G, H);
impl_graph_inputs!(A, B, C, D, E, F, G, H, I);
impl_graph_inputs!(A, B, C, D, E, F, G, H, I, J);
impl_graph_inputs!(A, B, C, D, E, F, G, H, I, J, K);
impl_graph_inputs!(A, B, C, D, E, F, G, H, I, J, K, L);

type Body<I, O> = dyn Fn(&mut JobBuilder, <I as GraphInputs>::Handles) -> O + Send + Sync;

/// A graph: typed inputs `I` (a tuple), a body that adds ops and graphs, and what it gives
/// back, `O` (a handle, a tuple of handles, or `()`); add it to a job with
/// [`JobBuilder::add_graph`].
pub struct GraphDef<I: GraphInputs, O> {
    name: String,
    input_names: Vec<&'static str>,
    /// Tags and resource requirements its ops inherit.
    pub(super) tags: Tags,
    pub(super) retry_policy: Option<RetryPolicy>,
    body: Arc<Body<I, O>>,
}

impl<I: GraphInputs, O> Clone for GraphDef<I, O> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            input_names: self.input_names.clone(),
            tags: self.tags.clone(),
            retry_policy: self.retry_policy,
            body: Arc::clone(&self.body),
        }
    }
}

impl<I: GraphInputs, O> fmt::Debug for GraphDef<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphDef")
            .field("name", &self.name)
            .field("inputs", &self.input_names)
            .finish_non_exhaustive()
    }
}

impl<I: GraphInputs, O> GraphDef<I, O> {
    /// A graph named `name` whose inputs are named `inputs`; `body` adds its ops to the
    /// builder it is given, fed by the graph's inputs, and returns the graph's outputs.
    pub fn new<F>(name: impl Into<String>, inputs: I::Names, body: F) -> Self
    where
        F: Fn(&mut JobBuilder, I::Handles) -> O + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            input_names: inputs.as_ref().to_vec(),
            tags: Tags::default(),
            retry_policy: None,
            body: Arc::new(body),
        }
    }

    /// The graph's name: its instance's name in a job, unless aliased.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tags its ops (an op's own tag of the same key wins).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Has its ops require `amount` of cluster resource `name` (an op's own amount wins).
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.tags.resource_requirements.insert(name.into(), amount);
        self
    }

    /// The retry policy of its ops that set none.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// Adds an instance of the graph to `job`, named `alias` or after the graph, fed by
    /// `inputs` (what `graph!`'s `Node` implementation calls).
    #[doc(hidden)]
    pub fn add_to(&self, job: &mut JobBuilder, alias: Option<&str>, inputs: Vec<Wiring>) -> O {
        let instance = job.enter_graph(self, alias);
        let handles = I::handles(inputs);
        // (the inputs' count is the graph's by type: `IntoInputs<I>` made them)
        let handles = handles.expect("one wiring per graph input");
        let out = (self.body)(job, handles);
        job.leave_graph(instance);
        out
    }
}

/// Adds node `N` to `job`: what `job!` and `graph!` call for each op or graph call.
#[doc(hidden)]
pub fn add_node<N: Node, H: IntoInputs<N::Inputs>>(
    job: &mut JobBuilder,
    alias: Option<&str>,
    inputs: H,
) -> N::Handles {
    N::add_to(job, alias, inputs.into_wirings())
}
