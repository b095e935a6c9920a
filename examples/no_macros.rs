//! A job built with the macro-free API only: typed ops, typed edges, config, tags, resource
//! requirements and a retry policy. Everything the `#[op]` and `job!` macros generate can be
//! written this way: `tests/tests/macros.rs` builds this job's macro twin and checks that
//! the two plans are equal.
//!
//! ```text
//! cargo run --example no_macros -- plan
//! cargo run --example no_macros -- run -c examples/no_macros.yaml
//! ```

use std::process::ExitCode;
use std::time::Duration;

use dagster_dask::prelude::*;
use serde::{Deserialize, Serialize};

/// Run config of the `scale` op (`ops.scale.config`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleConfig {
    /// Every reading is multiplied by it.
    pub factor: f64,
}

/// What `stats` computes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stats {
    /// How many readings.
    pub count: usize,
    /// Their mean.
    pub mean: f64,
    /// The largest.
    pub max: f64,
}

/// The job: load -> scale (config, retries) -> stats (GPU) -> report.
pub fn stats_job() -> Job {
    let load = OpDef::new("load", [], |ctx: &OpContext, (): ()| {
        ctx.log().info("loading readings");
        vec![3.0_f64, 1.5, 4.0, 1.0, 5.5, 9.0]
    })
    .description("Loads the readings.");

    let scale = OpDef::try_new(
        "scale",
        ["readings"],
        |ctx: &OpContext, (xs,): (Vec<f64>,)| {
            let cfg: ScaleConfig = ctx.config()?;
            Ok::<_, BoxError>(xs.iter().map(|x| x * cfg.factor).collect::<Vec<f64>>())
        },
    )
    .config::<ScaleConfig>()
    .retry_policy(
        RetryPolicy::new(2)
            .with_delay(Duration::from_millis(100))
            .with_backoff(Backoff::Exponential),
    );

    // Asks Dask for a GPU; the embedded executor runs it like any other op.
    let stats = OpDef::new("stats", ["readings"], |_ctx, (xs,): (Vec<f64>,)| Stats {
        count: xs.len(),
        mean: xs.iter().sum::<f64>() / xs.len().max(1) as f64,
        max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
    .resource("GPU", 1.0)
    .tag("team", "analytics");

    let report = OpDef::new("report", ["stats"], |_ctx, (s,): (Stats,)| {
        format!("{} readings, mean {:.2}, max {:.2}", s.count, s.mean, s.max)
    });

    let mut job = JobBuilder::new("stats");
    job.description("Scales readings and reports their statistics.");
    let readings = job.add(&load, ());
    let scaled = job.add(&scale, readings);
    let summary = job.add(&stats, scaled);
    job.add(&report, summary);
    job.build().expect("the stats graph is valid")
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    dagster_dask::main(stats_job())
}
