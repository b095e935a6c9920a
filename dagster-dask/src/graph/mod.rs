//! Wiring ops (and nested graphs of ops, [`GraphDef`]) into a job, and validating the whole
//! graph in one pass.
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

mod builder;
mod error;
mod handle;
mod job;
mod mapping;
mod node;
mod validate;

pub use self::builder::JobBuilder;
pub use self::error::{GraphError, GraphProblem};
pub(crate) use self::handle::FromJsonFn;
pub use self::handle::{
    ConfigInput, Edge, IntoInput, IntoInputs, Output, StepRef, Wiring, config_input, edge,
};
pub use self::job::Job;
pub use self::mapping::{
    Collected, DynamicOutput, Each, Mapped, PerKey, collect, map_node, map_with,
};
pub use self::node::{GraphDef, GraphInput, GraphInputs, Node, add_node};

pub(crate) use self::validate::is_valid_name;
pub use crate::op::RESULT;
