//! `resources`: where outputs are stored (`io_manager`), the connection of an object store
//! (Dagster's `s3`, `gcs` and `adls2` resources), and the config of the job's own resources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::IoManagerConfig;
use super::check::{Checker, join, list};
use super::store::{CLIENT_RESOURCES, STORE_KEYS, parse_store};
use crate::graph::Job;

/// Resource names the run config gives a meaning of its own: a job cannot use them.
pub(crate) fn reserved_resource_names() -> impl Iterator<Item = &'static str> {
    std::iter::once("io_manager").chain(CLIENT_RESOURCES.iter().copied())
}

/// `resources`: the IO manager's config, and each job resource's config, by name.
pub(super) fn parse_resources(
    c: &mut Checker,
    resources: &Value,
    job: &Job,
) -> (Option<IoManagerConfig>, BTreeMap<String, Value>) {
    let mut allowed: Vec<&str> = reserved_resource_names().collect();
    allowed.extend(job.resources().iter().map(|r| r.name.as_str()));
    let Some(r) = c.mapping(resources, "resources", &allowed) else {
        return (None, BTreeMap::new());
    };
    (parse_io_manager(c, r), parse_job_resources(c, r, job))
}

/// Each job resource's `config`, `{env: VAR}` resolved, checked against its config type.
fn parse_job_resources(
    c: &mut Checker,
    r: &Map<String, Value>,
    job: &Job,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for spec in job.resources() {
        let path = join("resources", &spec.name);
        let given = match r.get(&spec.name) {
            Some(block) => c.config_of(block, &path).map(|(v, p)| (v.clone(), p)),
            None => None,
        };
        let Some((value, cpath)) = given else {
            if let Err(e) = (spec.check_absent)() {
                c.problem(
                    &join(&path, "config"),
                    format!("required: resource `{}` takes config ({e})", spec.type_name),
                );
            }
            continue;
        };
        let mut secrets = Vec::new();
        let Some(value) = resolve_env(c, &value, &cpath, &mut secrets) else {
            continue;
        };
        if let Err(mut e) = (spec.check)(&value) {
            // Values read from the environment are secrets: never in a message.
            for secret in &secrets {
                e = e.replace(secret.as_str(), "<from the environment>");
            }
            c.problem(&cpath, format!("does not fit `{}`: {e}", spec.type_name));
            continue;
        }
        out.insert(spec.name.clone(), value);
    }
    out
}

/// `value` with every `{env: VAR}` replaced by the variable's value (noted in `secrets`).
fn resolve_env(
    c: &mut Checker,
    value: &Value,
    path: &str,
    secrets: &mut Vec<String>,
) -> Option<Value> {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("env") => {
            let resolved = c.string_source(value, path)?;
            if !resolved.is_empty() {
                secrets.push(resolved.clone());
            }
            Some(Value::String(resolved))
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), resolve_env(c, v, &join(path, k), secrets)?);
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| resolve_env(c, v, &format!("{path}[{i}]"), secrets))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        other => Some(other.clone()),
    }
}

fn parse_io_manager(c: &mut Checker, r: &Map<String, Value>) -> Option<IoManagerConfig> {
    let empty = Map::new();
    let io = match r.get("io_manager") {
        Some(io) => c.mapping(io, "resources.io_manager", &["config"])?,
        None => &empty,
    };
    let path = "resources.io_manager.config";
    let cfg = match io.get("config") {
        Some(cfg) => {
            let allowed: Vec<&str> = ["base_dir", "in_memory"]
                .iter()
                .chain(STORE_KEYS)
                .copied()
                .collect();
            c.mapping(cfg, path, &allowed)?
        }
        None => &empty,
    };
    let base_dir = match cfg.get("base_dir") {
        Some(v) => Some(PathBuf::from(c.string_source(v, &join(path, "base_dir"))?)),
        None => None,
    };
    let in_memory = match cfg.get("in_memory") {
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
    let url = match cfg.get("base_url") {
        Some(v) => Some(c.string_source(v, &join(path, "base_url"))?),
        None => None,
    };
    // `file://` is a directory: the same storage as `base_dir`.
    let (base_dir, url) = match url.as_deref().map(|u| (u, url::Url::parse(u))) {
        Some((text, Ok(u))) if u.scheme() == "file" => match u.to_file_path() {
            Ok(dir) if base_dir.is_none() => (Some(dir), None),
            Ok(_) => (base_dir, url),
            Err(()) => {
                c.problem(
                    &join(path, "base_url"),
                    format!("`{text}` is not an absolute local path: write `file:///dir/...`"),
                );
                return None;
            }
        },
        _ => (base_dir, url),
    };
    let store = parse_store(c, cfg, url.as_deref(), r);
    let chosen: Vec<&str> = [
        ("base_dir", base_dir.is_some()),
        ("in_memory", in_memory),
        ("an object store", store.is_some()),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(k, _)| *k)
    .collect();
    if chosen.len() > 1 {
        c.problem(
            path,
            format!(
                "{} exclude each other: choose one place for the outputs",
                list(&chosen)
            ),
        );
        return None;
    }
    if let Some(dir) = &base_dir {
        if dir.as_os_str().is_empty() {
            c.problem(
                &join(path, "base_dir"),
                "is empty: name the directory that holds the runs' outputs (every Dask worker \
                 must see it), or leave `base_dir` out for the default",
            );
            return None;
        }
        if let Some(scheme) = url_scheme(dir) {
            c.problem(
                &join(path, "base_dir"),
                format!(
                    "`{scheme}://...` is a URL and `base_dir` a directory path: write \
                     `base_url: {}` instead",
                    dir.display()
                ),
            );
            return None;
        }
    }
    Some(IoManagerConfig {
        base_dir,
        in_memory,
        store,
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

/// `resources` as step processes get it: the IO manager's and the job resources' config.
pub(super) fn resources_value(
    io: &IoManagerConfig,
    job_resources: &BTreeMap<String, Value>,
) -> Value {
    let mut cfg = match &io.store {
        Some(store) => super::store::store_value(store),
        None => Map::new(),
    };
    if let Some(base) = &io.base_dir {
        cfg.insert("base_dir".into(), Value::from(base.display().to_string()));
    }
    if io.in_memory {
        cfg.insert("in_memory".into(), Value::Bool(true));
    }
    let mut out = Map::new();
    out.insert("io_manager".into(), serde_json::json!({ "config": cfg }));
    for (name, config) in job_resources {
        out.insert(name.clone(), serde_json::json!({ "config": config }));
    }
    Value::Object(out)
}
