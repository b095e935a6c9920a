//! A 20-step chain on a real Dask cluster, next to the floor: a raw `distributed.Client`
//! submitting a chain of 20 trivial tasks to the same cluster, in the same run.
//!
//! `cargo bench -p benches --bench dask_chain` starts a loopback `dask scheduler` and two
//! workers (the test harness's [`Cluster`]), then times 5 runs of each and prints the medians
//! and their ratio. This binary is also the job binary: Dask workers run it in step mode.

use std::process::{Command, ExitCode};
use std::time::Instant;

use dagster_dask::config::RunConfig;
use dagster_dask::prelude::*;
use tests::dask::{Cluster, python};

const STEPS: usize = 20;
const REPS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> ExitCode {
    let job = tests::chain(STEPS);
    if std::env::args().nth(1).as_deref() == Some("__step") {
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
        python().display(),
        dir.path().display()
    );
    let config = RunConfig::from_yaml(&yaml, &job).expect("valid config");

    // Warm up once: workers import what they need and cache the binary in the page cache.
    let warm = Run::new(&job)
        .config(config.clone())
        .execute()
        .expect("runs");
    assert!(warm.success());

    let mut ours = Vec::new();
    let mut in_run = Vec::new();
    for _ in 0..REPS {
        let started = Instant::now();
        let result = Run::new(&job)
            .config(config.clone())
            .execute()
            .expect("runs");
        ours.push(started.elapsed().as_secs_f64());
        assert!(result.success());
        let first = result.step_events("zero").next().expect("events").timestamp;
        let last = result
            .step_events(&format!("inc_{}", STEPS - 1))
            .last()
            .expect("events")
            .timestamp;
        in_run.push(last - first);
    }

    let floor_script = format!(
        "import time, statistics\nfrom distributed import Client\nc = Client('{}')\n\
         def inc(x):\n    return x + 1\nts = []\nfor r in range({}):\n    t = time.perf_counter()\n    \
         f = c.submit(inc, 0, key=f'inc-0-{{r}}')\n    for i in range(1, {STEPS}):\n        \
         f = c.submit(inc, f, key=f'inc-{{i}}-{{r}}')\n    assert f.result() == {STEPS}\n    \
         ts.append(time.perf_counter() - t)\n    del f\nprint(statistics.median(ts[1:]))\nc.close()\n",
        cluster.address,
        REPS + 1
    );
    let out = Command::new(python())
        .args(["-c", &floor_script])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let floor: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number");

    let chain = median(in_run);
    let whole = median(ours);
    println!("dask_chain ({STEPS} steps, existing loopback cluster, median of {REPS}):");
    println!(
        "  raw distributed.Client chain:   {:7.1} ms  ({:.1} ms per task)",
        floor * 1e3,
        floor * 1e3 / STEPS as f64
    );
    println!("  dagster-dask chain, first step start to last step end:");
    println!(
        "                                  {:7.1} ms  ({:.1} ms per step)",
        chain * 1e3,
        chain * 1e3 / (STEPS - 1) as f64
    );
    println!("  dagster-dask whole run (bridge start, connect, submit, close):");
    println!("                                  {:7.1} ms", whole * 1e3);
    println!(
        "  ratio per step, ours / raw:     {:7.2}",
        (chain / (STEPS - 1) as f64) / (floor / STEPS as f64)
    );
    ExitCode::SUCCESS
}
