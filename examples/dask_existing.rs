//! A job on an existing Dask cluster: the scheduler's address comes from the environment
//! (`DASK_SCHEDULER_ADDRESS`), or from your own run config.
//!
//! ```text
//! dask scheduler --port 8786 &
//! dask worker tcp://127.0.0.1:8786 &
//! DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:8786 cargo run --example dask_existing
//! cargo run --example dask_existing -- run -c my_cluster.yaml   # or: address in a file
//! ```
//!
//! Workers run this same binary in step mode. On other machines they need the binary at
//! the same path, or `ship_binary: auto` (the default) copies it to them; outputs go to
//! `base_dir`, which every worker must be able to read and write (NFS, a shared disk).

use std::process::ExitCode;

use dagster_dask::prelude::*;

const RUN_CONFIG: &str = "
execution:
  config:
    cluster:
      existing:
        address: { env: DASK_SCHEDULER_ADDRESS }
";

fn remote_job() -> Job {
    let numbers = OpDef::new("numbers", [], |_ctx, (): ()| {
        (1..=100).collect::<Vec<u64>>()
    });
    let evens = OpDef::new("evens", ["xs"], |_ctx, (xs,): (Vec<u64>,)| {
        xs.into_iter().filter(|x| x % 2 == 0).sum::<u64>()
    });
    let odds = OpDef::new("odds", ["xs"], |_ctx, (xs,): (Vec<u64>,)| {
        xs.into_iter().filter(|x| x % 2 == 1).sum::<u64>()
    });
    let total = OpDef::new(
        "total",
        ["parts"],
        |ctx: &OpContext, (parts,): (Vec<u64>,)| {
            ctx.log().info(format!("summing {parts:?}"));
            parts.iter().sum::<u64>()
        },
    );
    let mut job = JobBuilder::new("remote_job");
    let xs = job.add(&numbers, ());
    let parts = vec![job.add(&evens, xs), job.add(&odds, xs)];
    job.add(&total, parts);
    job.build().expect("the job is valid")
}

fn main() -> ExitCode {
    dagster_dask::main_with_defaults(remote_job(), RUN_CONFIG)
}
