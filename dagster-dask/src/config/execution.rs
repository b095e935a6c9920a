//! `execution.config`: the embedded executors and Dagster's Dask executor block.

use std::time::Duration;

use serde_json::{Map, Value};

use super::check::{Checker, join, list, type_of};
use super::{
    ClusterConfig, DASK_ONLY_KEYS, DEFAULT_CLUSTER_TIMEOUT, DEFAULT_NO_WORKER_TIMEOUT, DaskConfig,
    EXECUTOR_KEYS, ExecutionConfig, RUN_KEYS, ShipBinary,
};

/// Cluster types Dagster's Dask executor knows that this one does not run yet.
const OTHER_DAGSTER_CLUSTERS: &[&str] = &[
    "yarn", "ssh", "pbs", "moab", "sge", "lsf", "slurm", "oar", "kube",
];

pub(super) fn parse_execution(c: &mut Checker, cfg: &Value) -> Option<ExecutionConfig> {
    let path = "execution.config";
    let allowed: Vec<&str> = EXECUTOR_KEYS
        .iter()
        .chain(DASK_ONLY_KEYS)
        .chain(RUN_KEYS)
        .copied()
        .collect();
    let map = c.mapping(cfg, path, &allowed)?;
    if !map.is_empty() && map.keys().all(|k| RUN_KEYS.contains(&k.as_str())) {
        // Only run-wide keys (`max_runtime: 60`): the default executor.
        return Some(ExecutionConfig::default());
    }
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
    let no_worker_timeout = seconds(c, exec, "no_worker_timeout", DEFAULT_NO_WORKER_TIMEOUT)?;
    let cluster_timeout = seconds(c, exec, "cluster_timeout", DEFAULT_CLUSTER_TIMEOUT)?;
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
        cluster_timeout,
        ship_binary,
    })
}

/// `execution.config.<key>`: a positive number of seconds, or `default` when absent.
fn seconds(
    c: &mut Checker,
    exec: &Map<String, Value>,
    key: &str,
    default: Duration,
) -> Option<Duration> {
    if !exec.contains_key(key) {
        return Some(default);
    }
    optional_seconds(c, exec, key)
}

/// `execution.config.<key>`: a positive number of seconds, or `None` when absent or wrong
/// (a problem then).
pub(super) fn optional_seconds(
    c: &mut Checker,
    exec: &Map<String, Value>,
    key: &str,
) -> Option<Duration> {
    let v = exec.get(key)?;
    match v.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
        Some(d) if !d.is_zero() => Some(d),
        _ => {
            c.problem(
                &format!("execution.config.{key}"),
                format!("expected a positive number of seconds, found {v}"),
            );
            None
        }
    }
}
