//! An op's outputs: one unnamed `result`, or several named ones, each required or optional.
//!
//! An op built with [`OpDef::new`](super::OpDef::new) has one output, `result`, of the type its
//! function returns. An op built with [`OpDef::multi`](super::OpDef::multi) declares its
//! outputs with [`out`] and [`optional_out`]: its function returns one value per output (a
//! tuple for several, in the declared order), an optional output as an `Option<T>` whose
//! `None` means "not produced" (Dagster's `Out(is_required=False)`). Adding such an op to a
//! job gives one typed handle per output, each an [`Output<T>`](crate::graph::Output) of the
//! value type (`T`, also for an optional output): rustc checks each edge.
//!
//! ```
//! use dagster_dask::graph::JobBuilder;
//! use dagster_dask::op::{OpDef, optional_out, out};
//!
//! let split = OpDef::multi(
//!     "split",
//!     [],
//!     (out("evens"), optional_out("odds")),
//!     |_ctx, (): ()| (vec![2_u64, 4], None::<Vec<u64>>),
//! );
//! let total = OpDef::new("total", ["xs"], |_ctx, (xs,): (Vec<u64>,)| xs.iter().sum::<u64>());
//! let mut job = JobBuilder::new("numbers");
//! let (evens, odds) = job.add(&split, ());
//! job.add(&total, evens);
//! job.add_as("total_odds", &total, odds); // skipped when `odds` is not produced
//! assert_eq!(job.build().unwrap().plan().steps.len(), 3);
//! ```

use std::marker::PhantomData;

use super::{Produced, TypeInfo, Value};
use crate::codec::{self, CodecError};
use crate::dynamic::Dynamic;
use crate::graph::{DynamicOutput, Output};

/// The name of the output of an op with one unnamed output.
pub const RESULT: &str = "result";

/// One declared output of an op, with its type erased.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct OutputSpec {
    pub(crate) name: String,
    pub(crate) type_info: TypeInfo,
    pub(crate) optional: bool,
    /// Whether it is a dynamic output: items under mapping keys, `type_info` their type.
    pub(crate) dynamic: bool,
    pub(crate) to_json: fn(&[u8]) -> Result<serde_json::Value, CodecError>,
}

impl OutputSpec {
    fn of<T: Value>(name: String, optional: bool) -> Self {
        Self {
            name,
            type_info: TypeInfo::of::<T>(),
            optional,
            dynamic: false,
            to_json: to_json::<T>,
        }
    }

    /// The single `result` output of an op returning a `T`.
    pub(crate) fn result<T: Value>() -> Self {
        Self::of::<T>(RESULT.to_owned(), false)
    }
}

fn to_json<T: Value>(bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
    let value = codec::decode::<T>(bytes)?;
    serde_json::to_value(&value).map_err(|e| CodecError::Encode {
        type_name: codec::type_name_of::<T>().to_owned(),
        reason: format!("cannot show as JSON: {e}"),
    })
}

/// An op's outputs on their way to storage, in declared order; `None`: not produced.
#[doc(hidden)]
pub type Split = Vec<Option<Box<dyn Produced>>>;

struct Stored<T>(T);

impl<T: Value> Produced for Stored<T> {
    fn encode_into(&self, out: &mut dyn std::io::Write) -> Result<u64, CodecError> {
        codec::encode_into(&self.0, out)
    }
}

pub(crate) fn produced<T: Value>(value: T) -> Box<dyn Produced> {
    Box::new(Stored(value))
}

/// The items of a dynamic output, on their way to storage.
struct Items<T>(Option<Dynamic<T>>);

impl<T: Value> Produced for Items<T> {
    fn encode_into(&self, _out: &mut dyn std::io::Write) -> Result<u64, CodecError> {
        Err(CodecError::Encode {
            type_name: codec::type_name_of::<Dynamic<T>>().to_owned(),
            reason: "a dynamic output is stored item by item".to_owned(),
        })
    }

    fn take_items(&mut self) -> Option<Vec<(String, Box<dyn Produced>)>> {
        let items = self.0.take()?.into_items();
        Some(items.into_iter().map(|(k, v)| (k, produced(v))).collect())
    }
}

/// What an op's function returns, and the handles a job gets for the step that runs it:
/// a [`Value`] (one output, `result`), or [`Named`] outputs.
pub trait OpOutput: 'static {
    /// What the op's function returns.
    type Returned: Send + 'static;
    /// What [`JobBuilder::add`](crate::graph::JobBuilder::add) gives back: one
    /// [`Output`] per output.
    type Handles;

    /// Splits what the function returned into the outputs to store.
    #[doc(hidden)]
    fn split(value: Self::Returned) -> Split;

    /// The handles to the outputs of step `step` of builder `builder`.
    #[doc(hidden)]
    fn handles(builder: u64, step: usize) -> Self::Handles;
}

impl<T: Value> OpOutput for T {
    type Returned = T;
    type Handles = Output<T>;

    fn split(value: T) -> Split {
        vec![Some(produced(value))]
    }

    fn handles(builder: u64, step: usize) -> Output<T> {
        Output::new(builder, step, 0)
    }
}

/// The outputs of an op declared with [`OpDef::multi`](super::OpDef::multi): `P` is an
/// [`out`] or [`optional_out`], or a tuple of them.
#[derive(Debug)]
pub struct Named<P>(PhantomData<fn() -> P>);

impl<P: Outs> OpOutput for Named<P> {
    type Returned = P::Returned;
    type Handles = P::Handles;

    fn split(value: P::Returned) -> Split {
        P::split(value)
    }

    fn handles(builder: u64, step: usize) -> P::Handles {
        P::handles(builder, step)
    }
}

/// A required output named `name`: the op always produces it.
pub fn out<T: Value>(name: &str) -> Out<T> {
    Out {
        name: name.to_owned(),
        _type: PhantomData,
    }
}

/// An optional output named `name`: the op returns it as an `Option<T>`, and `None` means
/// "not produced". Steps that take it are then skipped (a fan-in list gets the items that
/// were produced, and is skipped only when none was); the run still succeeds.
pub fn optional_out<T: Value>(name: &str) -> OptionalOut<T> {
    OptionalOut {
        name: name.to_owned(),
        _type: PhantomData,
    }
}

/// A dynamic output named `name`: the op returns a [`Dynamic<T>`], values under mapping
/// keys, and the job maps ops over it (one step per key) and collects their outputs. See
/// [`crate::dynamic`].
pub fn dynamic_out<T: Value>(name: &str) -> DynamicOut<T> {
    DynamicOut {
        name: name.to_owned(),
        _type: PhantomData,
    }
}

/// A dynamic output; see [`dynamic_out`].
#[derive(Debug)]
pub struct DynamicOut<T> {
    name: String,
    _type: PhantomData<fn() -> T>,
}

/// A required output; see [`out`].
#[derive(Debug)]
pub struct Out<T> {
    name: String,
    _type: PhantomData<fn() -> T>,
}

/// An optional output; see [`optional_out`].
#[derive(Debug)]
pub struct OptionalOut<T> {
    name: String,
    _type: PhantomData<fn() -> T>,
}

/// One declared output: [`Out`], [`OptionalOut`] or [`DynamicOut`].
pub trait Part: 'static {
    /// How the function returns it: `T`, `Option<T>` when optional, `Dynamic<T>` when dynamic.
    type Returned: Send + 'static;
    /// The handle a job gets for it: an [`Output<T>`], or a [`DynamicOutput<T>`].
    type Handle;

    /// The handle to output `output` of step `step` of builder `builder`.
    #[doc(hidden)]
    fn handle(builder: u64, step: usize, output: usize) -> Self::Handle;

    /// Its spec.
    #[doc(hidden)]
    fn spec(&self) -> OutputSpec;

    /// The value to store, if produced.
    #[doc(hidden)]
    fn produce(value: Self::Returned) -> Option<Box<dyn Produced>>;
}

impl<T: Value> Part for Out<T> {
    type Returned = T;
    type Handle = Output<T>;

    fn handle(builder: u64, step: usize, output: usize) -> Output<T> {
        Output::new(builder, step, output)
    }

    fn spec(&self) -> OutputSpec {
        OutputSpec::of::<T>(self.name.clone(), false)
    }

    fn produce(value: T) -> Option<Box<dyn Produced>> {
        Some(produced(value))
    }
}

impl<T: Value> Part for OptionalOut<T> {
    type Returned = Option<T>;
    type Handle = Output<T>;

    fn handle(builder: u64, step: usize, output: usize) -> Output<T> {
        Output::new(builder, step, output)
    }

    fn spec(&self) -> OutputSpec {
        OutputSpec::of::<T>(self.name.clone(), true)
    }

    fn produce(value: Option<T>) -> Option<Box<dyn Produced>> {
        value.map(produced)
    }
}

impl<T: Value> Part for DynamicOut<T> {
    type Returned = Dynamic<T>;
    type Handle = DynamicOutput<T>;

    fn handle(builder: u64, step: usize, output: usize) -> DynamicOutput<T> {
        DynamicOutput::new(builder, step, output)
    }

    fn spec(&self) -> OutputSpec {
        OutputSpec {
            dynamic: true,
            ..OutputSpec::of::<T>(self.name.clone(), false)
        }
    }

    fn produce(value: Dynamic<T>) -> Option<Box<dyn Produced>> {
        Some(Box::new(Items(Some(value))))
    }
}

/// The declared outputs of an op: one [`Part`], or a tuple of up to eight.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not declare an op's outputs",
    label = "declare outputs with `out(\"name\")` and `optional_out(\"name\")`",
    note = "pass one declaration, or a tuple of them: `(out(\"evens\"), optional_out(\"odds\"))`"
)]
pub trait Outs: 'static {
    /// What the op's function returns: one value per output, a tuple for several.
    type Returned: Send + 'static;
    /// One [`Output`] handle per output, a tuple for several.
    type Handles;

    /// The outputs' specs, in order.
    #[doc(hidden)]
    fn specs(&self) -> Vec<OutputSpec>;

    /// Splits what the function returned into the outputs to store.
    #[doc(hidden)]
    fn split(value: Self::Returned) -> Split;

    /// The handles to the outputs of step `step` of builder `builder`.
    #[doc(hidden)]
    fn handles(builder: u64, step: usize) -> Self::Handles;
}

macro_rules! impl_outs_single {
    ($part:ident) => {
        impl<T: Value> Outs for $part<T> {
            type Returned = <Self as Part>::Returned;
            type Handles = <Self as Part>::Handle;

            fn specs(&self) -> Vec<OutputSpec> {
                vec![self.spec()]
            }

            fn split(value: Self::Returned) -> Split {
                vec![<Self as Part>::produce(value)]
            }

            fn handles(builder: u64, step: usize) -> Self::Handles {
                <Self as Part>::handle(builder, step, 0)
            }
        }
    };
}

impl_outs_single!(Out);
impl_outs_single!(OptionalOut);
impl_outs_single!(DynamicOut);

macro_rules! impl_outs_tuple {
    ($($k:tt => $p:ident),+) => {
        impl<$($p: Part),+> Outs for ($($p,)+) {
            type Returned = ($($p::Returned,)+);
            type Handles = ($($p::Handle,)+);

            fn specs(&self) -> Vec<OutputSpec> {
                vec![$(self.$k.spec()),+]
            }

            fn split(value: Self::Returned) -> Split {
                vec![$($p::produce(value.$k)),+]
            }

            fn handles(builder: u64, step: usize) -> Self::Handles {
                ($($p::handle(builder, step, $k),)+)
            }
        }
    };
}

impl_outs_tuple!(0 => A);
impl_outs_tuple!(0 => A, 1 => B);
impl_outs_tuple!(0 => A, 1 => B, 2 => C);
impl_outs_tuple!(0 => A, 1 => B, 2 => C, 3 => D);
impl_outs_tuple!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E);
impl_outs_tuple!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F);
impl_outs_tuple!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F, 6 => G);
impl_outs_tuple!(0 => A, 1 => B, 2 => C, 3 => D, 4 => E, 5 => F, 6 => G, 7 => H);
