//! YAML text to JSON values: parsing, files, and merging several configs.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::check::join;
use super::error::{ConfigError, ConfigProblem};

/// How deep mappings and lists may nest in a run config: real ones are a few levels deep, and
/// the converters below recurse once per level.
pub const MAX_NESTING: usize = 64;

/// Parses one YAML document into a JSON value (`source` names it in errors).
///
/// Anchors, aliases and nesting are checked on the parser's events first, before anything is
/// built: an alias bomb or a runaway nesting is a clear error in bounded time and memory.
pub fn parse_yaml(text: &str, source: &str) -> Result<Value, ConfigError> {
    check_events(text, source)?;
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

/// Walks the parser's events (no tree is built): refuses anchors and aliases, and nesting
/// deeper than [`MAX_NESTING`].
fn check_events(text: &str, source: &str) -> Result<(), ConfigError> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0_usize;
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| ConfigError::one(source, format!("not valid YAML: {e}")))?;
        let at = || format!("{source}, line {}", mark.line());
        let anchor = match &event {
            Event::StreamEnd => return Ok(()),
            Event::Alias(_) => {
                return Err(ConfigError::one(
                    at(),
                    "YAML aliases (`*name`) are not supported in run config: write the value out",
                ));
            }
            Event::Scalar(_, _, anchor, _) => *anchor,
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(ConfigError::one(
                        at(),
                        format!(
                            "nested deeper than {MAX_NESTING} levels: a run config is a few \
                             levels deep; check the indentation or whatever generated it"
                        ),
                    ));
                }
                *anchor
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth = depth.saturating_sub(1);
                0
            }
            _ => 0,
        };
        if anchor != 0 {
            return Err(ConfigError::one(
                at(),
                "YAML anchors (`&name`) are not supported in run config: write the value out",
            ));
        }
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

/// Selectors of the run config: the mappings where one key is picked among these. A later
/// file that picks another one replaces the earlier choice as a whole (Dagster's rule), so
/// that `cluster: existing` overrides a default `cluster: local`.
const SELECTORS: &[(&str, &[&str])] = &[
    (
        "execution.config",
        &["in_process", "multithread", "cluster"],
    ),
    ("execution.config.cluster", &["local", "existing"]),
];

/// Merges `overlay` into `base`: maps key by key, anything else replaced; in a selector,
/// another choice replaces the earlier one.
pub fn merge(base: &mut Value, overlay: Value) {
    merge_at(base, overlay, "");
}

fn merge_at(base: &mut Value, overlay: Value, path: &str) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            if let Some((_, choices)) = SELECTORS.iter().find(|(p, _)| *p == path) {
                if overlay.keys().any(|k| choices.contains(&k.as_str())) {
                    base.retain(|k, _| !choices.contains(&k.as_str()) || overlay.contains_key(k));
                }
            }
            for (k, v) in overlay {
                match base.get_mut(&k) {
                    Some(existing) => merge_at(existing, v, &join(path, &k)),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}
