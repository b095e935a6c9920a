//! A dynamic fan-out of 1,000 mapping keys (`keys.map(work)`, then a collect) next to a
//! static fan-out of 1,000 steps (then a fan-in) of the same ops, on one existing loopback
//! Dask cluster of 2 workers, alternating, in the same run: what making steps at run time
//! costs over knowing them when the run starts.
//!
//! ```text
//! cargo bench -p benches --bench dask_dynamic
//! DYNAMIC_KEYS=100 cargo bench -p benches --bench dask_dynamic
//! ```
//!
//! This binary is also the job binary: Dask workers run it in step mode. Both parts are one
//! job; each run selects one (`Run::select`), and the step processes select the same.

use std::process::ExitCode;
use std::time::Instant;

use dagster_dask::config::RunConfig;
use dagster_dask::dynamic::Dynamic;
use dagster_dask::graph::{JobBuilder, Output};
use dagster_dask::op::{OpDef, dynamic_out};
use dagster_dask::prelude::*;
use tests::dask::Cluster;

const REPS: usize = 3;

fn keys() -> u64 {
    std::env::var("DYNAMIC_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

fn job(n: u64) -> Job {
    let fan_out = OpDef::multi("fan_out", [], dynamic_out("items"), move |_ctx, (): ()| {
        (0..n)
            .map(|i| (format!("k{i}"), i))
            .collect::<Dynamic<u64>>()
    });
    let start = OpDef::new("start", [], |_ctx, (): ()| 0_u64);
    let work = OpDef::new("work", ["x"], |_ctx, (x,): (u64,)| x + 1);
    let sum = OpDef::new("sum", ["xs"], |_ctx, (xs,): (Vec<u64>,)| {
        xs.iter().sum::<u64>()
    });
    let mut job = JobBuilder::new("dynamic_vs_static");
    let items = job.add(&fan_out, ());
    let mapped = job.map_as("mapped", &work, items);
    job.add_as("collected", &sum, mapped.collect());
    let zero = job.add(&start, ());
    let parts: Vec<Output<u64>> = (0..n)
        .map(|i| job.add_as(&format!("work_{i}"), &work, zero))
        .collect();
    job.add_as("fanned_in", &sum, parts);
    job.build().expect("a valid job")
}

/// Seconds of the whole run, and of its steps span (first start to last end).
fn timed(job: &Job, config: &RunConfig, selection: &str) -> (f64, f64) {
    let started = Instant::now();
    let result = Run::new(job)
        .config(config.clone())
        .select(selection)
        .execute()
        .expect("runs");
    let whole = started.elapsed().as_secs_f64();
    assert!(result.success(), "{selection}: {:?}", result.engine_error());
    let stamps: Vec<f64> = result
        .events()
        .iter()
        .filter(|e| e.step_key.is_some())
        .map(|e| e.timestamp)
        .collect();
    let span = stamps.iter().copied().fold(f64::MIN, f64::max)
        - stamps.iter().copied().fold(f64::MAX, f64::min);
    (whole, span)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> ExitCode {
    let n = keys();
    let job = job(n);
    if dagster_dask::cli::is_step_process() {
        return dagster_dask::main(job);
    }
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS; // `cargo test --benches` asks for the list of benchmarks
    }
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "execution: {{ config: {{ cluster: {{ existing: {{ address: '{}' }} }}, python: '{}' }} }}\n\
         resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}\n",
        cluster.address,
        tests::dask::python().display(),
        dir.path().display()
    );
    let config = RunConfig::from_yaml(&yaml, &job).expect("valid config");
    // (warm: the workers' step runners and the binary's page cache)
    timed(&job, &config, "start*");
    timed(&job, &config, "fan_out*");
    let (mut dynamic, mut fixed) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        dynamic.push(timed(&job, &config, "fan_out*"));
        fixed.push(timed(&job, &config, "start*"));
    }
    let report = |name: &str, runs: &[(f64, f64)]| {
        let whole = median(runs.iter().map(|r| r.0).collect());
        let span = median(runs.iter().map(|r| r.1).collect());
        println!(
            "  {name:<38} whole {:7.2} s   steps span {:7.2} s   {:5.2} ms per step",
            whole,
            span,
            span * 1e3 / (n + 2) as f64
        );
        span
    };
    println!(
        "dask_dynamic ({n} steps each, existing loopback cluster, 2 workers, median of {REPS}):"
    );
    let fixed_span = report(&format!("static fan-out of {n} + fan-in"), &fixed);
    let dynamic_span = report(&format!("dynamic map over {n} keys + collect"), &dynamic);
    println!(
        "  dynamic / static steps span: x{:.2}",
        dynamic_span / fixed_span
    );
    ExitCode::SUCCESS
}
