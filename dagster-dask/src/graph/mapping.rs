//! Handles of the dynamic part of a job: a dynamic output, the steps mapped over it, and
//! their collected outputs (see [`crate::dynamic`]).
//!
//! ```
//! use dagster_dask::dynamic::Dynamic;
//! use dagster_dask::graph::JobBuilder;
//! use dagster_dask::op::{OpDef, dynamic_out};
//!
//! let numbers = OpDef::multi("numbers", [], dynamic_out("n"), |_ctx, (): ()| {
//!     (1..=3_u64).map(|i| (format!("n{i}"), i)).collect::<Dynamic<u64>>()
//! });
//! let square = OpDef::new("square", ["x"], |_ctx, (x,): (u64,)| x * x);
//! let total = OpDef::new("total", ["xs"], |_ctx, (xs,): (Vec<u64>,)| xs.iter().sum::<u64>());
//! let mut job = JobBuilder::new("squares");
//! let n = job.add(&numbers, ());
//! let squares = job.map(&square, n); // steps `square[n1]`, `square[n2]`, `square[n3]`
//! job.add(&total, squares.collect());
//! let result = job.build().unwrap().execute_in_process().unwrap();
//! assert_eq!(result.output::<u64>("total").unwrap(), 14);
//! ```

use std::fmt;
use std::marker::PhantomData;

use super::builder::JobBuilder;
use super::handle::{IntoInput, IntoInputs, Output, Wiring};
use crate::op::{OpDef, OpDefinition, Value};

/// A typed handle to a dynamic output: map ops over it ([`JobBuilder::map`]) or collect its
/// items ([`collect`](Self::collect)).
pub struct DynamicOutput<T>(Output<T>);

/// A typed handle to the output of a step mapped over a dynamic output: one value per
/// mapping key. Map further ops over it (they stay per key) or [`collect`](Self::collect) it.
pub struct Mapped<T>(Output<T>);

/// The value of one mapping key, inside the body of [`JobBuilder::map_with`]: pass it to ops
/// like any handle; they run once per key.
pub struct PerKey<T> {
    source: (u64, usize, usize),
    _type: PhantomData<fn() -> T>,
}

/// The outputs of every mapped step (or every item of a dynamic output), as one `Vec<T>` in
/// the order the mapping keys were emitted: feeds an input of type `Vec<T>`.
pub struct Collected<T> {
    source: (u64, usize, usize),
    _type: PhantomData<fn() -> T>,
}

impl<T> DynamicOutput<T> {
    pub(crate) fn new(builder: u64, step: usize, output: usize) -> Self {
        Self(Output::new(builder, step, output))
    }
}

impl<T: Value> DynamicOutput<T> {
    /// All items, as one `Vec<T>` in emission order. An empty dynamic output skips the step
    /// that takes it.
    pub fn collect(self) -> Collected<T> {
        self.collected()
    }
}

impl<T: Value> Mapped<T> {
    /// The outputs of all mapped steps, as one `Vec<T>` in emission order. When one of them
    /// fails, the step that takes it is skipped.
    pub fn collect(self) -> Collected<T> {
        self.collected()
    }
}

macro_rules! copy_and_debug {
    ($handle:ident) => {
        impl<T> Clone for $handle<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T> Copy for $handle<T> {}
        impl<T> fmt::Debug for $handle<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}<{}>", stringify!($handle), std::any::type_name::<T>())
            }
        }
    };
}

copy_and_debug!(DynamicOutput);
copy_and_debug!(Mapped);
copy_and_debug!(Collected);
copy_and_debug!(PerKey);

impl<T: Value> IntoInput<T> for PerKey<T> {
    fn into_wiring(self) -> Wiring {
        Wiring::one::<T>(self.source, true)
    }
}

impl<T: Value> IntoInputs<(T,)> for PerKey<T> {
    fn into_wirings(self) -> Vec<Wiring> {
        vec![self.into_wiring()]
    }
}

/// A handle with one value per mapping key: a [`DynamicOutput`] or a [`Mapped`] output.
/// `.map(op)` runs `op` once per key; `.collect()` gathers the values.
#[diagnostic::on_unimplemented(
    message = "`.map` and `.collect()` take a dynamic output or a mapped step's output, not `{Self}`",
    label = "not one value per mapping key",
    note = "map over the handle of an op output declared `out(name(dynamic))` (an op returning \
            `Dynamic<T>`), or over what such a `.map(...)` returned; a plain output has one \
            value: pass it to the op directly"
)]
pub trait Each: Copy {
    /// The type of each value.
    type Item: Value;

    /// (builder, step, output) of the values.
    #[doc(hidden)]
    fn source(self) -> (u64, usize, usize);

    /// Every value as one list.
    #[doc(hidden)]
    fn collected(self) -> Collected<Self::Item> {
        Collected {
            source: self.source(),
            _type: PhantomData,
        }
    }
}

impl<T: Value> Each for DynamicOutput<T> {
    type Item = T;

    fn source(self) -> (u64, usize, usize) {
        (self.0.builder, self.0.step, self.0.output)
    }
}

impl<T: Value> Each for Mapped<T> {
    type Item = T;

    fn source(self) -> (u64, usize, usize) {
        (self.0.builder, self.0.step, self.0.output)
    }
}

impl<T: Value> IntoInput<Vec<T>> for Collected<T> {
    fn into_wiring(self) -> Wiring {
        Wiring::fan_in::<T>(vec![self.source])
    }
}

impl<T: Value> IntoInputs<(Vec<T>,)> for Collected<T> {
    fn into_wirings(self) -> Vec<Wiring> {
        vec![self.into_wiring()]
    }
}

/// The wiring of the mapped input: the value of the step's own mapping key.
fn each_wiring<T: Value>(handle: impl Each<Item = T>) -> Wiring {
    Wiring::one::<T>(handle.source(), true)
}

impl JobBuilder {
    /// Maps `op` over `values` (a dynamic output, or an earlier map's output): at run time,
    /// one step `op[key]` per mapping key, each fed that key's value. The step is named after
    /// the op (`op_2`... for a second use), like [`add`](Self::add).
    pub fn map<T: Value, U: Value>(
        &mut self,
        op: &OpDef<(T,), U>,
        values: impl Each<Item = T>,
    ) -> Mapped<U> {
        self.map_wired(op, None, each_wiring(values))
    }

    /// Like [`map`](Self::map), naming the mapped steps `alias[key]`.
    pub fn map_as<T: Value, U: Value>(
        &mut self,
        alias: &str,
        op: &OpDef<(T,), U>,
        values: impl Each<Item = T>,
    ) -> Mapped<U> {
        self.map_wired(op, Some(alias), each_wiring(values))
    }

    /// Maps a body over `values`: Dagster's `.map(lambda x: op(x, other))`. The body adds
    /// ops with the value of one mapping key ([`PerKey`]) and any other handles; each step it
    /// adds runs once per key (`op[key]`), and the handle it returns is the map's result.
    ///
    /// ```
    /// use dagster_dask::dynamic::Dynamic;
    /// use dagster_dask::graph::JobBuilder;
    /// use dagster_dask::op::{OpDef, dynamic_out};
    ///
    /// let numbers = OpDef::multi("numbers", [], dynamic_out("n"), |_ctx, (): ()| {
    ///     (1..=3_u64).map(|i| (format!("n{i}"), i)).collect::<Dynamic<u64>>()
    /// });
    /// let ten = OpDef::new("ten", [], |_ctx, (): ()| 10_u64);
    /// let times = OpDef::new("times", ["x", "by"], |_ctx, (x, by): (u64, u64)| x * by);
    /// let total = OpDef::new("total", ["xs"], |_ctx, (xs,): (Vec<u64>,)| xs.iter().sum::<u64>());
    /// let mut job = JobBuilder::new("scaled");
    /// let (n, by) = (job.add(&numbers, ()), job.add(&ten, ()));
    /// let scaled = job.map_with(n, |job, x| job.add(&times, (x, by)));
    /// job.add(&total, scaled.collect());
    /// let result = job.build().unwrap().execute_in_process().unwrap();
    /// assert_eq!(result.output::<u64>("total").unwrap(), 60);
    /// ```
    pub fn map_with<H: Each, U: Value>(
        &mut self,
        values: H,
        body: impl FnOnce(&mut JobBuilder, PerKey<H::Item>) -> Output<U>,
    ) -> Mapped<U> {
        let per_key = PerKey {
            source: values.source(),
            _type: PhantomData,
        };
        let result = body(self, per_key);
        if result.builder == self.id {
            self.map_results.push(result.step);
        }
        Mapped(result)
    }

    fn map_wired<T, U: Value>(
        &mut self,
        op: &OpDef<(T,), U>,
        alias: Option<&str>,
        wiring: Wiring,
    ) -> Mapped<U> {
        Mapped(self.add_wired(op, alias, vec![wiring]))
    }
}

/// Maps op `N` (one input, one output) over `values`: what `values.map(op)` in `job!` becomes.
#[doc(hidden)]
pub fn map_node<N, H, U>(job: &mut JobBuilder, alias: Option<&str>, values: H) -> Mapped<U>
where
    H: Each,
    N: OpDefinition<Inputs = (H::Item,), Output = U>,
    U: Value,
{
    job.map_wired(&N::definition(), alias, each_wiring(values))
}

/// A map whose body is a closure: what `values.map(|x| op(x, other))` in `job!` becomes.
#[doc(hidden)]
pub fn map_with<H: Each, U: Value>(
    job: &mut JobBuilder,
    values: H,
    body: impl FnOnce(&mut JobBuilder, PerKey<H::Item>) -> Output<U>,
) -> Mapped<U> {
    job.map_with(values, body)
}

/// Every value of `values` as one list: what `values.collect()` in `job!` becomes.
#[doc(hidden)]
pub fn collect<H: Each>(values: H) -> Collected<H::Item> {
    values.collected()
}
