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
//! #[op]
//! fn get_name() -> String {
//!     "dask".to_owned()
//! }
//!
//! #[op(tags(resource_requirements(GPU = 1)), retries = 2)]
//! fn hello(ctx: &OpContext, name: String) -> String {
//!     ctx.log().info(format!("hello, {name}"));
//!     format!("Hello, {name}!")
//! }
//!
//! job! {
//!     fn hello_job() {
//!         let name = get_name();
//!         hello(name);
//!     }
//! }
//!
//! let result = hello_job().execute_in_process().unwrap();
//! assert_eq!(result.output::<String>("hello").unwrap(), "Hello, dask!");
//! ```
//!
//! Ops may have several named (and optional) outputs, jobs may nest graphs of ops
//! ([`graph!`]), and ops may receive [resources](resource) the job provides.
//!
//! The macros are sugar over the macro-free API of [`op::OpDef`], [`graph::JobBuilder`] and
//! [`graph::GraphDef`]; see each macro's "equivalent code" section.
//!
//! A job binary's `main` is one line: `fn main() -> ExitCode { dagster_dask::main(job()) }`.
//!
//! Modules, by domain: [`op`](mod@op) (op definitions, context, retry policy), [`graph`](mod@graph) (the
//! job builder and its validation), [`plan`] (the frozen plan), [`config`] (run config),
//! [`run`](mod@run) (a run: its id, statuses and result), [`exec`] (launching runs, executors
//! and the run state they share), [`storage`] (where a run's data lives), [`io`] (IO
//! managers), [`codec`] (values to bytes), [`events`] (events and the run's event log),
//! [`error`] (step errors), [`types`] (type names), [`cli`] (the job binary's command line).
//! [`docs::type_errors`] explains the compile errors at job edges.

pub(crate) mod cache;
pub mod cli;
pub mod codec;
pub mod config;
pub mod docs;
pub mod dynamic;
pub mod error;
pub mod events;
pub mod exec;
pub mod graph;
pub mod history;
pub mod io;
pub mod op;
pub mod plan;
pub mod report;
pub mod resource;
pub mod run;
pub mod selection;
pub mod storage;
pub mod types;

pub use cli::{main, main_with_defaults};
#[doc(inline)]
pub use dagster_dask_macros::{graph, job, op};

/// What the macros' expansions name; not part of the API.
#[doc(hidden)]
pub mod __private {
    use crate::graph::{Edge, IntoInput, Node, edge};
    use crate::op::InputAt;

    /// `handle`, checked against input `K` of op (or graph) `N`.
    pub fn edge_at<N, H, const K: usize>(handle: H) -> Edge<<N::Inputs as InputAt<K>>::Type>
    where
        N: Node,
        N::Inputs: InputAt<K>,
        H: IntoInput<<N::Inputs as InputAt<K>>::Type>,
    {
        edge(handle)
    }

    /// Checks at compile time that job `P` provides every resource in `R`: `job!` calls it
    /// for each op, spanned at the op's name.
    pub fn provided<P, R: crate::resource::ProvidedBy<P>>() {}

    /// Runs an `async` op body to completion on the step's thread, on a current-thread
    /// tokio runtime kept per thread (timers and IO enabled when the crate graph enables
    /// tokio's `time` and `net`), so that ops may await tokio timers, sockets and
    /// object_store. Inside a caller's own runtime, the body runs on that one's reactor.
    pub fn block_on<F: core::future::Future>(future: F) -> F::Output {
        use std::cell::OnceCell;
        thread_local! {
            static RUNTIME: OnceCell<Option<tokio::runtime::Runtime>> = const { OnceCell::new() };
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return futures_executor::block_on(future);
        }
        let ran = RUNTIME.with(move |cell| {
            let runtime = cell.get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()
            });
            match runtime {
                Some(rt) => Ok(rt.block_on(future)),
                None => Err(future),
            }
        });
        // No runtime could be built (out of file descriptors, say): run it bare.
        ran.unwrap_or_else(futures_executor::block_on)
    }

    /// `T` itself, when `T` can flow between steps: `#[op]` names input and output types
    /// through it, so a type serde cannot store is one error at the user's type.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot flow between steps",
        label = "op inputs and outputs must be serde types",
        note = "an op's inputs and output are stored by the IO manager: derive `serde::Serialize` \
                and `serde::Deserialize` for `{Self}`, and make it owned and `Send`"
    )]
    pub trait IsValue {
        /// `T`.
        type Type;
    }

    impl<T: crate::op::Value> IsValue for T {
        type Type = T;
    }

    /// Builds the job `job!` wired. `job!` checks names and wiring at compile time, so this
    /// fails only for what it cannot see (an `#[op(name = ...)]` clashing with an alias).
    #[track_caller]
    pub fn finish(builder: crate::graph::JobBuilder) -> crate::graph::Job {
        match builder.build() {
            Ok(job) => job,
            Err(e) => panic!("{e}"),
        }
    }
}

/// The names a pipeline module needs.
pub mod prelude {
    pub use crate::config::RunConfig;
    pub use crate::exec::{Run, RunResult, RunStatus, StepStatus};
    pub use crate::graph::{Job, JobBuilder, Output};
    pub use crate::op::{Backoff, Jitter, OpContext, OpDef, OpDefinition, RetryPolicy};
    pub use crate::resource::{Resource, ResourceContext};
    pub use crate::{graph, job, op};
}

/// The README's code compiles: it is part of the doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
