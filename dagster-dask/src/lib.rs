//! Typed data pipelines in Rust, run on Dask clusters: the Rust counterpart of Dagster's
//! `dagster-dask`.
//!
//! Pipelines are **ops** (typed functions) wired into **jobs**. A job is validated once into
//! a frozen [`Plan`](plan::Plan); an executor runs the plan, passing data between steps
//! through an [IO manager](io) on shared storage, and reports everything as
//! [events]. The job binary's command line ([`main`]) runs it, shows its plan and
//! graph, validates run config, and runs single steps for executors on other machines.
//!
//! ```
//! use dagster_dask::prelude::*;
//!
//! let get_name = OpDef::new("get_name", [], |_ctx, (): ()| "dask".to_owned());
//! let hello = OpDef::new("hello", ["name"], |ctx: &OpContext, (name,): (String,)| {
//!     ctx.log().info(format!("hello, {name}"));
//!     format!("Hello, {name}!")
//! })
//! .resource("GPU", 1.0) // only the Dask executor places by resources
//! .retry_policy(RetryPolicy::new(2));
//!
//! let mut job = JobBuilder::new("hello_job");
//! let name = job.add(&get_name, ());
//! job.add(&hello, name);
//! let job = job.build().expect("a valid graph");
//!
//! let result = job.execute_in_process().unwrap();
//! assert_eq!(result.output::<String>("hello").unwrap(), "Hello, dask!");
//! ```
//!
//! A job binary's `main` is one line: `fn main() -> ExitCode { dagster_dask::main(job()) }`.
//!
//! Modules, by domain: [`op`] (op definitions, context, retry policy), [`graph`] (the job
//! builder and its validation), [`plan`] (the frozen plan), [`config`] (run config),
//! [`exec`] (executors and runs), [`io`] (IO managers), [`codec`] (values to bytes),
//! [`events`] (events and the run's event log), [`cli`] (the job binary's command line).

pub mod cli;
pub mod codec;
pub mod config;
pub mod events;
pub mod exec;
pub mod graph;
pub mod io;
pub mod op;
pub mod plan;

pub use cli::{main, main_with_defaults};

/// The names a pipeline module needs.
pub mod prelude {
    pub use crate::config::RunConfig;
    pub use crate::exec::{Run, RunResult, RunStatus, StepStatus};
    pub use crate::graph::{Job, JobBuilder, Output};
    pub use crate::op::{Backoff, Jitter, OpContext, OpDef, RetryPolicy};
}

/// The README's code compiles: it is part of the doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
