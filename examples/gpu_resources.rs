//! Resource requirements: `train` asks for one GPU (`resource("GPU", 1.0)`, Dagster's
//! `dagster-dask/resource_requirements: {GPU: 1}`), which becomes Dask's `resources=`.
//! The local cluster's workers advertise `GPU=1` each, so at most one training runs per
//! worker at a time. The summary shows which worker ran each step.
//!
//! ```text
//! cargo run --example gpu_resources
//! ```
//!
//! With `resources` removed from the config below, no worker offers a GPU: the training
//! steps fail after `no_worker_timeout` seconds, naming the requirement and the workers.

use std::process::ExitCode;

use dagster_dask::prelude::*;

const RUN_CONFIG: &str = "
execution:
  config:
    cluster:
      local:
        n_workers: 2
        resources: { GPU: 1 }
    no_worker_timeout: 20
";

fn gpu_job() -> Job {
    let load = OpDef::new("load", [], |_ctx, (): ()| {
        (0..1_000).map(f64::from).collect::<Vec<f64>>()
    });
    let train = OpDef::new(
        "train",
        ["rows"],
        |ctx: &OpContext, (rows,): (Vec<f64>,)| {
            ctx.log().info(format!(
                "{} trains on {} rows with its GPU",
                ctx.step_key(),
                rows.len()
            ));
            rows.iter().sum::<f64>() / rows.len() as f64
        },
    )
    .resource("GPU", 1.0);
    let best = OpDef::new("best", ["scores"], |_ctx, (scores,): (Vec<f64>,)| {
        scores.into_iter().fold(f64::MIN, f64::max)
    });
    let mut job = JobBuilder::new("gpu_job");
    let rows = job.add(&load, ());
    let scores: Vec<_> = (1..=4)
        .map(|i| job.add_as(&format!("train_{i}"), &train, rows))
        .collect();
    job.add(&best, scores);
    job.build().expect("the job is valid")
}

fn main() -> ExitCode {
    dagster_dask::main_with_defaults(gpu_job(), RUN_CONFIG)
}
