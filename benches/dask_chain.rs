//! A 20-step chain on a real Dask cluster, next to the floor (a raw `distributed.Client`
//! submitting a chain of 20 trivial tasks) and, when it is installed, the peer (Python
//! dagster-dask running the anchor's 20-op chain), all on the same cluster in the same run.
//!
//! ```text
//! cargo bench -p benches --bench dask_chain
//! DAGSTER_PEER_PYTHON=/path/to/venv/bin/python cargo bench -p benches --bench dask_chain
//! ```
//!
//! The peer needs a Python with `dagster`, `dagster-dask` and the pinned `distributed`
//! (`pip install dagster dagster-dask distributed==2026.8.0`), and the anchor's scripts
//! (`DAGSTER_ANCHOR_DIR`, default `../shared/anchor`). With a peer, the cluster's workers
//! run that Python, so that they can import dagster. This binary is also the job binary:
//! Dask workers run it in step mode.

use std::path::{Path, PathBuf};
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

/// The peer's Python and the anchor's scripts, when both are there.
fn peer() -> Option<(PathBuf, PathBuf)> {
    let python = PathBuf::from(std::env::var_os("DAGSTER_PEER_PYTHON")?);
    let anchor = std::env::var_os("DAGSTER_ANCHOR_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/anchor"),
        PathBuf::from,
    );
    let ok = Command::new(&python)
        .args(["-c", "import dagster, dagster_dask, distributed"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "DAGSTER_PEER_PYTHON has no dagster / dagster_dask / distributed"
    );
    assert!(
        anchor.join("run_job.py").is_file(),
        "no run_job.py in {}",
        anchor.display()
    );
    Some((python, anchor))
}

/// Ours: median of the first-step-start to last-step-end span, and of the whole run.
fn ours(job: &Job, config: &RunConfig) -> (f64, f64) {
    let warm = Run::new(job)
        .config(config.clone())
        .execute()
        .expect("runs");
    assert!(warm.success(), "warm-up run failed");
    let (mut span, mut whole) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let started = Instant::now();
        let result = Run::new(job)
            .config(config.clone())
            .execute()
            .expect("runs");
        whole.push(started.elapsed().as_secs_f64());
        assert!(result.success());
        let first = result.step_events("zero").next().expect("events").timestamp;
        let last_step = format!("inc_{}", STEPS - 1);
        let last = result
            .step_events(&last_step)
            .last()
            .expect("events")
            .timestamp;
        span.push(last - first);
    }
    (median(span), median(whole))
}

/// The floor: a raw `distributed.Client` chain of trivial tasks, median seconds.
fn floor(python: &Path, address: &str) -> f64 {
    let script = format!(
        "import time, statistics\nfrom distributed import Client\nc = Client('{address}')\n\
         def inc(x):\n    return x + 1\nts = []\nfor r in range({}):\n    t = time.perf_counter()\n    \
         f = c.submit(inc, 0, key=f'inc-0-{{r}}')\n    for i in range(1, {STEPS}):\n        \
         f = c.submit(inc, f, key=f'inc-{{i}}-{{r}}')\n    assert f.result() == {STEPS}\n    \
         ts.append(time.perf_counter() - t)\n    del f\nprint(statistics.median(ts[1:]))\nc.close()\n",
        REPS + 1
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}

/// The peer: the anchor's chain under Python dagster-dask; medians of its steps span and
/// of its `execute_job` time, warm cluster (one warm-up run first).
fn peer_chain(python: &Path, anchor: &Path, address: &str) -> (f64, f64) {
    let home = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        home.path().join("dagster.yaml"),
        "telemetry:\n  enabled: false\n",
    )
    .expect("write");
    let (mut span, mut exec) = (Vec::new(), Vec::new());
    for rep in 0..=REPS {
        let out = Command::new(python)
            .arg(anchor.join("run_job.py"))
            .args(["chain", "dask-existing"])
            .env("ANCHOR_SCHEDULER", address)
            .env("DAGSTER_HOME", home.path())
            .env("PYTHONPATH", anchor)
            .current_dir(anchor)
            .output()
            .expect("the peer runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ANCHOR_RESULT "))
            .unwrap_or_else(|| {
                panic!(
                    "no ANCHOR_RESULT:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let summary: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(summary["success"], true, "{summary}");
        if rep > 0 {
            span.push(summary["steps_span_s"].as_f64().expect("steps_span_s"));
            exec.push(summary["exec_s"].as_f64().expect("exec_s"));
        }
    }
    (median(span), median(exec))
}

fn main() -> ExitCode {
    let job = tests::chain(STEPS);
    if dagster_dask::cli::is_step_process() {
        return dagster_dask::main(job);
    }
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS; // `cargo test --benches` asks for the list of benchmarks
    }
    let peer = peer();
    let cluster_python = peer.as_ref().map_or_else(python, |(p, _)| p.clone());
    let cluster = match &peer {
        Some((p, anchor)) => {
            Cluster::start_with(p, &[("PYTHONPATH", anchor.to_str().expect("UTF-8 path"))])
        }
        None => Cluster::start(),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "execution: {{ config: {{ cluster: {{ existing: {{ address: '{}' }} }}, python: '{}' }} }}\n\
         resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}\n",
        cluster.address,
        cluster_python.display(),
        dir.path().display()
    );
    let config = RunConfig::from_yaml(&yaml, &job).expect("valid config");

    let floor = floor(&cluster_python, &cluster.address);
    let (span, whole) = ours(&job, &config);
    let per_task = floor * 1e3 / STEPS as f64;
    let per_step = span * 1e3 / (STEPS - 1) as f64;
    println!("dask_chain ({STEPS} steps, existing loopback cluster, 2 workers, median of {REPS}):");
    println!(
        "  raw distributed.Client chain       {:8.1} ms   {per_task:6.1} ms per task",
        floor * 1e3
    );
    println!(
        "  dagster-dask (Rust), steps span    {:8.1} ms   {per_step:6.1} ms per step   x{:.2} the floor",
        span * 1e3,
        per_step / per_task
    );
    println!(
        "  dagster-dask (Rust), whole run     {:8.1} ms   (bridge start, connect, submit, close)",
        whole * 1e3
    );
    if let Some((python, anchor)) = &peer {
        let (peer_span, peer_exec) = peer_chain(python, anchor, &cluster.address);
        let peer_step = peer_span * 1e3 / (STEPS - 1) as f64;
        println!(
            "  Python dagster-dask, steps span    {:8.1} ms   {peer_step:6.1} ms per step   x{:.2} the floor",
            peer_span * 1e3,
            peer_step / per_task
        );
        println!(
            "  Python dagster-dask, execute_job   {:8.1} ms",
            peer_exec * 1e3
        );
        println!(
            "  per step, Python / Rust:           x{:.1}",
            peer_step / per_step
        );
    } else {
        println!(
            "  (set DAGSTER_PEER_PYTHON to a Python with dagster and dagster-dask to add the peer)"
        );
    }
    ExitCode::SUCCESS
}
