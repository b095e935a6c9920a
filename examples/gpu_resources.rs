//! Resource requirements: `train` asks for one GPU
//! (`#[op(tags(resource_requirements(GPU = 1)))]`, Dagster's
//! `dagster-dask/resource_requirements: {GPU: 1}`), which becomes Dask's `resources=`.
//! The local cluster's workers advertise `GPU=1` each, so at most one training runs per
//! worker at a time. Each training logs the GPU it sees (`nvidia-smi`), and the summary
//! shows which worker ran each step.
//!
//! ```text
//! cargo run --example gpu_resources
//! ```
//!
//! With `resources` removed from the config below, no worker offers a GPU: the training
//! steps fail after `no_worker_timeout` seconds, naming the requirement and the workers.

use std::process::{Command, ExitCode};

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

/// The GPUs this process can see, as `nvidia-smi` names them.
fn visible_gpus() -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()?;
    let names = String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace('\n', ", ");
    (out.status.success() && !names.is_empty()).then_some(names)
}

#[op]
fn load() -> Vec<f64> {
    (0..1_000).map(f64::from).collect()
}

/// Trains on the GPU that Dask reserved for this step.
#[op(tags(resource_requirements(GPU = 1)))]
fn train(ctx: &OpContext, rows: Vec<f64>) -> f64 {
    let gpu =
        visible_gpus().unwrap_or_else(|| "none visible (here GPU is a Dask resource label)".into());
    ctx.log().info(format!(
        "{} trains on {} rows; GPU: {gpu}",
        ctx.step_key(),
        rows.len()
    ));
    rows.iter().sum::<f64>() / rows.len() as f64
}

#[op]
fn best(scores: Vec<f64>) -> f64 {
    scores.into_iter().fold(f64::MIN, f64::max)
}

job! {
    /// Four trainings, each on a GPU, then the best score.
    fn gpu_job() {
        let rows = load();
        best([train(rows), train(rows), train(rows), train(rows)]);
    }
}

fn main() -> ExitCode {
    dagster_dask::main_with_defaults(gpu_job(), RUN_CONFIG)
}
