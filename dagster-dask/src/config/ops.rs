//! `ops.<step>.config`: each op's config, checked against the op's config type.

use std::collections::BTreeMap;

use serde_json::Value;

use super::check::{Checker, join};
use crate::graph::Job;

/// `ops`: each step's `config` and `inputs`.
pub(super) fn parse_ops(
    c: &mut Checker,
    ops: &Value,
    job: &Job,
) -> (
    BTreeMap<String, Value>,
    BTreeMap<String, BTreeMap<String, Value>>,
) {
    let plan = job.plan();
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    let (mut configs, mut inputs) = (BTreeMap::new(), BTreeMap::new());
    let Some(map) = c.mapping(ops, "ops", &keys) else {
        return (configs, inputs);
    };
    for (step, body) in map {
        let Some(index) = plan.index_of(step) else {
            continue; // reported by `mapping` as an unknown key, with the list of steps
        };
        let path = join("ops", step);
        let Some(block) = c.mapping(body, &path, &["config", "inputs"]) else {
            continue;
        };
        if let Some(value) = block.get("config") {
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
                    configs.insert(step.clone(), value.clone());
                }
            }
        }
        if let Some(given) = block.get("inputs") {
            let checked = parse_inputs(c, given, &join(&path, "inputs"), job, index);
            inputs.insert(step.clone(), checked);
        }
    }
    (configs, inputs)
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
                    &format!("ops.{}.inputs.{}", step.key, input.name),
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
