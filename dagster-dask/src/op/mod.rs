//! Ops: the typed units of work a job wires together.
//!
//! An [`OpDef<I, O>`] is a named function from a tuple of typed inputs `I` to a typed output
//! `O`, with tags, resource requirements, a retry policy and an optional typed config. The
//! type parameters are what make a job's edges typed: [`JobBuilder::add`] only accepts, for
//! each input, a handle whose type matches (see [`graph`](mod@crate::graph)).
//!
//! ```
//! use dagster_dask::op::{OpDef, RetryPolicy};
//!
//! let add = OpDef::new("add", ["a", "b"], |_ctx, (a, b): (i64, i64)| a + b)
//!     .description("Adds two numbers.")
//!     .resource("GPU", 1.0)
//!     .retry_policy(RetryPolicy::new(2));
//! assert_eq!(add.name(), "add");
//! ```
//!
//! [`JobBuilder::add`]: crate::graph::JobBuilder::add

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

mod context;
mod outputs;
mod retry;
mod tags;

pub use context::{Logger, OpContext};
pub use outputs::{
    DynamicOut, Named, OpOutput, OptionalOut, Out, OutputSpec, Outs, Part, RESULT, Split,
    dynamic_out, optional_out, out,
};
pub use retry::{Backoff, Jitter, RetryPolicy};
pub use tags::{MAX_RUNTIME_TAG, RESOURCES_TAG, Tags};
pub(crate) use tags::{
    parse_max_runtime, parse_resource_requirements, resource_amounts, resources_json,
};

use crate::codec::{self, CodecError};
use crate::error::{ErrorInfo, ErrorKind};

/// The error type ops may return: any error, with its `source()` chain.
pub use crate::error::BoxError;

/// What may flow along an edge: anything serde can store, owned and sendable.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot flow between steps",
    label = "op inputs and outputs must be serde types",
    note = "an op's inputs and output are stored by the IO manager: derive `serde::Serialize` and \
            `serde::Deserialize` for `{Self}`, and make it owned (no borrowed references) and `Send`"
)]
pub trait Value: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Value for T {}

/// A Rust type, as the graph compares it and the plan names it.
#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    id: TypeId,
    name: &'static str,
}

impl TypeInfo {
    /// The type info of `T`.
    pub fn of<T: ?Sized + 'static>() -> Self {
        Self {
            id: TypeId::of::<T>(),
            name: codec::type_name_of::<T>(),
        }
    }

    /// The type's name, as stored object headers record it.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl PartialEq for TypeInfo {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for TypeInfo {}

/// A decoded value on its way into an op, before it is downcast to the input's type.
#[doc(hidden)]
pub type AnyValue = Box<dyn Any + Send>;

/// Decodes one stored object, read as it arrives, into an [`AnyValue`].
#[doc(hidden)]
pub type DecodeFn = fn(&mut dyn std::io::Read) -> Result<AnyValue, CodecError>;

pub(crate) fn decode_any<T: Value>(input: &mut dyn std::io::Read) -> Result<AnyValue, CodecError> {
    codec::decode_from::<T>(input).map(|v| Box::new(v) as AnyValue)
}

/// The inputs of an op: a tuple of [`Value`]s, `()` for none.
///
/// Implemented for tuples of up to twelve elements; each element is one input, in order.
pub trait Inputs: Sized + Send + 'static {
    /// The names of the inputs: `[&'static str; N]` for an `N`-tuple.
    type Names: AsRef<[&'static str]> + Send + Sync + 'static;

    /// The type of each input, in order.
    fn types() -> Vec<TypeInfo>;

    /// A decoder for each input, in order.
    #[doc(hidden)]
    fn decoders() -> Vec<DecodeFn>;

    /// Rebuilds the tuple from decoded values; `None` if a value has the wrong type.
    #[doc(hidden)]
    fn from_values(values: Vec<AnyValue>) -> Option<Self>;
}

macro_rules! impl_inputs {
    ($n:literal; $($t:ident),*) => {
        impl<$($t: Value),*> Inputs for ($($t,)*) {
            type Names = [&'static str; $n];

            fn types() -> Vec<TypeInfo> {
                vec![$(TypeInfo::of::<$t>()),*]
            }

            fn decoders() -> Vec<DecodeFn> {
                vec![$(decode_any::<$t> as DecodeFn),*]
            }

            #[allow(unused_mut, unused_variables, non_snake_case)]
            fn from_values(values: Vec<AnyValue>) -> Option<Self> {
                let mut it = values.into_iter();
                $(let $t = *it.next()?.downcast::<$t>().ok()?;)*
                it.next().is_none().then_some(($($t,)*))
            }
        }
    };
}

impl_inputs!(0;);
impl_inputs!(1; A);
impl_inputs!(2; A, B);
impl_inputs!(3; A, B, C);
impl_inputs!(4; A, B, C, D);
impl_inputs!(5; A, B, C, D, E);
impl_inputs!(6; A, B, C, D, E, F);
impl_inputs!(7; A, B, C, D, E, F, G);
impl_inputs!(8; A, B, C, D, E, F, G, H);
impl_inputs!(9; A, B, C, D, E, F, G, H, I);
impl_inputs!(10; A, B, C, D, E, F, G, H, I, J);
impl_inputs!(11; A, B, C, D, E, F, G, H, I, J, K);
impl_inputs!(12; A, B, C, D, E, F, G, H, I, J, K, L);

/// The type of input number `K` (from 0) of an op with inputs `Self`: what `job!` checks
/// each argument against.
#[diagnostic::on_unimplemented(
    message = "this op has no input number {K} (counting from 0): it is given more arguments than it has inputs",
    label = "one argument too many"
)]
pub trait InputAt<const K: usize> {
    /// The input's type.
    type Type;
}

macro_rules! impl_input_at {
    ($($k:literal => $t:ident),* ; $all:tt) => {
        $(impl_input_at!(@one $k, $t, $all);)*
    };
    (@one $k:literal, $t:ident, ($($all:ident),*)) => {
        impl<$($all),*> InputAt<$k> for ($($all,)*) {
            type Type = $t;
        }
    };
}

impl_input_at!(0 => A; (A));
impl_input_at!(0 => A, 1 => B; (A, B));
impl_input_at!(0 => A, 1 => B, 2 => C; (A, B, C));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D; (A, B, C, D));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E; (A, B, C, D, E));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F; (A, B, C, D, E, F));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F, 6 => G; (A, B, C, D, E, F, G));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F, 6 => G, 7 => H; (A, B, C, D, E, F, G, H));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F, 6 => G, 7 => H, 8 => I; (A, B, C, D, E, F, G, H, I));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F, 6 => G, 7 => H, 8 => I, 9 => J; (A, B, C, D, E, F, G, H, I, J));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F, 6 => G, 7 => H, 8 => I, 9 => J, 10 => K; (A, B, C, D, E, F, G, H, I, J, K));
impl_input_at!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F, 6 => G, 7 => H, 8 => I, 9 => J, 10 => K, 11 => L; (A, B, C, D, E, F, G, H, I, J, K, L));

/// A named op type: what `#[op]` generates next to the function, and what `job!` adds.
///
/// ```
/// use dagster_dask::op::{OpDef, OpDefinition};
///
/// // What `#[op] fn double(x: i64) -> i64 { x * 2 }` generates, by hand:
/// fn double(x: i64) -> i64 { x * 2 }
/// #[allow(non_camel_case_types)]
/// struct double {}
/// impl OpDefinition for double {
///     type Inputs = (i64,);
///     type Output = i64;
///     type Resources = ();
///     const NAME: &'static str = "double";
///     fn definition() -> OpDef<(i64,), i64> {
///         OpDef::new(Self::NAME, ["x"], |_ctx, (x,): (i64,)| double(x))
///     }
/// }
/// assert_eq!(double::definition().name(), "double");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an op",
    label = "not an op",
    note = "ops are functions annotated with `#[dagster_dask::op]`, or types implementing `OpDefinition`"
)]
pub trait OpDefinition {
    /// The op's inputs, as a tuple.
    type Inputs: Inputs;
    /// The op's output: a [`Value`], or [`Named`] outputs.
    type Output: OpOutput;
    /// The resources the op needs: `()`, or a tuple of [`Resource`](crate::resource::Resource)
    /// types; `job!` checks at compile time that the job provides them.
    type Resources: crate::resource::ResourceList;
    /// The op's name: the step name when it is used once in a job.
    const NAME: &'static str;
    /// The op's definition.
    fn definition() -> OpDef<Self::Inputs, Self::Output>;
}

/// The success type of an op function that returns a `Result`.
#[doc(hidden)]
pub trait OpResult {
    /// `T` of `Result<T, E>`.
    type Output;
}

impl<T, E> OpResult for Result<T, E> {
    type Output = T;
}

/// Validates a step's config value against the op's config type; `Err` carries a message
/// whose first word is the path inside the config (`.field`), if any.
pub(crate) type ConfigCheck = fn(&serde_json::Value) -> Result<(), String>;

/// What an op gets as config `C` when run config gives none: an empty map (a struct whose
/// fields all have defaults), else null (an `Option`, `()`), whichever `C` accepts; the
/// empty map when neither does (its error then says what is missing).
pub(crate) fn absent_config<C: DeserializeOwned>() -> &'static serde_json::Value {
    static EMPTY: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    static NULL: serde_json::Value = serde_json::Value::Null;
    let empty = EMPTY.get_or_init(|| serde_json::Value::Object(serde_json::Map::new()));
    if C::deserialize(empty).is_err() && C::deserialize(&NULL).is_ok() {
        &NULL
    } else {
        empty
    }
}

/// Checks that config `C` may be left out of run config.
pub(crate) fn check_absent_config<C: DeserializeOwned>() -> Result<(), String> {
    check_config::<C>(absent_config::<C>())
}

pub(crate) fn check_config<C: DeserializeOwned>(value: &serde_json::Value) -> Result<(), String> {
    from_config_value::<C>(value).map(drop)
}

/// A `T` from a run config value; the error names the path inside it (`at \`field\`: ...`).
pub(crate) fn from_config_value<T: DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, String> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            e.inner().to_string()
        } else {
            format!("at `{path}`: {}", e.inner())
        }
    })
}

/// The op's declared config type.
#[derive(Clone, Copy)]
pub(crate) struct ConfigSpec {
    pub(crate) type_name: &'static str,
    pub(crate) check: ConfigCheck,
    /// Checks that the config may be left out.
    pub(crate) check_absent: fn() -> Result<(), String>,
}

/// The body of an op with its types erased: decoded inputs in, its outputs out, each ready
/// to encode itself into its storage.
pub(crate) type ComputeFn =
    dyn Fn(&OpContext, Vec<AnyValue>) -> Result<Split, ErrorInfo> + Send + Sync;

/// An op's output on its way to storage: it encodes itself into the IO manager's writer, so
/// a large value is never held twice (value and bytes) on storage that takes a stream.
#[doc(hidden)]
pub trait Produced: Send {
    /// Writes the value, with its header; returns the bytes written.
    fn encode_into(&self, out: &mut dyn std::io::Write) -> Result<u64, CodecError>;

    /// The items of a dynamic output, (mapping key, value) in order, taken once; `None` for
    /// any other output.
    fn take_items(&mut self) -> Option<Vec<(String, Box<dyn Produced>)>> {
        None
    }
}

/// Everything a job needs to know about an op, with the types erased.
#[derive(Clone)]
pub(crate) struct OpSpec {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) input_names: Vec<&'static str>,
    pub(crate) input_types: Vec<TypeInfo>,
    pub(crate) input_decoders: Vec<DecodeFn>,
    /// The declared outputs, in order: one (`result`) for an op built with `new`.
    pub(crate) outputs: Vec<OutputSpec>,
    pub(crate) tags: Tags,
    pub(crate) retry_policy: RetryPolicy,
    /// Whether the op set its retry policy (else a graph's applies).
    pub(crate) retry_policy_set: bool,
    /// Its code version: with one, a step may reuse an earlier step's outputs.
    pub(crate) code_version: Option<String>,
    pub(crate) config: Option<ConfigSpec>,
    /// The resource types the op needs.
    pub(crate) resources: Vec<crate::resource::Need>,
    pub(crate) compute: Arc<ComputeFn>,
}

impl fmt::Debug for OpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpSpec")
            .field("name", &self.name)
            .field("inputs", &self.input_names)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

/// A typed op: inputs `I` (a tuple), output `O` (a [`Value`], or [`Named`] outputs).
///
/// Build one with [`OpDef::new`] (the function returns its output) or [`OpDef::try_new`] (the
/// function returns `Result<O, E>`; an `Err` fails the step and carries the error chain), or
/// with [`OpDef::multi`] / [`OpDef::try_multi`] for named and optional outputs, then refine
/// it with the builder methods. Add it to a job with
/// [`JobBuilder::add`](crate::graph::JobBuilder::add).
pub struct OpDef<I, O> {
    spec: Arc<OpSpec>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for OpDef<I, O> {
    fn clone(&self) -> Self {
        Self {
            spec: self.spec.clone(),
            _types: PhantomData,
        }
    }
}

impl<I, O> fmt::Debug for OpDef<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OpDef").field(&self.spec).finish()
    }
}

impl<I: Inputs, O: Value> OpDef<I, O> {
    /// An op that always produces its output.
    ///
    /// `inputs` names the inputs in order; the closure receives the op's context and the
    /// inputs as a tuple.
    pub fn new<F>(name: impl Into<String>, inputs: I::Names, f: F) -> Self
    where
        F: Fn(&OpContext, I) -> O + Send + Sync + 'static,
    {
        Self::try_new(name, inputs, move |ctx, args| {
            Ok::<O, std::convert::Infallible>(f(ctx, args))
        })
    }

    /// An op that may fail: an `Err` fails the step, and the retry policy decides what next.
    pub fn try_new<F, E>(name: impl Into<String>, inputs: I::Names, f: F) -> Self
    where
        F: Fn(&OpContext, I) -> Result<O, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        Self::build(name.into(), inputs, vec![OutputSpec::result::<O>()], f)
    }
}

impl<I: Inputs, P: Outs> OpDef<I, Named<P>> {
    /// An op with the named outputs `outputs` ([`out`], [`optional_out`], or a tuple of them),
    /// whose function returns one value per output, in order (`None` for an optional output
    /// it did not produce).
    pub fn multi<F>(name: impl Into<String>, inputs: I::Names, outputs: P, f: F) -> Self
    where
        F: Fn(&OpContext, I) -> P::Returned + Send + Sync + 'static,
    {
        Self::try_multi(name, inputs, outputs, move |ctx, args| {
            Ok::<_, std::convert::Infallible>(f(ctx, args))
        })
    }

    /// Like [`multi`](Self::multi), for a function that may fail.
    pub fn try_multi<F, E>(name: impl Into<String>, inputs: I::Names, outputs: P, f: F) -> Self
    where
        F: Fn(&OpContext, I) -> Result<P::Returned, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        Self::build(name.into(), inputs, outputs.specs(), f)
    }
}

impl<I: Inputs, O: OpOutput> OpDef<I, O> {
    fn build<F, E>(name: String, inputs: I::Names, outputs: Vec<OutputSpec>, f: F) -> Self
    where
        F: Fn(&OpContext, I) -> Result<O::Returned, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        let compute = move |ctx: &OpContext, values: Vec<AnyValue>| {
            let args = I::from_values(values).ok_or_else(|| {
                ErrorInfo::new(
                    ErrorKind::Input,
                    "internal error: inputs do not match the op's input types",
                )
            })?;
            let output = f(ctx, args).map_err(|e| {
                let err: BoxError = e.into();
                ErrorInfo::from_error(ErrorKind::Op, err.as_ref())
            })?;
            Ok(O::split(output))
        };
        Self {
            spec: Arc::new(OpSpec {
                name,
                description: None,
                input_names: inputs.as_ref().to_vec(),
                input_types: I::types(),
                input_decoders: I::decoders(),
                outputs,
                tags: Tags::default(),
                retry_policy: RetryPolicy::default(),
                retry_policy_set: false,
                code_version: None,
                config: None,
                resources: Vec::new(),
                compute: Arc::new(compute),
            }),
            _types: PhantomData,
        }
    }
}

impl<I, O> OpDef<I, O> {
    /// The op's name: the step name when it is added to a job without an alias.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Describes the op (shown in plans).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.spec).description = Some(description.into());
        self
    }

    /// Adds a free-form tag. Dagster's [`RESOURCES_TAG`] (`{"GPU": 1}`) sets the op's
    /// resource requirements instead; a value of it that does not parse stays a tag, and
    /// [`JobBuilder::build`](crate::graph::JobBuilder::build) refuses it.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.spec)
            .tags
            .insert(key.into(), value.into());
        self
    }

    /// Requires `amount` of the cluster resource `name` (Dask worker resources), e.g.
    /// `resource("GPU", 1.0)`. Executors without resources ignore it.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        Arc::make_mut(&mut self.spec)
            .tags
            .resource_requirements
            .insert(name.into(), amount);
        self
    }

    /// Limits each attempt of the op to `limit` (the `dagster/max_runtime` tag): an attempt
    /// still running then is stopped and fails with a timeout, which the retry policy may
    /// retry. On Dask the step's process group is killed; the embedded executor stops waiting
    /// for the op, whose thread is abandoned (a thread cannot be killed) and whose late
    /// events and output are dropped.
    pub fn max_runtime(self, limit: std::time::Duration) -> Self {
        self.tag(MAX_RUNTIME_TAG, format!("{}", limit.as_secs_f64()))
    }

    /// Sets the retry policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        let spec = Arc::make_mut(&mut self.spec);
        spec.retry_policy = policy;
        spec.retry_policy_set = true;
        self
    }

    /// Declares that the op reads config of type `C` from run config `ops.<step>.config`;
    /// the run config is checked against `C` before the run starts. Read it in the op with
    /// [`OpContext::config`].
    pub fn config<C: DeserializeOwned + 'static>(mut self) -> Self {
        Arc::make_mut(&mut self.spec).config = Some(ConfigSpec {
            type_name: codec::type_name_of::<C>(),
            check: check_config::<C>,
            check_absent: check_absent_config::<C>,
        });
        self
    }

    /// Sets the op's code version (Dagster's `code_version`): a step of it whose config and
    /// input data match an earlier successful step of the same version, on the same storage,
    /// reuses that step's outputs instead of running (`STEP_OUTPUT` says "cached from run
    /// R"). Change the version when the op's code changes what it returns. Ops without one
    /// never cache; `run --no-cache` (`Run::no_cache`) runs everything.
    pub fn code_version(mut self, version: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.spec).code_version = Some(version.into());
        self
    }

    /// Declares that the op needs resource `R`, which it reads with
    /// [`OpContext::resource`]: building a job whose resources lack it is an error.
    pub fn needs<R: crate::resource::Resource>(mut self) -> Self {
        let need = crate::resource::Need::of::<R>();
        let spec = Arc::make_mut(&mut self.spec);
        if !spec.resources.contains(&need) {
            spec.resources.push(need);
        }
        self
    }

    /// Forgets the types, for registries of ops wired by name
    /// ([`JobBuilder::add_by_name`](crate::graph::JobBuilder::add_by_name)).
    pub fn erase(&self) -> AnyOp {
        AnyOp {
            spec: Arc::clone(&self.spec),
        }
    }

    pub(crate) fn spec(&self) -> &Arc<OpSpec> {
        &self.spec
    }
}

/// An op with its types erased; its input and output types are checked when a job is built.
#[derive(Clone, Debug)]
pub struct AnyOp {
    pub(crate) spec: Arc<OpSpec>,
}

impl AnyOp {
    /// The op's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The op's input names, in order.
    pub fn input_names(&self) -> &[&'static str] {
        &self.spec.input_names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_check_names_the_field() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Cfg {
            count: u32,
        }
        let err = check_config::<Cfg>(&serde_json::json!({"count": "x"})).unwrap_err();
        assert!(err.starts_with("at `count`"), "{err}");
        assert!(check_config::<Cfg>(&serde_json::json!({"count": 3})).is_ok());
    }
}
