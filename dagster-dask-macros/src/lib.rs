//! Procedural macros for `dagster-dask`: `#[op]` and `job!`.
//!
//! This crate declares only the proc macros; use them through the `dagster_dask` crate,
//! whose documentation of [`op`](macro@op) and [`job!`] it is. Both are sugar over
//! `dagster_dask`'s macro-free API: everything they generate can be written by hand.

mod graph;
mod job;
mod lowering;
mod op;
mod util;

#[cfg(test)]
mod snapshots;

use proc_macro::TokenStream;

/// Turns a function into an op; the function stays callable as written.
///
#[doc = include_str!("../docs/op.md")]
#[proc_macro_attribute]
pub fn op(args: TokenStream, item: TokenStream) -> TokenStream {
    op::expand(args.into(), item.into()).into()
}

/// Defines a graph: a reusable piece of a job, with typed inputs and outputs, used in
/// `job!` (and in other graphs) like an op.
///
#[doc = include_str!("../docs/graph.md")]
#[proc_macro]
pub fn graph(input: TokenStream) -> TokenStream {
    graph::expand(input.into()).into()
}

/// Wires ops into a job: `job! { fn my_job() { let x = a(); b(x); } }` defines
/// `fn my_job() -> Job`.
///
#[doc = include_str!("../docs/job.md")]
#[proc_macro]
pub fn job(input: TokenStream) -> TokenStream {
    job::expand(input.into()).into()
}
