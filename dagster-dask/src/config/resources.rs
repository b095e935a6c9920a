//! `resources`: where outputs are stored (`io_manager`), and the connection of an object
//! store (Dagster's `s3`, `gcs` and `adls2` resources).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::IoManagerConfig;
use super::check::{Checker, join, list};
use super::store::{CLIENT_RESOURCES, STORE_KEYS, parse_store};

pub(super) fn parse_resources(c: &mut Checker, resources: &Value) -> Option<IoManagerConfig> {
    let allowed: Vec<&str> = std::iter::once("io_manager")
        .chain(CLIENT_RESOURCES.iter().copied())
        .collect();
    let r = c.mapping(resources, "resources", &allowed)?;
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

/// `resources` as step processes get it.
pub(super) fn resources_value(io: &IoManagerConfig) -> Value {
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
    serde_json::json!({ "io_manager": { "config": cfg } })
}
