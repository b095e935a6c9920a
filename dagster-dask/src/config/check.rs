//! Walking a config value: collects every problem with its path and what is allowed.

use serde_json::{Map, Value};

use super::error::ConfigProblem;

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

pub(super) fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Collects problems while walking a config value.
pub(super) struct Checker {
    pub(super) problems: Vec<ConfigProblem>,
}

impl Checker {
    pub(super) fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// `v` as a mapping whose keys are all in `allowed` (null counts as empty).
    pub(super) fn mapping<'v>(
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

    /// The `config` of a Dagster `{config: ...}` block at `path`, with its own path; `None`
    /// when there is none, or the block is wrong (then reported).
    pub(super) fn config_of<'v>(
        &mut self,
        block: &'v Value,
        path: &str,
    ) -> Option<(&'v Value, String)> {
        let m = self.mapping(block, path, &["config"])?;
        Some((m.get("config")?, join(path, "config")))
    }

    /// A string, or `{env: VAR}` read from the environment.
    pub(super) fn string_source(&mut self, v: &Value, path: &str) -> Option<String> {
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
    pub(super) fn selector<'m>(
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
