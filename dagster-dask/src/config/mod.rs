//! Run config: Dagster's YAML shape, strictly validated before anything runs.
//!
//! ```yaml
//! execution:
//!   config:
//!     multithread: { max_concurrent: 4 }   # or: in_process: {}   or: cluster: {...} (Dask)
//!     max_runtime: 3600                    # optional: the run fails after an hour
//! resources:
//!   io_manager:
//!     config: { base_dir: /shared/storage }  # or: { in_memory: true }
//! ops:
//!   hello:
//!     config: { greeting: "hi" }             # checked against the op's config type
//! ```
//!
//! No `execution` block means the embedded executor, multi-threaded. The Dask executor's
//! block is Dagster's (`cluster: local: {...}` or `cluster: existing: {address: ...}`), so the
//! Dagster docs' YAML files parse unchanged. Strings that name machine facts (`base_dir`,
//! `address`, `python`) may be `{env: VAR}`. Every problem is reported at once, each with its
//! YAML path and what is allowed there.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

mod check;
mod error;
mod execution;
mod ops;
mod resources;
mod store;
mod yaml;

use self::check::Checker;
pub use self::error::{ConfigError, ConfigProblem};
use self::execution::{optional_seconds, parse_execution};
pub use self::ops::retain_steps;
pub(crate) use self::ops::step_path;
use self::ops::{check_required_inputs, check_required_op_config, parse_ops};
pub(crate) use self::resources::reserved_resource_names;
use self::resources::{parse_resources, resources_value};
pub use self::store::{Cloud, DEFAULT_STORE_RETRIES, DEFAULT_STORE_TIMEOUT, StoreConfig};
pub use self::yaml::{MAX_NESTING, load_files, merge, parse_yaml};
use crate::graph::Job;

/// Seconds a Dask step may wait for a worker with the resources it needs, by default.
pub const DEFAULT_NO_WORKER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a Dask run waits on a silent bridge or a lost scheduler before it ends, by
/// default: the connect timeout and 30 s.
pub const DEFAULT_CLUSTER_TIMEOUT: Duration = Duration::from_secs(40);

/// A validated run config.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct RunConfig {
    /// Which executor runs the job, and how.
    pub execution: ExecutionConfig,
    /// Where step outputs are stored.
    pub io_manager: IoManagerConfig,
    /// The config of each of the job's resources that is given, by name (`{env: VAR}`
    /// resolved).
    pub resources: BTreeMap<String, Value>,
    /// Config of each step that has some, by step key.
    pub ops: BTreeMap<String, Value>,
    /// Inputs given in run config (`ops.<step>.inputs.<name>`), by step key and input name.
    pub inputs: BTreeMap<String, BTreeMap<String, Value>>,
    /// The longest the run may take (`execution.config.max_runtime`, seconds; else the job's
    /// `dagster/max_runtime` tag): then running steps are stopped, nothing more starts, and
    /// the run fails.
    pub max_runtime: Option<Duration>,
}

/// Which executor runs the job.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ExecutionConfig {
    /// The embedded executor, strictly one step at a time, in this thread.
    InProcess,
    /// The embedded executor on a bounded pool of threads (the default).
    Multithread {
        /// The most steps running at once; the number of CPUs when not given.
        max_concurrent: Option<usize>,
    },
    /// Every step a task on a Dask cluster.
    Dask(DaskConfig),
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self::Multithread {
            max_concurrent: None,
        }
    }
}

/// The Dask executor's config.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DaskConfig {
    /// Which cluster.
    pub cluster: ClusterConfig,
    /// The Python with `distributed` installed; `DAGSTER_DASK_PYTHON` wins over it.
    pub python: Option<String>,
    /// How long a step may wait for a worker that has its resources.
    pub no_worker_timeout: Duration,
    /// How long the run waits on a silent bridge or a lost scheduler before it ends.
    pub cluster_timeout: Duration,
    /// Whether to ship the job binary to workers.
    pub ship_binary: ShipBinary,
}

/// Which Dask cluster to run on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClusterConfig {
    /// A `distributed.LocalCluster` started for the run, with these keyword arguments.
    Local(Map<String, Value>),
    /// A running scheduler.
    Existing {
        /// The scheduler's address, e.g. `tcp://10.0.0.5:8786`.
        address: String,
    },
}

/// Whether the job binary is copied to Dask workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShipBinary {
    /// When a worker cannot see it at the driver's path.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never: workers must see the binary at the driver's path.
    Never,
}

/// Where step outputs are stored: at most one of the three.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IoManagerConfig {
    /// A local (or network-mounted) directory; the default storage when none is given.
    pub base_dir: Option<PathBuf>,
    /// Keep outputs in memory: embedded executor only.
    pub in_memory: bool,
    /// An object store (S3, GCS, Azure).
    pub store: Option<StoreConfig>,
}

const TOP_KEYS: &[&str] = &["execution", "resources", "ops"];
const EXECUTOR_KEYS: &[&str] = &["in_process", "multithread", "cluster"];
/// Keys of `execution.config` that every executor takes.
const RUN_KEYS: &[&str] = &["max_runtime"];
const DASK_ONLY_KEYS: &[&str] = &[
    "python",
    "no_worker_timeout",
    "cluster_timeout",
    "ship_binary",
];

/// The block of step `key` in `ops` (`clean.dedupe` at `clean.ops.dedupe`), made if missing.
fn step_block<'m>(ops: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let mut parts = key.split('.');
    let mut block = object_at(ops, parts.next().unwrap_or_default());
    for part in parts {
        block = object_at(object_at(block, "ops"), part);
    }
    block
}

/// The mapping at `key` of `map`, made (or made a mapping) if it is not one.
fn object_at<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let entry = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(inner) => inner,
        _ => unreachable!("made a mapping above"),
    }
}

impl RunConfig {
    /// Parses a YAML run config and validates it against `job`.
    pub fn from_yaml(text: &str, job: &Job) -> Result<Self, ConfigError> {
        Self::from_value(&parse_yaml(text, "run config")?, job)
    }

    /// Validates a run config value (YAML already read into JSON) against `job`.
    pub fn from_value(value: &Value, job: &Job) -> Result<Self, ConfigError> {
        let mut c = Checker {
            problems: Vec::new(),
        };
        let mut config = RunConfig::default();
        if let Some(top) = c.mapping(value, "", TOP_KEYS) {
            if let Some(execution) = top.get("execution") {
                if let Some(exec) = c.mapping(execution, "execution", &["config"]) {
                    if let Some(cfg) = exec.get("config") {
                        if let Some(e) = parse_execution(&mut c, cfg) {
                            config.execution = e;
                        }
                        if let Some(Value::Object(cfg)) = exec.get("config") {
                            config.max_runtime = optional_seconds(&mut c, cfg, "max_runtime");
                        }
                    }
                }
            }
            let resources = top.get("resources").unwrap_or(&Value::Null);
            let (io, job_resources) = parse_resources(&mut c, resources, job);
            if let Some(io) = io {
                config.io_manager = io;
            }
            config.resources = job_resources;
            if let Some(ops) = top.get("ops") {
                (config.ops, config.inputs) = parse_ops(&mut c, ops, job);
            }
            check_required_op_config(&mut c, &config.ops, job);
            check_required_inputs(&mut c, &config.inputs, job);
        }
        if matches!(config.execution, ExecutionConfig::Dask(_)) && config.io_manager.in_memory {
            c.problem(
                "resources.io_manager.config.in_memory",
                "the in-memory IO manager cannot be used with the Dask executor: workers run steps in other processes; set `base_dir` to storage every worker can read",
            );
        }
        if c.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                problems: c.problems,
            })
        }
    }

    /// The config as a value in Dagster's shape, `{env: VAR}` already resolved: what a step
    /// process on a worker is given, so that it sees exactly what the driver validated.
    pub fn to_value(&self) -> Value {
        let mut exec = Map::new();
        match &self.execution {
            ExecutionConfig::InProcess => {
                exec.insert("in_process".into(), Value::Object(Map::new()));
            }
            ExecutionConfig::Multithread { max_concurrent } => {
                let mut m = Map::new();
                if let Some(n) = max_concurrent {
                    m.insert("max_concurrent".into(), Value::from(*n));
                }
                exec.insert("multithread".into(), Value::Object(m));
            }
            ExecutionConfig::Dask(d) => {
                let cluster = match &d.cluster {
                    ClusterConfig::Local(kwargs) => {
                        serde_json::json!({ "local": kwargs })
                    }
                    ClusterConfig::Existing { address } => {
                        serde_json::json!({ "existing": { "address": address } })
                    }
                };
                exec.insert("cluster".into(), cluster);
                if let Some(p) = &d.python {
                    exec.insert("python".into(), Value::from(p.clone()));
                }
                exec.insert(
                    "no_worker_timeout".into(),
                    Value::from(d.no_worker_timeout.as_secs_f64()),
                );
                exec.insert(
                    "cluster_timeout".into(),
                    Value::from(d.cluster_timeout.as_secs_f64()),
                );
                let ship = match d.ship_binary {
                    ShipBinary::Auto => "auto",
                    ShipBinary::Always => "always",
                    ShipBinary::Never => "never",
                };
                exec.insert("ship_binary".into(), Value::from(ship));
            }
        }
        if let Some(limit) = self.max_runtime {
            exec.insert("max_runtime".into(), Value::from(limit.as_secs_f64()));
        }
        let mut ops = Map::new();
        for (step, config) in &self.ops {
            step_block(&mut ops, step).insert("config".into(), config.clone());
        }
        for (step, inputs) in &self.inputs {
            step_block(&mut ops, step).insert("inputs".into(), serde_json::json!(inputs));
        }
        serde_json::json!({
            "execution": { "config": exec },
            "resources": resources_value(&self.io_manager, &self.resources),
            "ops": ops,
        })
    }
}
