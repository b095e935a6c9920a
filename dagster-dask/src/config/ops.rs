//! `ops.<step>.config`: each op's config, checked against the op's config type.

use std::collections::BTreeMap;

use serde_json::Value;

use super::check::{Checker, join};
use crate::graph::Job;

/// Where step `key`'s block is in run config: `ops.<step>`, or `ops.<graph>.ops.<op>` for a
/// step inside a graph instance (Dagster's shape).
pub(crate) fn step_path(key: &str) -> String {
    key.split('.')
        .map(|part| format!("ops.{part}"))
        .collect::<Vec<_>>()
        .join(".")
}

type Inputs = BTreeMap<String, BTreeMap<String, Value>>;

/// Keeps, in the `ops` of a run config value, only the blocks of `plan`'s steps (and of the
/// graph instances that hold them): config for steps outside an op selection is not used,
/// and so not checked.
pub fn retain_steps(value: &mut Value, plan: &crate::plan::Plan) {
    if let Some(ops) = value.get_mut("ops") {
        retain_level(ops, plan, "");
    }
}

fn retain_level(ops: &mut Value, plan: &crate::plan::Plan, prefix: &str) {
    let Value::Object(map) = ops else { return };
    map.retain(|name, _| {
        let key = format!("{prefix}{name}");
        let inside = format!("{key}.");
        plan.index_of(&key).is_some() || plan.steps.iter().any(|s| s.key.starts_with(&inside))
    });
    for (name, block) in map.iter_mut() {
        let key = format!("{prefix}{name}");
        if plan.index_of(&key).is_none() {
            if let Some(inner) = block.get_mut("ops") {
                retain_level(inner, plan, &format!("{key}."));
            }
        }
    }
}

/// `ops`: each step's `config` and `inputs`, steps inside graph instances nested under
/// `<graph>.ops`.
pub(super) fn parse_ops(
    c: &mut Checker,
    ops: &Value,
    job: &Job,
) -> (BTreeMap<String, Value>, Inputs) {
    let (mut configs, mut inputs) = (BTreeMap::new(), BTreeMap::new());
    parse_level(c, ops, "ops", "", job, &mut configs, &mut inputs);
    (configs, inputs)
}

/// The steps and graph instances whose keys start with `prefix` (`""`, or `clean.`), one
/// level down.
fn parse_level(
    c: &mut Checker,
    value: &Value,
    path: &str,
    prefix: &str,
    job: &Job,
    configs: &mut BTreeMap<String, Value>,
    inputs: &mut Inputs,
) {
    let plan = job.plan();
    let mut names: Vec<&str> = Vec::new();
    for step in &plan.steps {
        if let Some(rest) = step.key.strip_prefix(prefix) {
            let name = rest.split('.').next().unwrap_or(rest);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let Some(map) = c.mapping(value, path, &names) else {
        return;
    };
    for (name, body) in map {
        let key = format!("{prefix}{name}");
        let path = join(path, name);
        match plan.index_of(&key) {
            Some(index) => parse_step(c, body, &path, job, index, configs, inputs),
            None if names.contains(&name.as_str()) => {
                // A graph instance: its steps under `ops`.
                let Some(block) = c.mapping(body, &path, &["ops"]) else {
                    continue;
                };
                if let Some(inner) = block.get("ops") {
                    let inner_path = join(&path, "ops");
                    parse_level(
                        c,
                        inner,
                        &inner_path,
                        &format!("{key}."),
                        job,
                        configs,
                        inputs,
                    );
                }
            }
            None => {} // reported by `mapping` as an unknown key, with what is allowed
        }
    }
}

/// One step's block: `config` and `inputs`.
fn parse_step(
    c: &mut Checker,
    body: &Value,
    path: &str,
    job: &Job,
    index: usize,
    configs: &mut BTreeMap<String, Value>,
    inputs: &mut Inputs,
) {
    let plan = job.plan();
    let step = &plan.steps[index].key;
    let Some(block) = c.mapping(body, path, &["config", "inputs"]) else {
        return;
    };
    if let Some(value) = block.get("config") {
        let cpath = join(path, "config");
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
                configs.insert(step.clone(), value.clone());
            }
        }
    }
    if let Some(given) = block.get("inputs") {
        let checked = parse_inputs(c, given, &join(path, "inputs"), job, index);
        inputs.insert(step.clone(), checked);
    }
}

/// `ops.<step>.inputs`: values of the inputs that `job!` marks `from_config!()`, each
/// checked against the input's type.
fn parse_inputs(
    c: &mut Checker,
    given: &Value,
    path: &str,
    job: &Job,
    index: usize,
) -> BTreeMap<String, Value> {
    let step = &job.plan().steps[index];
    let names: Vec<&str> = step.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut out = BTreeMap::new();
    let Some(map) = c.mapping(given, path, &names) else {
        return out;
    };
    for (name, value) in map {
        let Some(k) = step.inputs.iter().position(|i| &i.name == name) else {
            continue; // reported as an unknown key
        };
        let ipath = join(path, name);
        match job.step(index).inputs[k].from_config {
            None => c.problem(
                &ipath,
                format!(
                    "input `{name}` of step `{}` comes from its upstream step; only inputs \
                     wired `from_config!()` in the job take a value here",
                    step.key
                ),
            ),
            Some(read) => match read(value) {
                Ok(_) => {
                    out.insert(name.clone(), value.clone());
                }
                Err(e) => c.problem(
                    &ipath,
                    format!("does not fit `{}`: {e}", step.inputs[k].type_name),
                ),
            },
        }
    }
    out
}

/// Inputs wired `from_config!()` need a value in run config.
pub(super) fn check_required_inputs(
    c: &mut Checker,
    given: &BTreeMap<String, BTreeMap<String, Value>>,
    job: &Job,
) {
    for step in &job.plan().steps {
        for input in step.inputs.iter().filter(|i| i.from_config) {
            if !given
                .get(&step.key)
                .is_some_and(|inputs| inputs.contains_key(&input.name))
            {
                c.problem(
                    &format!("{}.inputs.{}", step_path(&step.key), input.name),
                    format!(
                        "required: the job takes input `{}` of step `{}` from run config, a `{}`",
                        input.name, step.key, input.type_name
                    ),
                );
            }
        }
    }
}

/// Ops that declare a config type that cannot be built from nothing (see
/// [`OpContext::config`](crate::op::OpContext::config)) need config.
pub(super) fn check_required_op_config(
    c: &mut Checker,
    given: &BTreeMap<String, Value>,
    job: &Job,
) {
    for (index, step) in job.plan().steps.iter().enumerate() {
        if given.contains_key(&step.key) {
            continue;
        }
        if let Some(spec) = job.step(index).spec.config {
            if let Err(e) = (spec.check_absent)() {
                c.problem(
                    &format!("{}.config", step_path(&step.key)),
                    format!(
                        "required: op `{}` takes config `{}` ({e})",
                        step.op, spec.type_name
                    ),
                );
            }
        }
    }
}
