//! Run config: Dagster's YAML shape, strictly validated before anything runs.
//!
//! ```yaml
//! execution:
//!   config:
//!     multithread: { max_concurrent: 4 }   # or: in_process: {}   or: cluster: {...} (Dask)
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
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::graph::Job;

/// Seconds a Dask step may wait for a worker with the resources it needs, by default.
pub const DEFAULT_NO_WORKER_TIMEOUT: Duration = Duration::from_secs(30);

/// A validated run config.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct RunConfig {
    /// Which executor runs the job, and how.
    pub execution: ExecutionConfig,
    /// Where step outputs are stored.
    pub io_manager: IoManagerConfig,
    /// Config of each step that has some, by step key.
    pub ops: BTreeMap<String, Value>,
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

/// Where step outputs are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct IoManagerConfig {
    /// A local (or network-mounted) directory; the default storage when not given.
    pub base_dir: Option<PathBuf>,
    /// Keep outputs in memory: embedded executor only.
    pub in_memory: bool,
}

/// One problem in a run config.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigProblem {
    /// Where: a dotted YAML path (`execution.config.cluster`), or a file.
    pub path: String,
    /// What is wrong, and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(top level): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a run config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid run config ({} problem{}):{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![ConfigProblem {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}

/// Parses one YAML document into a JSON value (`source` names it in errors).
pub fn parse_yaml(text: &str, source: &str) -> Result<Value, ConfigError> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text)
        .map_err(|e| ConfigError::one(source, format!("not valid YAML: {e}")))?;
    match docs.len() {
        0 => Ok(Value::Object(Map::new())),
        1 => {
            let mut problems = Vec::new();
            let value = yaml_to_json(&docs[0], "", &mut problems);
            if problems.is_empty() {
                Ok(value)
            } else {
                Err(ConfigError { problems })
            }
        }
        n => Err(ConfigError::one(
            source,
            format!("holds {n} YAML documents; a run config is one document"),
        )),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml, path: &str, problems: &mut Vec<ConfigProblem>) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(s) => match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(s.clone()),
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]"), problems))
                .collect(),
        ),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (k, v) in hash {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => {
                        problems.push(ConfigProblem {
                            path: path.to_owned(),
                            message: format!("mapping keys must be strings, found {other:?}"),
                        });
                        continue;
                    }
                };
                let child = join(path, &key);
                let value = yaml_to_json(v, &child, problems);
                map.insert(key, value);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            problems.push(ConfigProblem {
                path: path.to_owned(),
                message: "YAML aliases are not supported in run config: write the value out"
                    .to_owned(),
            });
            Value::Null
        }
    }
}

/// Reads and merges YAML files: maps merge key by key, and later files win.
pub fn load_files(paths: &[PathBuf]) -> Result<Value, ConfigError> {
    let mut merged = Value::Object(Map::new());
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::one(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let value = parse_yaml(&text, &path.display().to_string()).map_err(|mut e| {
            for p in &mut e.problems {
                if !p.path.starts_with(&path.display().to_string()) {
                    p.path = format!("{}: {}", path.display(), p.path);
                }
            }
            e
        })?;
        merge(&mut merged, value);
    }
    Ok(merged)
}

/// Merges `overlay` into `base`: maps key by key, anything else replaced.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (k, v) in overlay {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cluster types Dagster's Dask executor knows that this one does not run yet.
const OTHER_DAGSTER_CLUSTERS: &[&str] = &[
    "yarn", "ssh", "pbs", "moab", "sge", "lsf", "slurm", "oar", "kube",
];

/// Collects problems while walking a config value.
struct Checker {
    problems: Vec<ConfigProblem>,
}

impl Checker {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// `v` as a mapping whose keys are all in `allowed` (null counts as empty).
    fn mapping<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let map = match v {
            Value::Null => EMPTY.get_or_init(Map::new),
            Value::Object(map) => map,
            other => {
                self.problem(
                    path,
                    format!(
                        "expected a mapping with keys among {}, found {}",
                        list(allowed),
                        type_of(other)
                    ),
                );
                return None;
            }
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    &join(path, key),
                    format!("unknown key `{key}`; allowed here: {}", list(allowed)),
                );
            }
        }
        Some(map)
    }

    /// A string, or `{env: VAR}` read from the environment.
    fn string_source(&mut self, v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(map) if map.len() == 1 && map.contains_key("env") => match &map["env"] {
                Value::String(var) => match std::env::var(var) {
                    Ok(value) => Some(value),
                    Err(_) => {
                        self.problem(
                            path,
                            format!("environment variable `{var}` is not set (or not UTF-8); set it, or write the value in place of `{{env: {var}}}`"),
                        );
                        None
                    }
                },
                other => {
                    self.problem(
                        &join(path, "env"),
                        format!(
                            "expected the name of an environment variable, found {}",
                            type_of(other)
                        ),
                    );
                    None
                }
            },
            other => {
                self.problem(
                    path,
                    format!(
                        "expected a string or `{{env: VAR}}`, found {}",
                        type_of(other)
                    ),
                );
                None
            }
        }
    }

    /// Exactly one key of `map` among `choices`.
    fn selector<'m>(
        &mut self,
        map: &'m Map<String, Value>,
        path: &str,
        choices: &[&str],
        what: &str,
    ) -> Option<(&'m str, &'m Value)> {
        let chosen: Vec<(&String, &Value)> = map
            .iter()
            .filter(|(k, _)| choices.contains(&k.as_str()))
            .collect();
        match chosen.as_slice() {
            [(k, v)] => Some((k.as_str(), v)),
            [] => {
                self.problem(
                    path,
                    format!("choose one {what}: {}; found none", list(choices)),
                );
                None
            }
            many => {
                let found: Vec<&str> = many.iter().map(|(k, _)| k.as_str()).collect();
                self.problem(
                    path,
                    format!(
                        "choose exactly one {what} among {}; found {}",
                        list(choices),
                        list(&found)
                    ),
                );
                None
            }
        }
    }
}

const TOP_KEYS: &[&str] = &["execution", "resources", "ops"];
const EXECUTOR_KEYS: &[&str] = &["in_process", "multithread", "cluster"];
const DASK_ONLY_KEYS: &[&str] = &["python", "no_worker_timeout", "ship_binary"];

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
                    }
                }
            }
            if let Some(resources) = top.get("resources") {
                if let Some(io) = parse_resources(&mut c, resources) {
                    config.io_manager = io;
                }
            }
            if let Some(ops) = top.get("ops") {
                config.ops = parse_ops(&mut c, ops, job);
            }
            check_required_op_config(&mut c, &config.ops, job);
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
                let ship = match d.ship_binary {
                    ShipBinary::Auto => "auto",
                    ShipBinary::Always => "always",
                    ShipBinary::Never => "never",
                };
                exec.insert("ship_binary".into(), Value::from(ship));
            }
        }
        let mut io = Map::new();
        if let Some(base) = &self.io_manager.base_dir {
            io.insert("base_dir".into(), Value::from(base.display().to_string()));
        }
        if self.io_manager.in_memory {
            io.insert("in_memory".into(), Value::Bool(true));
        }
        let ops: Map<String, Value> = self
            .ops
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!({ "config": v })))
            .collect();
        serde_json::json!({
            "execution": { "config": exec },
            "resources": { "io_manager": { "config": io } },
            "ops": ops,
        })
    }
}

fn parse_execution(c: &mut Checker, cfg: &Value) -> Option<ExecutionConfig> {
    let path = "execution.config";
    let allowed: Vec<&str> = EXECUTOR_KEYS
        .iter()
        .chain(DASK_ONLY_KEYS)
        .copied()
        .collect();
    let map = c.mapping(cfg, path, &allowed)?;
    let (kind, body) = c.selector(map, path, EXECUTOR_KEYS, "executor")?;
    let body_path = join(path, kind);
    if kind != "cluster" {
        for key in DASK_ONLY_KEYS {
            if map.contains_key(*key) {
                c.problem(
                    &join(path, key),
                    format!("`{key}` configures the Dask executor and needs `cluster`; this config selects `{kind}`"),
                );
            }
        }
    }
    match kind {
        "in_process" => {
            c.mapping(body, &body_path, &[])?;
            Some(ExecutionConfig::InProcess)
        }
        "multithread" => {
            let m = c.mapping(body, &body_path, &["max_concurrent"])?;
            let max_concurrent = match m.get("max_concurrent") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64() {
                    Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                    _ => {
                        c.problem(
                            &join(&body_path, "max_concurrent"),
                            format!("expected a whole number of at least 1, found {v}"),
                        );
                        return None;
                    }
                },
            };
            Some(ExecutionConfig::Multithread { max_concurrent })
        }
        _ => parse_dask(c, map, body, &body_path).map(ExecutionConfig::Dask),
    }
}

fn parse_dask(
    c: &mut Checker,
    exec: &Map<String, Value>,
    cluster: &Value,
    path: &str,
) -> Option<DaskConfig> {
    let kinds = ["local", "existing"];
    let all: Vec<&str> = kinds
        .iter()
        .chain(OTHER_DAGSTER_CLUSTERS)
        .copied()
        .collect();
    let map = c.mapping(cluster, path, &all)?;
    for other in OTHER_DAGSTER_CLUSTERS {
        if map.contains_key(*other) {
            c.problem(
                &join(path, other),
                format!(
                    "cluster type `{other}` is not supported yet; supported: {}",
                    list(&kinds)
                ),
            );
        }
    }
    let (kind, body) = c.selector(map, path, &all, "cluster type")?;
    let cluster = match kind {
        "local" => match body {
            Value::Null => ClusterConfig::Local(Map::new()),
            Value::Object(kwargs) => ClusterConfig::Local(kwargs.clone()),
            other => {
                c.problem(
                    &join(path, "local"),
                    format!("expected a mapping of `distributed.LocalCluster` keyword arguments (e.g. `n_workers: 2`), found {}", type_of(other)),
                );
                return None;
            }
        },
        "existing" => {
            let epath = join(path, "existing");
            let m = c.mapping(body, &epath, &["address"])?;
            let Some(address) = m.get("address") else {
                c.problem(
                    &epath,
                    "missing required key `address` (the scheduler, e.g. `tcp://127.0.0.1:8786`)",
                );
                return None;
            };
            let address = c.string_source(address, &join(&epath, "address"))?;
            ClusterConfig::Existing { address }
        }
        _ => return None,
    };
    let python = match exec.get("python") {
        Some(v) => Some(c.string_source(v, "execution.config.python")?),
        None => None,
    };
    let no_worker_timeout = match exec.get("no_worker_timeout") {
        None => DEFAULT_NO_WORKER_TIMEOUT,
        Some(v) => match v.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
            Some(d) if !d.is_zero() => d,
            _ => {
                c.problem(
                    "execution.config.no_worker_timeout",
                    format!("expected a positive number of seconds, found {v}"),
                );
                return None;
            }
        },
    };
    let ship_binary = match exec.get("ship_binary") {
        None => ShipBinary::Auto,
        Some(Value::String(s)) if s == "auto" => ShipBinary::Auto,
        Some(Value::String(s)) if s == "always" => ShipBinary::Always,
        Some(Value::String(s)) if s == "never" => ShipBinary::Never,
        Some(v) => {
            c.problem(
                "execution.config.ship_binary",
                format!("expected one of `auto`, `always`, `never`, found {v}"),
            );
            return None;
        }
    };
    Some(DaskConfig {
        cluster,
        python,
        no_worker_timeout,
        ship_binary,
    })
}

fn parse_resources(c: &mut Checker, resources: &Value) -> Option<IoManagerConfig> {
    let r = c.mapping(resources, "resources", &["io_manager"])?;
    let io = r.get("io_manager")?;
    let io = c.mapping(io, "resources.io_manager", &["config"])?;
    let cfg = io.get("config")?;
    let path = "resources.io_manager.config";
    let m = c.mapping(cfg, path, &["base_dir", "in_memory"])?;
    let base_dir = match m.get("base_dir") {
        Some(v) => Some(PathBuf::from(c.string_source(v, &join(path, "base_dir"))?)),
        None => None,
    };
    let in_memory = match m.get("in_memory") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            c.problem(
                &join(path, "in_memory"),
                format!("expected true or false, found {v}"),
            );
            return None;
        }
    };
    if base_dir.is_some() && in_memory {
        c.problem(
            path,
            "`base_dir` and `in_memory: true` exclude each other: choose one",
        );
        return None;
    }
    if let Some(dir) = &base_dir {
        if let Some(scheme) = url_scheme(dir) {
            c.problem(
                &join(path, "base_dir"),
                format!("`{scheme}://` storage is not supported yet; use a local or network-mounted directory path"),
            );
            return None;
        }
    }
    Some(IoManagerConfig {
        base_dir,
        in_memory,
    })
}

fn url_scheme(dir: &Path) -> Option<String> {
    let s = dir.to_str()?;
    let (scheme, _) = s.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '+'))
    .then(|| scheme.to_owned())
}

fn parse_ops(c: &mut Checker, ops: &Value, job: &Job) -> BTreeMap<String, Value> {
    let plan = job.plan();
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    let mut out = BTreeMap::new();
    let Some(map) = c.mapping(ops, "ops", &keys) else {
        return out;
    };
    for (step, body) in map {
        let Some(index) = plan.index_of(step) else {
            continue; // reported by `mapping` as an unknown key, with the list of steps
        };
        let path = join("ops", step);
        let Some(m) = c.mapping(body, &path, &["config"]) else {
            continue;
        };
        let Some(value) = m.get("config") else {
            continue;
        };
        let cpath = join(&path, "config");
        match job.step(index).spec.config {
            None => c.problem(
                &cpath,
                format!(
                    "op `{}` of step `{step}` takes no config; remove this block",
                    plan.steps[index].op
                ),
            ),
            Some(spec) => {
                if let Err(e) = (spec.check)(value) {
                    c.problem(&cpath, format!("does not fit `{}`: {e}", spec.type_name));
                }
                out.insert(step.clone(), value.clone());
            }
        }
    }
    out
}

/// Ops that declare a config type whose empty value does not deserialize need config.
fn check_required_op_config(c: &mut Checker, given: &BTreeMap<String, Value>, job: &Job) {
    let empty = Value::Object(Map::new());
    for (index, step) in job.plan().steps.iter().enumerate() {
        if given.contains_key(&step.key) {
            continue;
        }
        if let Some(spec) = job.step(index).spec.config {
            if let Err(e) = (spec.check)(&empty) {
                c.problem(
                    &format!("ops.{}.config", step.key),
                    format!(
                        "required: op `{}` takes config `{}` ({e})",
                        step.op, spec.type_name
                    ),
                );
            }
        }
    }
}
