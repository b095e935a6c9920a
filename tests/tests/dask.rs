//! The Dask executor against real `distributed`: a `LocalCluster` started by the run, and a
//! real `dask scheduler` with two `dask worker` processes (one with GPU=1) on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dagster_dask::events::{ErrorKind, Event, EventKind, read_event_log};
use tests::dask::{Cluster, python};

/// Dask tests share two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A test's own cluster and scratch directory, under the serial lock (dropped last, after the
/// cluster has stopped).
fn with_cluster() -> (
    std::sync::MutexGuard<'static, ()>,
    Cluster,
    tempfile::TempDir,
) {
    let serial = serial();
    (serial, Cluster::start(), tempfile::tempdir().unwrap())
}

fn bin(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "diamond" => env!("CARGO_BIN_EXE_diamond"),
        "failing" => env!("CARGO_BIN_EXE_failing"),
        "flaky" => env!("CARGO_BIN_EXE_flaky"),
        "gpu" => env!("CARGO_BIN_EXE_gpu"),
        "sleepy" => env!("CARGO_BIN_EXE_sleepy"),
        "chain20" => env!("CARGO_BIN_EXE_chain20"),
        "fan50" => env!("CARGO_BIN_EXE_fan50"),
        "hostile" => env!("CARGO_BIN_EXE_hostile"),
        "background" => env!("CARGO_BIN_EXE_background"),
        "chatty" => env!("CARGO_BIN_EXE_chatty"),
        "fan10000" => env!("CARGO_BIN_EXE_fan10000"),
        "spread" => env!("CARGO_BIN_EXE_spread"),
        "stuck" => env!("CARGO_BIN_EXE_stuck"),
        "numbers_split" => env!("CARGO_BIN_EXE_numbers_split"),
        "etl" => env!("CARGO_BIN_EXE_etl"),
        "fragile" => env!("CARGO_BIN_EXE_fragile"),
        "mapped" => env!("CARGO_BIN_EXE_mapped"),
        "traced" => env!("CARGO_BIN_EXE_traced"),
        "scaled" => env!("CARGO_BIN_EXE_scaled"),
        other => panic!("no job binary {other}"),
    })
}

/// A finished run of a job binary.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    events: Vec<Event>,
}

impl Ran {
    /// The steps that started, in order.
    fn started(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::StepStart))
            .filter_map(|e| e.step_key.as_deref())
            .collect()
    }

    fn step_events<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events
            .iter()
            .filter(move |e| e.step_key.as_deref() == Some(step))
    }

    /// How many inputs `step` loaded: one per upstream value, fan-ins included.
    fn loaded_inputs(&self, step: &str) -> usize {
        self.step_events(step)
            .filter(|e| matches!(e.kind, EventKind::LoadedInput { .. }))
            .count()
    }

    fn kinds(&self, step: &str) -> Vec<&'static str> {
        self.step_events(step).map(|e| e.kind.type_name()).collect()
    }

    fn workers(&self, step: &str) -> Vec<String> {
        let mut w: Vec<String> = self
            .step_events(step)
            .filter_map(|e| e.worker.clone())
            .collect();
        w.dedup();
        w
    }
}

fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

fn storage(dir: &Path) -> String {
    format!(
        "resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}\n",
        dir.join("storage").display()
    )
}

/// A run config for a local cluster with these kwargs (YAML flow mapping, or empty).
fn local(dir: &Path, kwargs: &str) -> PathBuf {
    let yaml = format!(
        "execution: {{ config: {{ cluster: {{ local: {kwargs} }} }} }}\n{}",
        storage(dir)
    );
    write(dir, &format!("local-{}.yaml", fastrand_name()), &yaml)
}

fn existing(cluster: &Cluster, dir: &Path, extra: &str) -> PathBuf {
    existing_with(cluster, dir, "", extra)
}

/// [`existing`] with more `execution.config` keys (`key: value, ...`).
fn existing_with(cluster: &Cluster, dir: &Path, execution: &str, extra: &str) -> PathBuf {
    let yaml = format!(
        "execution: {{ config: {{ cluster: {{ existing: {{ address: '{}' }} }}, {execution} }} }}\n{}{extra}",
        cluster.address,
        storage(dir)
    );
    write(dir, &format!("existing-{}.yaml", fastrand_name()), &yaml)
}

fn fastrand_name() -> String {
    dagster_dask::exec::new_run_id()[..8].to_owned()
}

fn command(job: &str, configs: &[&Path], run_id: &str) -> Command {
    let mut cmd = Command::new(bin(job));
    cmd.arg("run").arg("--run-id").arg(run_id);
    for c in configs {
        cmd.arg("-c").arg(c);
    }
    cmd.env(dagster_dask::exec::PYTHON_ENV, python());
    cmd
}

/// Processes of ours still running: the run's step processes (their argv names the run) and
/// any Dask bridge (Dask tests run one at a time, so a bridge now is this run's).
fn left_running(run_id: &str) -> Vec<String> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .is_ok_and(|s| s[s.rfind(')').unwrap_or(0)..].starts_with(") Z"));
        if !zombie && (cmdline.contains(run_id) || cmdline.contains("dagster-dask bridge: drives"))
        {
            left.push(format!(
                "{:?}: {}",
                entry.file_name(),
                &cmdline[..cmdline.len().min(120)]
            ));
        }
    }
    left
}

/// Asserts that nothing of the run is left running, a few seconds after its driver exited.
fn assert_nothing_left(run_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = left_running(run_id);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left running after the run: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finish(out: Output, dir: &Path, run_id: &str) -> Ran {
    assert_nothing_left(run_id);
    let log =
        std::fs::canonicalize(dir.join("storage")).map(|s| s.join(run_id).join("events.jsonl"));
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        events: log
            .ok()
            .and_then(|p| read_event_log(&p).ok())
            .unwrap_or_default(),
    }
}

fn run(job: &str, configs: &[&Path], dir: &Path) -> Ran {
    let run_id = dagster_dask::exec::new_run_id();
    let out = command(job, configs, &run_id)
        .output()
        .expect("the job binary starts");
    finish(out, dir, &run_id)
}

fn assert_success(ran: &Ran, what: &str) {
    assert_eq!(ran.code, Some(0), "{what}:\n{}\n{}", ran.stdout, ran.stderr);
}

#[test]
fn local_cluster_runs_the_dagster_docs_yaml() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let docs =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/docs_yaml/dask_hello_world.yaml");
    let rest = write(
        dir.path(),
        "rest.yaml",
        &format!(
            "{}ops: {{ scale: {{ config: {{ factor: 2 }} }} }}\n",
            storage(dir.path())
        ),
    );
    let ran = run("diamond", &[&docs, &rest], dir.path());
    assert_success(&ran, "diamond on a local cluster");
    assert!(
        ran.stdout.contains("describe = \"3 parts, total 40\""),
        "{}",
        ran.stdout
    );
    assert!(ran.stderr.contains("dashboard: http://"), "{}", ran.stderr);
    assert!(ran.events.iter().any(|e| matches!(&e.kind, EventKind::RunStart { executor, .. } if executor == "dask (local cluster)")));
    // Events came from step processes on workers, tagged with the worker.
    let starts: Vec<&Event> = ran
        .events
        .iter()
        .filter(|e| e.kind == EventKind::StepStart)
        .collect();
    assert_eq!(starts.len(), 6);
    assert!(
        starts
            .iter()
            .all(|e| e.worker.is_some() && e.pid != std::process::id())
    );
}

#[test]
fn existing_cluster() {
    let (_serial, cluster, dir) = with_cluster();
    let cfg = existing(&cluster, dir.path(), "");
    let scale = existing(
        &cluster,
        dir.path(),
        "ops: { scale: { config: { factor: 2 } } }\n",
    );
    let d = dir.path();

    // The diamond: fan-out, config, fan-in.
    let ran = run("diamond", &[&scale], d);
    assert_success(&ran, "diamond");
    assert!(
        ran.stdout.contains("describe = \"3 parts, total 40\""),
        "{}",
        ran.stdout
    );
    assert_eq!(ran.loaded_inputs("total"), 3);

    // A 20-step chain.
    let ran = run("chain20", &[&cfg], d);
    assert_success(&ran, "chain20");
    assert!(ran.stdout.contains("inc_19 = 19"), "{}", ran.stdout);
    let first = ran.step_events("zero").next().unwrap().timestamp;
    let last = ran.step_events("inc_19").last().unwrap().timestamp;
    eprintln!(
        "chain20 on the existing cluster: {:.1} ms per step",
        (last - first) * 1e3 / 19.0
    );

    // A 50-way fan-out and fan-in: every value arrives.
    let ran = run("fan50", &[&cfg], d);
    assert_success(&ran, "fan50");
    assert!(ran.stdout.contains("sum = 1275"), "{}", ran.stdout);
    assert_eq!(ran.loaded_inputs("sum"), 50);

    // Every GPU-tagged step runs on the GPU worker.
    let ran = run("gpu", &[&cfg], d);
    assert_success(&ran, "gpu");
    assert!(ran.stdout.contains("report = 126"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("workers: "),
        "placement is summarized: {}",
        ran.stdout
    );
    for i in 1..=3 {
        assert_eq!(
            ran.workers(&format!("train_{i}")),
            ["gpu-worker"],
            "train_{i}"
        );
    }
    // The step process's own stdout and stderr reach the driver, tagged with the worker.
    let printed = |ran: &Ran, wanted: &str| -> Vec<String> {
        ran.step_events("prepare")
            .filter_map(|e| match &e.kind {
                EventKind::StepOutputLine { stream, line }
                    if stream == wanted && e.worker.is_some() =>
                {
                    Some(line.clone())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        printed(&ran, "stdout"),
        [format!("prepare runs {}", bin("gpu").display())]
    );
    assert_eq!(printed(&ran, "stderr"), ["prepare says this on stderr"]);

    // Shipping the binary: workers run a copy from their local directory.
    let ship = existing_with(&cluster, d, "ship_binary: always", "");
    let ran = run("gpu", &[&ship], d);
    assert_success(&ran, "gpu with ship_binary: always");
    assert!(ran.stdout.contains("report = 126"), "{}", ran.stdout);
    assert!(ran.events.iter().any(|e| matches!(&e.kind,
        EventKind::EngineEvent { message } if message.starts_with("shipped the job binary"))));
    let lines = printed(&ran, "stdout");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("/dagster-dask-bin/") && !lines[0].ends_with("/gpu"),
        "{lines:?}"
    );

    // A failing job: downstream skipped and never run, the independent branch done.
    let ran = run("failing", &[&cfg], d);
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    let boom_worker = ran.workers("boom");
    assert_eq!(boom_worker.len(), 1, "the failure names its worker");
    let failed_line = format!(
        "boom failed on worker {}: ANCHOR-BOOM: the op failed on purpose\n    caused by: disk on fire",
        boom_worker[0]
    );
    assert!(ran.stdout.contains(&failed_line), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("2 succeeded, 1 failed, 2 skipped, 0 not run"),
        "{}",
        ran.stdout
    );
    assert_eq!(ran.kinds("after_boom"), ["STEP_SKIPPED"]);
    assert_eq!(ran.kinds("end"), ["STEP_SKIPPED"]);
    assert!(ran.kinds("side").contains(&"STEP_SUCCESS"));
    assert!(!ran.stderr.contains("AFTER-BOOM-RAN") && !ran.stdout.contains("AFTER-BOOM-RAN"));

    // Retries by the op's policy, driven by the driver.
    let ran = run("flaky", &[&cfg], d);
    assert_success(&ran, "flaky");
    assert!(ran.stdout.contains("after_flaky = 6"), "{}", ran.stdout);
    let kinds = ran.kinds("flaky");
    assert_eq!(
        kinds.iter().filter(|k| **k == "STEP_UP_FOR_RETRY").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "STEP_RESTARTED").count(),
        2,
        "{kinds:?}"
    );

    // Op logs reach the driver's event log while the step is still running.
    let run_id = dagster_dask::exec::new_run_id();
    let nap = existing(&cluster, d, "ops: { nap: { config: { seconds: 4 } } }\n");
    let mut child = command("sleepy", &[&nap], &run_id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_live = false;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        let log = d.join("storage").join(&run_id).join("events.jsonl");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("nap started") {
            // Live: the log is in the event log while the op still sleeps.
            seen_live = !text.contains("nap over") && !text.contains("STEP_SUCCESS");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    assert!(seen_live, "the op's log did not arrive while it ran");
    assert!(status.success());

    // Two concurrent runs of one job on one cluster do not collide.
    let (a, b) = (
        dagster_dask::exec::new_run_id(),
        dagster_dask::exec::new_run_id(),
    );
    let child_a = command("fan50", &[&cfg], &a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child_b = command("fan50", &[&cfg], &b)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for (child, id) in [(child_a, a), (child_b, b)] {
        let ran = finish(child.wait_with_output().unwrap(), d, &id);
        assert_success(&ran, "concurrent fan50");
        assert!(ran.stdout.contains("sum = 1275"), "{}", ran.stdout);
    }

    // A worker lost mid-step: Dask reschedules the task on the other worker, the step
    // process of the lost worker dies with it, and the run still succeeds.
    let (child, run_id, first_pid) = start_nap(&cluster, d, 8, "lost");
    let worker_pid = parent_of(first_pid);
    let killed = Instant::now();
    Command::new("kill")
        .args(["-KILL", &worker_pid.to_string()])
        .status()
        .unwrap();
    // Gone long before its 8 s nap would have ended: it died with its worker.
    assert_gone(first_pid);
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "the orphan lived {:?}",
        killed.elapsed()
    );
    let ran = finish(child.wait_with_output().unwrap(), d, &run_id);
    assert_success(&ran, "sleepy with a lost worker");
    // The step ran again, in another process. (Whether the lost worker's own events got
    // out before it died is a race, so only the new attempt's are certain.)
    let second = ran
        .step_events("nap")
        .filter(|e| e.kind == EventKind::StepStart)
        .map(|e| e.pid)
        .last()
        .expect("a STEP_START for the rescheduled nap");
    assert_ne!(second, first_pid);

    // Ctrl-C (SIGINT) or SIGTERM during a long step: canceled, no step process left behind.
    for signal in ["-INT", "-TERM"] {
        let (child, run_id, step_pid) = start_nap(&cluster, d, 120, signal);
        let interrupted = Instant::now();
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let ran = finish(child.wait_with_output().unwrap(), d, &run_id);
        assert!(
            interrupted.elapsed() < Duration::from_secs(30),
            "cancel took {:?}",
            interrupted.elapsed()
        );
        assert_eq!(
            ran.code,
            Some(1),
            "{signal}: {}\n{}",
            ran.stdout,
            ran.stderr
        );
        assert!(
            ran.events
                .iter()
                .any(|e| matches!(e.kind, EventKind::RunCanceled { .. })),
            "{signal}: {}\n{}",
            ran.stdout,
            ran.stderr
        );
        // The started step has its one end: a failure, as interrupted.
        let ends: Vec<_> = ran
            .step_events("nap")
            .filter_map(|e| match &e.kind {
                EventKind::StepFailure { error, .. } => Some(error.kind),
                EventKind::StepSuccess { .. } => Some(ErrorKind::Op),
                _ => None,
            })
            .collect();
        assert_eq!(ends, [ErrorKind::Interrupted], "{signal}: {}", ran.stdout);
        assert!(
            ran.stdout.contains("RUN_CANCELED job `sleepy`"),
            "{}",
            ran.stdout
        );
        assert_gone(step_pid);
    }
}

/// Starts the `sleepy` job on `cluster` with a nap of `seconds`; returns the driver
/// process, its run id and, once the nap began, the step process's id.
fn start_nap(
    cluster: &Cluster,
    d: &Path,
    seconds: u32,
    name: &str,
) -> (std::process::Child, String, u32) {
    start_nap_with(cluster, d, seconds, name, "")
}

/// [`start_nap`] with more `execution.config` keys.
fn start_nap_with(
    cluster: &Cluster,
    d: &Path,
    seconds: u32,
    name: &str,
    execution: &str,
) -> (std::process::Child, String, u32) {
    let run_id = dagster_dask::exec::new_run_id();
    let pid_file = d.join(format!("{name}.pid"));
    let cfg = existing_with(
        cluster,
        d,
        execution,
        &format!(
            "ops: {{ nap: {{ config: {{ seconds: {seconds}, pid_file: '{}' }} }} }}\n",
            pid_file.display()
        ),
    );
    let child = command("sleepy", &[&cfg], &run_id)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let step_pid = wait_for_pid(&pid_file);
    // The step runs; a fault from here on must find the driver knowing it (its start travels
    // through the scheduler, a little after the op itself began).
    wait_for_start(d, &run_id, "nap");
    (child, run_id, step_pid)
}

/// Waits until the run's event log has `step`'s STEP_START.
fn wait_for_start(d: &Path, run_id: &str, step: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log =
            std::fs::canonicalize(d.join("storage")).map(|s| s.join(run_id).join("events.jsonl"));
        let started = log
            .ok()
            .and_then(|p| read_event_log(&p).ok())
            .is_some_and(|events| {
                events
                    .iter()
                    .any(|e| e.kind == EventKind::StepStart && e.step_key.as_deref() == Some(step))
            });
        if started {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the driver never saw {step} start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a step to write its process id.
fn wait_for_pid(pid_file: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The parent process id of `pid`, from `/proc`.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name in parentheses may hold spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[1].parse().unwrap()
}

/// Asserts that process `pid` ends within a few seconds.
fn assert_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie has exited; only its entry is left until its parent reaps it.
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s[s.rfind(')').unwrap_or(0)..].starts_with(") Z"));
        if zombie {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} is still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_worker_is_a_step_failure_the_retry_policy_retries() {
    let _serial = serial();
    // With no allowed failures, one lost worker makes the task a KilledWorker at once.
    let cluster = Cluster::start_with(
        &python(),
        &[("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", "0")],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (child, run_id, step_pid) = start_nap(&cluster, d, 4, "killed");
    Command::new("kill")
        .args(["-KILL", &parent_of(step_pid).to_string()])
        .status()
        .unwrap();
    let ran = finish(child.wait_with_output().unwrap(), d, &run_id);
    assert_success(&ran, "sleepy after a KilledWorker");
    let retried = ran
        .step_events("nap")
        .find_map(|e| match &e.kind {
            EventKind::StepUpForRetry {
                attempt: 1, error, ..
            } => Some(error.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no retry of nap: {:?}", ran.kinds("nap")));
    assert!(
        retried.contains("the worker running step `nap` died"),
        "{retried}"
    );
    assert!(retried.contains("KilledWorker"), "{retried}");
    assert!(
        ran.step_events("nap")
            .any(|e| e.kind == EventKind::StepRestarted { attempt: 2 })
    );
    assert!(ran.stdout.contains("after_nap = 8"), "{}", ran.stdout);
}

/// Runs `job` on a local cluster of `n_workers` plain workers with a 2 s
/// `no_worker_timeout`; the run must fail, well within the harness's patience.
fn run_unplaceable(job: &str, n_workers: usize, dir: &Path) -> Ran {
    let cfg = write(
        dir,
        &format!("workers{n_workers}.yaml"),
        &format!(
            "execution: {{ config: {{ cluster: {{ local: {{ n_workers: {n_workers} }} }}, no_worker_timeout: 2 }} }}\n{}",
            storage(dir)
        ),
    );
    let started = Instant::now();
    let ran = run(job, &[&cfg], dir);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    ran
}

#[test]
fn no_worker_with_the_resource_fails_within_the_timeout() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ran = run_unplaceable("gpu", 1, dir.path());
    assert!(
        ran.stdout.contains(
            "train_1 failed: step `train_1` needs {\"GPU\":1}: no worker offers the resources"
        ),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("workers and their resources: {\"0\": {}}"),
        "{}",
        ran.stdout
    );
    assert_eq!(ran.kinds("report"), ["STEP_SKIPPED"]);
    assert!(ran.kinds("cpu_side").contains(&"STEP_SUCCESS"));

    // A cluster with no worker at all: the first step fails after the timeout, the rest
    // is skipped. Dask alone would wait forever.
    let ran = run_unplaceable("flaky", 0, dir.path());
    assert!(
        ran.stdout.contains(
            "flaky failed: step `flaky` found no worker: the cluster has no worker after waiting 2 s"
        ),
        "{}",
        ran.stdout
    );
    assert_eq!(ran.kinds("after_flaky"), ["STEP_SKIPPED"]);
}

/// The run started (the executor failed after `RUN_START`): exit 1, and the summary says why.
fn assert_started_and_failed(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("RUN_START"), "{stderr}");
    assert!(stdout.contains("RUN_FAILURE job `flaky`"), "{stdout}");
    assert!(
        stdout.contains("the executor could not go on: Dask executor: "),
        "{stdout}"
    );
}

#[test]
fn missing_python_or_distributed_is_one_clear_line() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = local(dir.path(), "");
    let out = command("flaky", &[&cfg], "r1")
        .env(dagster_dask::exec::PYTHON_ENV, "/nonexistent/python3")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_started_and_failed(&out);
    assert!(
        stderr.contains("cannot start Python `/nonexistent/python3` for the Dask executor"),
        "{stderr}"
    );
    assert!(stderr.contains("distributed==2026.8.0"), "{stderr}");

    // A real Python without `distributed`: a bare venv.
    let bare = dir.path().join("bare");
    assert!(
        Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&bare)
            .status()
            .unwrap()
            .success()
    );
    let py = bare.join("bin/python");
    let out = command("flaky", &[&cfg], "r2")
        .env(dagster_dask::exec::PYTHON_ENV, &py)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_started_and_failed(&out);
    assert!(
        stderr.contains(&format!("Python `{}` cannot import `distributed`: install it with `{} -m pip install 'distributed==2026.8.0'`", py.display(), py.display())),
        "{stderr}"
    );

    // A bad LocalCluster keyword argument: the error shows what was passed, and where from.
    let badkw = write(
        dir.path(),
        "badkw.yaml",
        &format!(
            "execution: {{ config: {{ cluster: {{ local: {{ n_workers: two }} }} }} }}\n{}",
            storage(dir.path())
        ),
    );
    let out = command("flaky", &[&badkw], "r4").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_started_and_failed(&out);
    assert!(
        stderr.contains(
            "cannot start a local cluster with `execution.config.cluster.local` = {\"n_workers\":\"two\"}: TypeError"
        ),
        "{stderr}"
    );

    // An unreachable scheduler: a clear error within the connect timeout, naming it.
    let unreachable = write(
        dir.path(),
        "unreachable.yaml",
        &format!(
            "execution: {{ config: {{ cluster: {{ existing: {{ address: 'tcp://127.0.0.1:9' }} }} }} }}\n{}",
            storage(dir.path())
        ),
    );
    let started = Instant::now();
    let out = command("flaky", &[&unreachable], "r3").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_started_and_failed(&out);
    assert!(
        stderr.contains("cannot connect to the scheduler at tcp://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn step_processes_cannot_forge_events_and_must_store_their_output() {
    let (_serial, cluster, dir) = with_cluster();
    let cfg = existing(&cluster, dir.path(), "");
    let ran = run("hostile", &[&cfg], dir.path());
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);

    // Forged lines on stdout and stderr are output lines of the step, nothing more.
    assert_eq!(
        ran.kinds("forger")
            .into_iter()
            .filter(|k| *k != "STEP_OUTPUT_LINE")
            .collect::<Vec<_>>(),
        ["STEP_START", "STEP_FAILURE"]
    );
    for stream in ["stdout", "stderr"] {
        let forged = ran
            .step_events("forger")
            .filter(
                |e| matches!(&e.kind, EventKind::StepOutputLine { stream: s, .. } if s == stream),
            )
            .count();
        assert_eq!(forged, 5, "{stream}");
    }
    let failure = ran.step_events("forger").find_map(|e| match &e.kind {
        EventKind::StepFailure { error, .. } => Some(error.message.clone()),
        _ => None,
    });
    assert_eq!(failure.as_deref(), Some(tests::FORGER_ERROR));
    let run_ends: Vec<_> = ran
        .events
        .iter()
        .filter(|e| e.step_key.is_none() && e.kind.type_name().starts_with("RUN_"))
        .map(|e| e.kind.type_name())
        .collect();
    assert_eq!(run_ends, ["RUN_START", "RUN_FAILURE"]);

    // A line without a newline is still a line, and the step's own end still arrives.
    assert!(
        ran.kinds("partial").contains(&"STEP_SUCCESS"),
        "{:?}",
        ran.kinds("partial")
    );
    assert!(ran.step_events("partial").any(|e| matches!(&e.kind,
        EventKind::StepOutputLine { line, .. } if line == "no newline at the end")));

    // Exit 0 without storing the output is a failure of that step, not of the next one.
    let failure = ran.step_events("quitter").find_map(|e| match &e.kind {
        EventKind::StepFailure { error, .. } => Some(error.to_string()),
        _ => None,
    });
    let failure = failure.expect("quitter failed");
    assert!(
        failure.contains("exited without storing output `result`"),
        "{failure}"
    );
    assert_eq!(ran.kinds("after_quitter"), ["STEP_SKIPPED"]);
}

#[test]
fn a_one_mib_run_config_reaches_the_steps_and_stays_out_of_argv() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let marker = format!("SECRET-{}", fastrand_name());
    let padding = format!("{marker}{}", "x".repeat(1 << 20));
    let run_id = dagster_dask::exec::new_run_id();
    let pid_file = d.join("big.pid");
    let cfg = existing(
        &cluster,
        d,
        &format!(
            "ops: {{ nap: {{ config: {{ seconds: 2, pid_file: '{}', padding: '{padding}' }} }} }}\n",
            pid_file.display()
        ),
    );
    assert!(std::fs::metadata(&cfg).unwrap().len() > 1 << 20);
    let child = command("sleepy", &[&cfg], &run_id)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let step_pid = wait_for_pid(&pid_file);
    // While the step runs: no process (driver, bridge, scheduler, workers, step) shows it.
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            seen += 1;
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&marker),
                "{} shows the run config in its argv",
                entry.path().display()
            );
        }
    }
    assert!(seen > 5, "only {seen} processes seen");
    assert!(std::path::Path::new(&format!("/proc/{step_pid}/cmdline")).exists());
    let ran = finish(child.wait_with_output().unwrap(), d, &run_id);
    assert_success(&ran, "sleepy with a 1 MiB run config");
    assert!(ran.stdout.contains("after_nap = 4"), "{}", ran.stdout);
}

#[test]
fn ctrl_c_while_a_local_cluster_starts_cancels_the_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = local(dir.path(), "{ n_workers: 1 }");
    let run_id = dagster_dask::exec::new_run_id();
    let child = command("flaky", &[&cfg], &run_id)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // RUN_START is in the log once the run's handlers are in place.
    let log = dir
        .path()
        .join("storage")
        .join(&run_id)
        .join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("RUN_START")) {
        assert!(Instant::now() < deadline, "no RUN_START");
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let ran = finish(child.wait_with_output().unwrap(), dir.path(), &run_id);
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("RUN_CANCELED job `flaky`"),
        "{}",
        ran.stdout
    );
    assert_eq!(
        ran.events.last().map(|e| e.kind.type_name()),
        Some("RUN_CANCELED")
    );
}

#[test]
fn losing_the_bridge_mid_run_fails_the_run_with_exit_1() {
    let (_serial, cluster, dir) = with_cluster();
    let (child, run_id, _step_pid) = start_nap(&cluster, dir.path(), 60, "bridge");
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let bridge = children
        .split_whitespace()
        .next()
        .expect("the driver's child: the bridge");
    Command::new("kill")
        .args(["-KILL", bridge])
        .status()
        .unwrap();
    let ran = finish(child.wait_with_output().unwrap(), dir.path(), &run_id);
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("RUN_FAILURE job `sleepy`"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("the executor could not go on: Dask executor: the Dask bridge exited"),
        "{}",
        ran.stdout
    );
    assert_eq!(
        ran.events.last().map(|e| e.kind.type_name()),
        Some("RUN_FAILURE")
    );
}

/// Waits for a run's driver and checks that the run ended as a failure, within `bound`.
fn assert_ends_failed(child: std::process::Child, d: &Path, run_id: &str, bound: Duration) -> Ran {
    let started = Instant::now();
    let ran = finish(child.wait_with_output().unwrap(), d, run_id);
    eprintln!("the run ended {:?} after the fault", started.elapsed());
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(
        ran.events.last().map(|e| e.kind.type_name()),
        Some("RUN_FAILURE"),
        "{}",
        ran.stdout
    );
    ran
}

#[test]
fn killing_the_scheduler_ends_the_run() {
    let (_serial, mut cluster, dir) = with_cluster();
    let d = dir.path();
    let (child, run_id, step_pid) =
        start_nap_with(&cluster, d, 120, "scheduler", "cluster_timeout: 5");
    cluster.kill_scheduler();
    let ran = assert_ends_failed(child, d, &run_id, Duration::from_secs(60));
    assert!(
        ran.kinds("nap").contains(&"STEP_FAILURE"),
        "{:?}",
        ran.kinds("nap")
    );
    assert_eq!(ran.kinds("after_nap"), ["STEP_SKIPPED"]);
    assert!(
        ran.stdout.contains("RUN_FAILURE job `sleepy`"),
        "{}",
        ran.stdout
    );
    drop(cluster);
    assert_gone(step_pid);
}

#[test]
fn a_restart_by_another_client_is_a_step_failure_the_retry_policy_retries() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    // `nap` may be retried once.
    let (child, run_id, _) = start_nap(&cluster, d, 4, "restart");
    assert!(cluster.python(
        "from distributed import Client\nClient('ADDRESS', timeout=10).restart(timeout=60)"
    ));
    let ran = finish(child.wait_with_output().unwrap(), d, &run_id);
    assert_success(&ran, "sleepy after a restart");
    let retried = ran.step_events("nap").find_map(|e| match &e.kind {
        EventKind::StepUpForRetry { error, .. } => Some(error.message.clone()),
        _ => None,
    });
    let retried = retried.expect("the restart cancelled the nap, and it was retried");
    assert!(
        retried.contains("was cancelled on the cluster, not by this run"),
        "{retried}"
    );
    assert!(ran.stdout.contains("after_nap = 8"), "{}", ran.stdout);
}

#[test]
fn a_frozen_bridge_ends_the_run_after_the_cluster_timeout() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let (child, run_id, _) = start_nap_with(&cluster, d, 120, "frozen", "cluster_timeout: 3");
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()));
    let bridge: u32 = children
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the driver's child: the bridge");
    Command::new("kill")
        .args(["-STOP", &bridge.to_string()])
        .status()
        .unwrap();
    let ran = assert_ends_failed(child, d, &run_id, Duration::from_secs(30));
    assert!(
        ran.stdout.contains("the Dask bridge sent nothing for"),
        "{}",
        ran.stdout
    );
    assert_gone(bridge);
}

#[test]
fn a_job_binary_removed_as_the_run_starts_ends_the_run() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let copy = d.join("flaky-copy");
    std::fs::copy(bin("flaky"), &copy).unwrap();
    let cfg = existing(&cluster, d, "");
    let run_id = dagster_dask::exec::new_run_id();
    let child = Command::new(&copy)
        .args(["run", "--run-id", &run_id, "-c"])
        .arg(&cfg)
        .env(dagster_dask::exec::PYTHON_ENV, python())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::remove_file(&copy).unwrap();
    assert_ends_failed(child, d, &run_id, Duration::from_secs(60));
}

#[test]
fn a_step_ends_when_its_process_ends_and_takes_its_children_along() {
    let (_serial, cluster, dir) = with_cluster();
    let cfg = existing(&cluster, dir.path(), "");
    let started = Instant::now();
    let ran = run("background", &[&cfg], dir.path());
    assert_success(&ran, "a step that leaves a child");
    // Not the child's 60 s.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let pid: u32 = ran
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("spawner = "))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no spawner result in {}", ran.stdout));
    assert_gone(pid);
}

#[test]
fn a_port_that_is_not_a_dask_scheduler_is_named_within_the_connect_timeout() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // One port accepts and stays silent; the other answers like a web server.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addresses = [silent.local_addr().unwrap(), web.local_addr().unwrap()];
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    std::thread::spawn(move || {
        use std::io::Write as _;
        let mut held = Vec::new();
        for mut conn in web.incoming().flatten() {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            let _ = conn.write_all(&[0xff; 64]);
            held.push(conn);
        }
    });
    for (address, expected) in addresses.iter().zip([
        "no answer from tcp://",
        "does not answer as a Dask scheduler",
    ]) {
        let cfg = write(
            dir.path(),
            &format!("port-{}.yaml", address.port()),
            &format!(
                "execution: {{ config: {{ cluster: {{ existing: {{ address: 'tcp://{address}' }} }} }} }}\n{}",
                storage(dir.path())
            ),
        );
        let started = Instant::now();
        let ran = run("flaky", &[&cfg], dir.path());
        assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
        assert!(ran.stdout.contains(expected), "{expected}: {}", ran.stdout);
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{address}: took {:?}",
            started.elapsed()
        );
    }
}

/// The output lines of a run's event log, streamed (a million events would not fit a test's
/// memory comfortably): how many, the first and the last.
fn output_lines(dir: &Path, run_id: &str) -> (usize, String, String) {
    use std::io::BufRead as _;
    let path = std::fs::canonicalize(dir.join("storage"))
        .unwrap()
        .join(run_id)
        .join("events.jsonl");
    let (mut count, mut first, mut last) = (0, String::new(), String::new());
    for line in std::io::BufReader::new(std::fs::File::open(path).unwrap()).lines() {
        let event: Event = serde_json::from_str(&line.unwrap()).unwrap();
        if let EventKind::StepOutputLine { stream, line } = event.kind {
            assert_eq!(stream, "stdout");
            count += 1;
            if count == 1 {
                first = line.clone();
            }
            last = line;
        }
    }
    (count, first, last)
}

#[test]
fn a_million_lines_arrive_and_the_scheduler_keeps_nothing_of_the_run() {
    let (_serial, cluster, dir) = with_cluster();
    let lines = 1_000_000;
    let cfg = existing(
        &cluster,
        dir.path(),
        &format!("ops: {{ chatter: {{ config: {{ lines: {lines} }} }} }}\n"),
    );
    // Events held in the scheduler's topics, its tasks, subscriptions, and the run's topics.
    let held = |run_id: &str| {
        cluster.on_scheduler(&format!(
            "(sum(len(t.events) for t in dask_scheduler._broker._topics.values()), \
             len(dask_scheduler.tasks), \
             sum(len(t.subscribers) for t in dask_scheduler._broker._topics.values()), \
             [k for k in dask_scheduler._broker._topics if '{run_id}' in k])"
        ))
    };
    let parse = |s: &str| -> Vec<usize> {
        s.trim_matches(|c| c == '(' || c == ')')
            .split(", ")
            .take(3)
            .map(|n| n.parse().unwrap())
            .collect()
    };
    let mut after = Vec::new();
    for round in 0..2 {
        let run_id = dagster_dask::exec::new_run_id();
        let started = Instant::now();
        let out = command("chatty", &[&cfg], &run_id)
            .arg("-q")
            .output()
            .unwrap();
        eprintln!("round {round}: {lines} lines in {:?}", started.elapsed());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert_nothing_left(&run_id);
        assert_eq!(
            output_lines(dir.path(), &run_id),
            (lines, "line 0".to_owned(), format!("line {}", lines - 1))
        );
        // The driver keeps the first lines in memory and says where the rest are.
        assert!(
            stdout.contains(&format!("({} output lines are in it only)", lines - 10_000)),
            "{stdout}"
        );
        let state = held(&run_id);
        assert!(
            state.ends_with(", [])"),
            "the run's topic is still there: {state}"
        );
        after.push(parse(&state));
    }
    eprintln!("scheduler after each run (events, tasks, subscriptions): {after:?}");
    let (first, second) = (&after[0], &after[1]);
    assert_eq!(second[1], 0, "tasks left on the scheduler: {after:?}");
    // distributed's own bookkeeping of two clients (the run's and this check's: a handful of
    // events each) is all a run leaves; its log topic alone held a thousand.
    assert!(second[0] <= first[0] + 40, "{after:?}");
    assert!(second[2] <= first[2], "{after:?}");
}

#[test]
fn a_ten_thousand_step_fan_out_completes_with_the_right_result() {
    let (_serial, cluster, dir) = with_cluster();
    let cfg = existing(&cluster, dir.path(), "");
    let run_id = dagster_dask::exec::new_run_id();
    let started = Instant::now();
    let mut child = command("fan10000", &[&cfg], &run_id)
        .arg("-q")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a stall fails the test instead of holding the suite.
    let bound = Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > bound {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a 10,000-step fan-out ran past {bound:?}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let ran = finish(child.wait_with_output().unwrap(), dir.path(), &run_id);
    assert_success(&ran, "fan10000");
    // 10,000 parts of 1..=10,000 each, and the source's 1.
    assert!(ran.stdout.contains("sum = 50005000"), "{}", ran.stdout);
    let succeeded = ran
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StepSuccess { .. }))
        .count();
    assert_eq!(succeeded, 10_002, "every step succeeds once");
    eprintln!(
        "fan-out of 10,000 on the test cluster: {:?}",
        started.elapsed()
    );
}

#[test]
fn independent_steps_go_to_every_free_worker() {
    let (_serial, cluster, dir) = with_cluster();
    let cfg = existing(&cluster, dir.path(), "");
    let ran = run("spread", &[&cfg], dir.path());
    assert_success(&ran, "spread");
    // Four half-second steps after `source`, two free single-thread workers: two each, not
    // all four on the worker that ran `source`.
    let mut per_worker = std::collections::BTreeMap::<String, usize>::new();
    for i in 1..=4 {
        for w in ran.workers(&format!("wait_{i}")) {
            *per_worker.entry(w).or_default() += 1;
        }
    }
    assert_eq!(
        per_worker.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{per_worker:?}"
    );
}

#[test]
fn an_output_not_produced_skips_its_readers_on_the_cluster() {
    let (_serial, cluster, dir) = with_cluster();
    let cfg = existing(
        &cluster,
        dir.path(),
        "ops: { split: { config: { odds: false } } }\n",
    );
    let ran = run("numbers_split", &[&cfg], dir.path());
    assert_success(&ran, "numbers_split");
    for step in ["sum_of_odds", "count_of", "largest_odd", "mean"] {
        assert_eq!(ran.kinds(step), ["STEP_SKIPPED"], "{step}");
    }
    // What does not read it ran; the fan-in list got what was produced: the evens' sum.
    assert!(ran.kinds("largest").contains(&"STEP_SUCCESS"));
    assert!(ran.stdout.contains("sum_all = 30"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("5 steps succeeded, 4 skipped"),
        "{}",
        ran.stdout
    );
}

#[test]
fn the_etl_example_runs_on_the_cluster_with_graphs_resources_and_optional_outputs() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let warehouse = d.join("warehouse");
    let cfg = existing(&cluster, d, "");
    // (a second file merges over the first; the resource's config reaches the workers'
    // step processes resolved)
    let etl = write(
        d,
        "etl.yaml",
        "resources: { warehouse: { config: { root: { env: ETL_WAREHOUSE } } } }\n\
         ops: { extract: { inputs: { source: ['a:1', 'b:', 'a:1', 'c:-100'] } } }\n",
    );
    let run_id = dagster_dask::exec::new_run_id();
    let out = command("etl", &[&cfg, &etl], &run_id)
        .env("ETL_WAREHOUSE", &warehouse)
        .output()
        .unwrap();
    let ran = finish(out, d, &run_id);
    assert_success(&ran, "etl");
    for step in [
        "extract",
        "clean.drop_missing",
        "clean.dedupe",
        "validate",
        "load",
    ] {
        assert!(
            ran.kinds(step).contains(&"STEP_SUCCESS"),
            "{step}: {:?}",
            ran.kinds(step)
        );
    }
    assert!(ran.stdout.contains("load = 1"), "{}", ran.stdout);
    assert!(ran.stdout.contains("quarantine = 1"), "{}", ran.stdout);
    assert_eq!(
        std::fs::read_to_string(warehouse.join("readings.csv")).unwrap(),
        "station,temp_c\na,1\n"
    );

    // Nothing rejected: `quarantine` is skipped, the run succeeds.
    let none_rejected = write(
        d,
        "none_rejected.yaml",
        &format!(
            "resources: {{ warehouse: {{ config: {{ root: '{}' }} }} }}\n\
             ops: {{ extract: {{ inputs: {{ source: ['a:1'] }} }} }}\n",
            warehouse.display()
        ),
    );
    let ran = run("etl", &[&cfg, &none_rejected], d);
    assert_success(&ran, "etl, nothing rejected");
    assert_eq!(ran.kinds("quarantine"), ["STEP_SKIPPED"]);
}

#[test]
fn a_selection_runs_on_the_cluster_reading_the_rest_from_its_parent_run() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let cfg = existing(&cluster, d, "ops: { scale: { config: { factor: 2 } } }\n");
    let parent = dagster_dask::exec::new_run_id();
    let out = command("diamond", &[&cfg], &parent).output().unwrap();
    assert_success(&finish(out, d, &parent), "the parent run");

    // Only the selected steps run, on the workers (whose step processes select the same).
    let run_id = dagster_dask::exec::new_run_id();
    let out = command("diamond", &[&cfg], &run_id)
        .args(["--select", "total*", "--from", &parent])
        .output()
        .unwrap();
    let ran = finish(out, d, &run_id);
    assert_success(&ran, "the selection");
    assert_eq!(ran.started(), ["total", "describe"]);
    assert!(
        ran.stdout.contains("describe = \"3 parts, total 40\""),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_reexecution_from_failure_on_the_cluster_runs_only_what_failed() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let fail = existing(&cluster, d, "ops: { shaky: { config: { fail: true } } }\n");
    let parent = dagster_dask::exec::new_run_id();
    let out = command("fragile", &[&fail], &parent).output().unwrap();
    let ran = finish(out, d, &parent);
    assert_eq!(ran.code, Some(1), "{}", ran.stdout);

    let pass = existing(&cluster, d, "ops: { shaky: { config: { fail: false } } }\n");
    let run_id = dagster_dask::exec::new_run_id();
    let out = command("fragile", &[&pass], &run_id)
        .args(["--reexecute", &parent, "--from-failure"])
        .output()
        .unwrap();
    let ran = finish(out, d, &run_id);
    assert_success(&ran, "the re-execution");
    assert_eq!(ran.started(), ["shaky", "after_shaky"]);
    assert!(ran.stdout.contains("after_shaky = 42"), "{}", ran.stdout);
    assert!(ran.events.iter().any(|e| matches!(&e.kind,
        EventKind::RunStart { parent_run_id: Some(p), .. } if *p == parent)));
}

#[test]
fn a_dynamic_fan_out_on_the_cluster_runs_per_key_and_reexecutes_only_the_failed_key() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let marker = d.join("fixed");
    let cfg = existing(
        &cluster,
        d,
        &format!(
            "ops: {{ emit_keys: {{ config: {{ count: 100 }} }}, halve: {{ config: {{ fail: k7, \
             fixed_when: '{}' }} }} }}\n",
            marker.display()
        ),
    );
    let parent = dagster_dask::exec::new_run_id();
    let out = command("mapped", &[&cfg], &parent).output().unwrap();
    let ran = finish(out, d, &parent);
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    let ended = |ran: &Ran, kind: &str| -> Vec<String> {
        ran.events
            .iter()
            .filter(|e| e.kind.type_name() == kind)
            .filter_map(|e| e.step_key.clone())
            .collect()
    };
    assert_eq!(ended(&ran, "STEP_FAILURE"), ["halve[k7]"]);
    assert_eq!(ended(&ran, "STEP_SKIPPED"), ["add_up"]);
    // 1 producer, 100 `triple[k]`, 99 `halve[k]`, `listed`; each mapped step on a worker
    assert_eq!(ended(&ran, "STEP_SUCCESS").len(), 201);
    assert!(
        ran.events
            .iter()
            .any(|e| e.step_key.as_deref() == Some("triple[k42]") && e.worker.is_some())
    );
    // `show` keeps the run's dashboard link, which serves a page while the cluster lives.
    let out = Command::new(bin("mapped"))
        .args(["show", &parent[..8], "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown.contains("halve[k7]") && shown.contains("failed"),
        "{shown}"
    );
    let link = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("dashboard "))
        .unwrap_or_else(|| panic!("no dashboard link: {shown}"))
        .to_owned();
    let fetch = format!(
        "import urllib.request; r = urllib.request.urlopen('{link}', timeout=20); \
         print(r.status, 'bokeh' in r.read().decode().lower())"
    );
    let out = Command::new(python())
        .args(["-c", &fetch])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200 True",
        "{link}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(&marker, "").unwrap();
    let run_id = dagster_dask::exec::new_run_id();
    let out = command("mapped", &[&cfg], &run_id)
        .args(["--reexecute", &parent, "--from-failure"])
        .output()
        .unwrap();
    let ran = finish(out, d, &run_id);
    assert_success(&ran, "the re-execution");
    assert_eq!(ran.started(), ["halve[k7]", "add_up"]);
    let want: u64 = (1..=100).map(|i| 9 * i / 2).sum();
    assert!(
        ran.stdout.contains(&format!("add_up = {want}")),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_map_body_with_another_input_runs_per_key_on_the_cluster() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let cfg = existing(
        &cluster,
        d,
        "ops: { emit_keys: { config: { count: 6 } } }\n",
    );
    let run_id = dagster_dask::exec::new_run_id();
    let out = command("scaled", &[&cfg], &run_id).output().unwrap();
    let ran = finish(out, d, &run_id);
    assert_success(&ran, "the scaled job");
    // 10 * (1 + ... + 6) and three times that
    assert!(ran.stdout.contains("add_up = 210"), "{}", ran.stdout);
    assert!(ran.stdout.contains("both_total = 630"), "{}", ran.stdout);
    let on_workers = ran
        .events
        .iter()
        .filter(|e| e.kind == EventKind::StepStart && e.worker.is_some())
        .count();
    // emit_keys, factor, 6 times[k], 6 times_again[k], 6 triple[k], 2 collects
    assert_eq!(on_workers, 22);
}

#[test]
fn tracing_and_log_records_on_workers_arrive_in_the_event_log_filtered_as_the_driver_says() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let cfg = existing(&cluster, d, "");
    let run_id = dagster_dask::exec::new_run_id();
    let out = command("traced", &[&cfg], &run_id)
        .env("RUST_LOG", "warn,tests::chatty_library=debug")
        .output()
        .unwrap();
    let ran = finish(out, d, &run_id);
    assert_success(&ran, "the traced run");
    let logs: Vec<(String, String, Option<String>)> = ran
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Log {
                message, target, ..
            } => Some((
                message.clone(),
                target.clone().unwrap_or_default(),
                e.worker.clone(),
            )),
            _ => None,
        })
        .collect();
    let messages: Vec<&str> = logs.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(messages, tests::chatty_library::MESSAGES_AT_DEBUG);
    assert_eq!(logs[1].1, "tests::chatty_library");
    assert!(
        logs.iter().all(|l| l.2.is_some()),
        "from a worker: {logs:?}"
    );
}

#[test]
fn a_cached_step_on_the_cluster_reuses_the_outputs_of_the_first_run() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let cfg = existing(&cluster, d, "ops: { split: { config: { odds: false } } }\n");
    let first = dagster_dask::exec::new_run_id();
    let out = command("numbers_split", &[&cfg], &first).output().unwrap();
    assert_success(&finish(out, d, &first), "the first run");
    let run_id = dagster_dask::exec::new_run_id();
    let out = command("numbers_split", &[&cfg], &run_id).output().unwrap();
    let ran = finish(out, d, &run_id);
    assert_success(&ran, "the cached run");
    // `split` (code version 1, same config and input) reused the first run's outputs,
    // `odds` still not produced: what reads it is skipped again.
    assert!(ran.step_events("split").any(|e| matches!(&e.kind,
        EventKind::StepOutput { output, cached_from: Some(r), .. } if output == "evens" && *r == first)));
    assert_eq!(ran.kinds("sum_of_odds"), ["STEP_SKIPPED"]);
    assert!(ran.stdout.contains("sum_all = 30"), "{}", ran.stdout);
}

#[test]
fn a_frozen_scheduler_ends_the_run() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let (child, run_id, step_pid) =
        start_nap_with(&cluster, d, 120, "frozen-scheduler", "cluster_timeout: 3");
    cluster.signal_scheduler("STOP");
    let ran = assert_ends_failed(child, d, &run_id, Duration::from_secs(60));
    // The worker keeps its tasks while its scheduler is frozen: the step's wrapper, which
    // cannot reach the scheduler either, ends the step.
    assert_gone(step_pid);
    cluster.signal_scheduler("CONT");
    assert!(
        ran.stdout
            .contains("the Dask client has been `unanswered for"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.kinds("nap").contains(&"STEP_FAILURE"),
        "{:?}",
        ran.kinds("nap")
    );
}

/// The error of `step`'s events of kind `kind` (`STEP_UP_FOR_RETRY` or `STEP_FAILURE`).
fn error_of(ran: &Ran, step: &str, kind: &str) -> dagster_dask::events::ErrorInfo {
    ran.step_events(step)
        .find_map(|e| match &e.kind {
            EventKind::StepUpForRetry { error, .. } | EventKind::StepFailure { error, .. }
                if e.kind.type_name() == kind =>
            {
                Some(error.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind} of {step}: {:?}", ran.kinds(step)))
}

#[test]
fn a_step_past_its_max_runtime_is_killed_and_retried() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let pid_file = d.join("hang.pid");
    let cfg = existing(
        &cluster,
        d,
        &format!(
            "ops: {{ hang: {{ config: {{ seconds: 120, pid_file: '{}' }} }} }}\n",
            pid_file.display()
        ),
    );
    let run_id = dagster_dask::exec::new_run_id();
    let child = command("stuck", &[&cfg], &run_id)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two attempts of one second each, not two of 120.
    let ran = assert_ends_failed(child, d, &run_id, Duration::from_secs(45));
    for kind in ["STEP_UP_FOR_RETRY", "STEP_FAILURE"] {
        let error = error_of(&ran, "hang", kind);
        assert_eq!(error.kind, ErrorKind::Timeout, "{kind}: {error}");
        assert!(
            error.message.contains("ran past its max_runtime of 1 s")
                && error
                    .message
                    .contains("its process group was killed on worker"),
            "{kind}: {error}"
        );
    }
    assert_eq!(ran.kinds("after_hang"), ["STEP_SKIPPED"]);
    assert!(ran.kinds("beside").contains(&"STEP_SUCCESS"));
    for attempt in [1, 2] {
        let pid = wait_for_pid(&d.join(format!("hang.pid.{attempt}")));
        assert_gone(pid);
    }
}

#[test]
fn a_run_past_its_max_runtime_ends_and_kills_its_steps() {
    let (_serial, cluster, dir) = with_cluster();
    let d = dir.path();
    let (child, run_id, step_pid) = start_nap_with(&cluster, d, 120, "runtime", "max_runtime: 3");
    let ran = assert_ends_failed(child, d, &run_id, Duration::from_secs(45));
    let error = error_of(&ran, "nap", "STEP_FAILURE");
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(
        error
            .message
            .starts_with("step `nap` was stopped: the run passed its max_runtime of 3 s"),
        "{error}"
    );
    // `nap` may be retried once, but not past the run's end.
    assert!(!ran.kinds("nap").contains(&"STEP_UP_FOR_RETRY"));
    assert_eq!(ran.kinds("after_nap"), ["STEP_SKIPPED"]);
    assert_gone(step_pid);
}

#[test]
fn both_workers_dying_ends_the_run_and_leaves_no_step_behind() {
    let (_serial, mut cluster, dir) = with_cluster();
    let d = dir.path();
    let (child, run_id, step_pid) =
        start_nap_with(&cluster, d, 120, "workers", "no_worker_timeout: 3");
    cluster.kill_workers();
    let ran = assert_ends_failed(child, d, &run_id, Duration::from_secs(60));
    assert!(
        ran.kinds("nap").contains(&"STEP_FAILURE"),
        "{:?}",
        ran.kinds("nap")
    );
    let error = error_of(&ran, "nap", "STEP_FAILURE");
    assert!(error.message.contains("no worker"), "{error}");
    assert_eq!(ran.kinds("after_nap"), ["STEP_SKIPPED"]);
    assert_gone(step_pid);
}

/// Runs the diamond on `cluster` with `storage` (YAML under `resources:`); asserts it succeeds,
/// leaves nothing running and prints its result; returns its run id.
fn diamond_on_cluster_with_storage(cluster: &Cluster, dir: &Path, storage: &str) -> String {
    let cfg = write(
        dir,
        "storage.yaml",
        &format!(
            "execution: {{ config: {{ cluster: {{ existing: {{ address: '{}' }} }} }} }}\n\
             resources:\n{storage}ops: {{ scale: {{ config: {{ factor: 2 }} }} }}\n",
            cluster.address
        ),
    );
    let run_id = dagster_dask::exec::new_run_id();
    let out = command("diamond", &[&cfg], &run_id).output().unwrap();
    assert_nothing_left(&run_id);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary read the final output back from the store.
    assert!(
        stdout.contains("describe = \"3 parts, total 40\""),
        "{stdout}"
    );
    run_id
}

#[test]
fn a_run_on_the_cluster_keeps_its_outputs_in_s3() {
    let (_serial, cluster, dir) = with_cluster();
    let s3 = tests::store::S3Server::start();
    s3.create_bucket("cluster-runs");
    let run_id = diamond_on_cluster_with_storage(
        &cluster,
        dir.path(),
        &format!(
            "  io_manager: {{ config: {{ s3_bucket: cluster-runs, s3_prefix: team }} }}\n  \
             s3: {{ config: {{ endpoint_url: '{}', use_ssl: false, region_name: us-east-1, \
             aws_access_key_id: test, aws_secret_access_key: test }} }}\n",
            s3.endpoint
        ),
    );
    let keys = s3.keys("cluster-runs");
    for step in ["numbers", "scale", "square", "negate", "total", "describe"] {
        let key = format!("team/storage/{run_id}/{step}/result");
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
}

#[test]
fn a_run_on_the_cluster_keeps_its_outputs_in_azure() {
    use tests::store::{AZURITE_ACCOUNT, AZURITE_KEY, AzureServer};
    let (_serial, cluster, dir) = with_cluster();
    let azure = AzureServer::start();
    azure.create_container("runs");
    let run_id = diamond_on_cluster_with_storage(
        &cluster,
        dir.path(),
        &format!(
            "  io_manager: {{ config: {{ base_url: 'az://runs/cluster', storage_options: {{ \
             azure_endpoint: '{}', azure_allow_http: true, azure_storage_account_name: \
             {AZURITE_ACCOUNT}, azure_storage_account_key: '{AZURITE_KEY}' }} }} }}\n",
            azure.endpoint
        ),
    );
    let blobs = azure.blobs("runs");
    for name in [
        "numbers/result",
        "describe/result",
        "run.json",
        "events/000001.jsonl",
    ] {
        let name = format!("cluster/{run_id}/{name}");
        assert!(blobs.contains(&name), "{name} not in {blobs:?}");
    }
}
