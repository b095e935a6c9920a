//! Hello world on Dask: the job runs on a `distributed.LocalCluster` that the run starts and
//! closes, one Dask task per step. The run config is the one of Dagster's docs
//! ("Executing on Dask"); pass your own with `-c` to change it.
//!
//! ```text
//! python3 -m pip install -r dagster-dask/python/requirements.txt   # once: the pinned distributed
//! cargo run --example dask_local
//! ```
//!
//! The Python with `distributed` is `$DAGSTER_DASK_PYTHON`, else `execution.config.python`,
//! else `python3`.

use std::process::ExitCode;

use dagster_dask::prelude::*;

/// Dagster's docs' local-cluster config.
const RUN_CONFIG: &str = "
execution:
  config:
    cluster:
      local:
        n_workers: 2
        threads_per_worker: 1
";

fn local_dask_job() -> Job {
    let get_name = OpDef::new("get_name", [], |_ctx, (): ()| "Dask".to_owned());
    let hello_world = OpDef::new(
        "hello_world",
        ["name"],
        |ctx: &OpContext, (name,): (String,)| {
            ctx.log().info(format!("hello from a Dask worker, {name}"));
            format!("Hello, {name}!")
        },
    );
    let mut job = JobBuilder::new("local_dask_job");
    let name = job.add(&get_name, ());
    job.add(&hello_world, name);
    job.build().expect("the job is valid")
}

fn main() -> ExitCode {
    dagster_dask::main_with_defaults(local_dask_job(), RUN_CONFIG)
}
