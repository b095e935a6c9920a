//! Typed handles to step outputs, and how they wire into an op's inputs.

use std::fmt;
use std::marker::PhantomData;

use crate::op::{AnyValue, DecodeFn, TypeInfo, Value, decode_any};

/// A typed handle to one output of a step added to a [`JobBuilder`](super::JobBuilder).
pub struct Output<T> {
    pub(super) builder: u64,
    pub(super) step: usize,
    /// The output's position among the op's outputs.
    pub(super) output: usize,
    pub(super) _type: PhantomData<fn() -> T>,
}

impl<T> Output<T> {
    pub(crate) fn new(builder: u64, step: usize, output: usize) -> Self {
        Self {
            builder,
            step,
            output,
            _type: PhantomData,
        }
    }
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
            "Output<{}>(step #{}, output #{})",
            std::any::type_name::<T>(),
            self.step,
            self.output
        )
    }
}

/// Turns decoded fan-in values into the input's `Vec<T>`.
pub(crate) type CollectFn = fn(Vec<AnyValue>) -> Option<AnyValue>;

fn collect_vec<T: Value>(items: Vec<AnyValue>) -> Option<AnyValue> {
    let items: Option<Vec<T>> = items
        .into_iter()
        .map(|v| v.downcast::<T>().ok().map(|b| *b))
        .collect();
    Some(Box::new(items?))
}

/// Reads one input's value from run config (`ops.<step>.inputs.<name>`).
pub(crate) type FromJsonFn = fn(&serde_json::Value) -> Result<AnyValue, String>;

fn from_json<T: Value>(value: &serde_json::Value) -> Result<AnyValue, String> {
    crate::op::from_config_value::<T>(value).map(|v| Box::new(v) as AnyValue)
}

/// An input given in run config instead of by an upstream step: Dagster's
/// `ops.<step>.inputs.<name>`, checked against the input's type before the run. Pass
/// [`config_input()`] where a handle would go (`from_config!()` in `job!`).
#[derive(Debug, Clone, Copy)]
pub struct ConfigInput;

/// An input given in run config (`ops.<step>.inputs.<name>`); see [`ConfigInput`].
pub fn config_input() -> ConfigInput {
    ConfigInput
}

impl<T: Value> IntoInput<T> for ConfigInput {
    fn into_wiring(self) -> Wiring {
        Wiring {
            sources: Vec::new(),
            input_type: TypeInfo::of::<T>(),
            source_type: TypeInfo::of::<T>(),
            decode: decode_any::<T>,
            collect: None,
            from_config: Some(from_json::<T>),
            each: false,
        }
    }
}

impl<T: Value> IntoInputs<(T,)> for ConfigInput {
    fn into_wirings(self) -> Vec<Wiring> {
        vec![IntoInput::<T>::into_wiring(self)]
    }
}

/// How one input of a step receives its value: the upstream outputs and how to decode them.
#[derive(Clone)]
pub struct Wiring {
    /// (builder, step, output) of each upstream output.
    pub(super) sources: Vec<(u64, usize, usize)>,
    pub(super) input_type: TypeInfo,
    pub(super) source_type: TypeInfo,
    pub(super) decode: DecodeFn,
    pub(super) collect: Option<CollectFn>,
    /// Set when the value comes from run config, not from upstream steps.
    pub(super) from_config: Option<FromJsonFn>,
    /// Set when the source has one value per mapping key and the step is mapped over it.
    pub(super) each: bool,
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

impl Wiring {
    /// One upstream output of type `T` (`each`: the value of the step's mapping key).
    pub(super) fn one<T: Value>(source: (u64, usize, usize), each: bool) -> Self {
        Self {
            sources: vec![source],
            input_type: TypeInfo::of::<T>(),
            source_type: TypeInfo::of::<T>(),
            decode: decode_any::<T>,
            collect: None,
            from_config: None,
            each,
        }
    }

    /// Upstream outputs of type `T` gathered into a `Vec<T>`.
    pub(super) fn fan_in<T: Value>(sources: Vec<(u64, usize, usize)>) -> Self {
        Self {
            sources,
            input_type: TypeInfo::of::<Vec<T>>(),
            source_type: TypeInfo::of::<T>(),
            decode: decode_any::<T>,
            collect: Some(collect_vec::<T>),
            from_config: None,
            each: false,
        }
    }
}

impl<T: Value> IntoInput<T> for Output<T> {
    fn into_wiring(self) -> Wiring {
        Wiring::one::<T>((self.builder, self.step, self.output), false)
    }
}

impl<T: Value> IntoInput<Vec<T>> for Vec<Output<T>> {
    fn into_wiring(self) -> Wiring {
        Wiring::fan_in::<T>(self.iter().map(|h| (h.builder, h.step, h.output)).collect())
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
    pub(super) key: String,
}

impl StepRef {
    /// The step's key.
    pub fn key(&self) -> &str {
        &self.key
    }
}
