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
use crate::graph::Output;

/// The name of the output of an op with one unnamed output.
pub const RESULT: &str = "result";

/// One declared output of an op, with its type erased.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct OutputSpec {
    pub(crate) name: String,
    pub(crate) type_info: TypeInfo,
    pub(crate) optional: bool,
    pub(crate) to_json: fn(&[u8]) -> Result<serde_json::Value, CodecError>,
}

impl OutputSpec {
    fn of<T: Value>(name: String, optional: bool) -> Self {
        Self {
            name,
            type_info: TypeInfo::of::<T>(),
            optional,
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

/// One declared output: [`Out`] or [`OptionalOut`].
pub trait Part: 'static {
    /// How the function returns it: `T`, or `Option<T>` when optional.
    type Returned: Send + 'static;
    /// The value stored and handed downstream.
    type Value: Value;

    /// Its spec.
    #[doc(hidden)]
    fn spec(&self) -> OutputSpec;

    /// The value to store, if produced.
    #[doc(hidden)]
    fn produce(value: Self::Returned) -> Option<Box<dyn Produced>>;
}

impl<T: Value> Part for Out<T> {
    type Returned = T;
    type Value = T;

    fn spec(&self) -> OutputSpec {
        OutputSpec::of::<T>(self.name.clone(), false)
    }

    fn produce(value: T) -> Option<Box<dyn Produced>> {
        Some(produced(value))
    }
}

impl<T: Value> Part for OptionalOut<T> {
    type Returned = Option<T>;
    type Value = T;

    fn spec(&self) -> OutputSpec {
        OutputSpec::of::<T>(self.name.clone(), true)
    }

    fn produce(value: Option<T>) -> Option<Box<dyn Produced>> {
        value.map(produced)
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
            type Handles = Output<T>;

            fn specs(&self) -> Vec<OutputSpec> {
                vec![self.spec()]
            }

            fn split(value: Self::Returned) -> Split {
                vec![<Self as Part>::produce(value)]
            }

            fn handles(builder: u64, step: usize) -> Output<T> {
                Output::new(builder, step, 0)
            }
        }
    };
}

impl_outs_single!(Out);
impl_outs_single!(OptionalOut);

macro_rules! impl_outs_tuple {
    ($($k:tt => $p:ident),+) => {
        impl<$($p: Part),+> Outs for ($($p,)+) {
            type Returned = ($($p::Returned,)+);
            type Handles = ($(Output<$p::Value>,)+);

            fn specs(&self) -> Vec<OutputSpec> {
                vec![$(self.$k.spec()),+]
            }

            fn split(value: Self::Returned) -> Split {
                vec![$($p::produce(value.$k)),+]
            }

            fn handles(builder: u64, step: usize) -> Self::Handles {
                ($(Output::new(builder, step, $k),)+)
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
