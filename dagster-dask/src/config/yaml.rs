//! YAML text to JSON values: parsing, files, and merging several configs.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::check::join;
use super::error::{ConfigError, ConfigProblem};

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
