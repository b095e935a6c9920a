//! `resources.io_manager.config`: where outputs are stored.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::IoManagerConfig;
use super::check::{Checker, join};

pub(super) fn parse_resources(c: &mut Checker, resources: &Value) -> Option<IoManagerConfig> {
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
