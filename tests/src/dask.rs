//! Test harness for the Dask executor: a Python with `distributed`, and a real cluster.
//!
//! [`python`] finds the Python the tests use: `DAGSTER_DASK_PYTHON` when set, else a venv at
//! `target/dask-venv`, created once from `dagster-dask/python/requirements.txt` (the pinned
//! `distributed`) and reused. [`Cluster`] starts a real `dask scheduler` and two `dask worker`
//! processes on loopback, on ports the OS picks (`--port 0`, read back from the scheduler
//! file), one worker with `--resources GPU=1`; dropping it stops them all, also when a test
//! panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Python with `distributed` that the Dask tests use (created on first use).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            crate::venv::venv_python(
                dagster_dask::exec::PYTHON_ENV,
                "dask-venv",
                "dagster-dask/python/requirements.txt",
                "distributed, bokeh",
            )
        })
        .clone()
}

/// A running `dask scheduler` with two workers: `cpu-worker`, and `gpu-worker` (GPU=1).
#[derive(Debug)]
pub struct Cluster {
    /// The scheduler's address, e.g. `tcp://127.0.0.1:41234`.
    pub address: String,
    processes: Vec<Child>,
    /// Scheduler and worker logs, for failing tests to show.
    pub dir: tempfile::TempDir,
    python: PathBuf,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts the scheduler and both workers and waits until the scheduler sees them.
    pub fn start() -> Self {
        Self::start_with(&python(), &[])
    }

    /// Like [`start`](Self::start), with this Python and extra environment for the
    /// scheduler and workers (benchmarks run Python dagster-dask's workers this way).
    pub fn start_with(python: &Path, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("scheduler.json");
        let mut cluster = Cluster {
            address: String::new(),
            processes: Vec::new(),
            dir,
            python: python.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let scheduler = cluster.spawn(
            "scheduler",
            &[
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                file.to_str().unwrap(),
            ],
        );
        cluster.processes.push(scheduler);
        let deadline = Instant::now() + Duration::from_secs(60);
        cluster.address = loop {
            if let Some(address) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["address"].as_str().map(str::to_owned))
            {
                break address;
            }
            assert!(
                Instant::now() < deadline,
                "the scheduler did not start: {}",
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        for (name, extra) in [("cpu-worker", None), ("gpu-worker", Some("GPU=1"))] {
            let mut args = vec![
                "-m",
                "distributed.cli.dask_worker",
                "--scheduler-file",
                file.to_str().unwrap(),
                "--name",
                name,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
                "--death-timeout",
                "60",
                "--host",
                "127.0.0.1",
            ];
            if let Some(res) = extra {
                args.extend(["--resources", res]);
            }
            let worker = cluster.spawn(name, &args);
            cluster.processes.push(worker);
        }
        cluster.wait_for_workers(2);
        cluster
    }

    fn spawn(&self, name: &str, args: &[&str]) -> Child {
        use std::os::unix::process::CommandExt;
        let log =
            std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log file");
        Command::new(&self.python)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
    }

    fn wait_for_workers(&self, n: usize) {
        let script = format!(
            "import time\nfrom distributed import Client\nc = Client('{}', timeout=30)\n\
             t = time.time()\nwhile len(c.scheduler_info(n_workers=-1)['workers']) < {n}:\n    \
             assert time.time() - t < 60, 'workers did not join'\n    time.sleep(0.1)\nc.close()\n",
            self.address
        );
        let out = self.script(&script);
        assert!(
            out.status.success(),
            "workers did not join: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }

    /// Runs a Python script with the cluster's Python.
    fn script(&self, script: &str) -> std::process::Output {
        Command::new(&self.python)
            .args(["-c", script])
            .output()
            .expect("python runs")
    }

    /// SIGKILLs the scheduler (the workers stay).
    pub fn kill_scheduler(&mut self) {
        let scheduler = &mut self.processes[0];
        let _ = scheduler.kill();
        let _ = scheduler.wait();
    }

    /// SIGKILLs both workers, their nannies with them (the scheduler stays).
    pub fn kill_workers(&mut self) {
        for worker in &mut self.processes[1..] {
            // Each was started as the leader of its own process group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", worker.id())])
                .status();
            let _ = worker.wait();
        }
    }

    /// Sends the scheduler a signal (`STOP`, `CONT`, ...).
    pub fn signal_scheduler(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.processes[0].id().to_string()])
            .status();
    }

    /// Runs a Python snippet against the scheduler (`ADDRESS` in it is replaced by the
    /// scheduler's address); returns whether it succeeded.
    pub fn python(&self, snippet: &str) -> bool {
        Command::new(&self.python)
            .args(["-c", &snippet.replace("ADDRESS", &self.address)])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// What `expr` evaluates to on the scheduler (`dask_scheduler` in it is the scheduler),
    /// printed by Python.
    pub fn on_scheduler(&self, expr: &str) -> String {
        let script = format!(
            "from distributed import Client\nc = Client('{}', timeout=10)\n\
             print(c.run_on_scheduler(lambda dask_scheduler: {expr}))\n\
             c.unsubscribe_topic('print')\nc.unsubscribe_topic('warn')\nc.close()\n",
            self.address
        );
        let out = self.script(&script);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The scheduler's and workers' logs.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for name in ["scheduler", "cpu-worker", "gpu-worker"] {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            all.push_str(&format!("--- {name}.log\n{text}\n"));
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Workers first, then the scheduler; each runs in its own process group.
        for child in self.processes.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in self.processes.iter_mut().rev() {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
        }
    }
}
