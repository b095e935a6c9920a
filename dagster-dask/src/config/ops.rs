//! `ops.<step>.config`: each op's config, checked against the op's config type.

use std::collections::BTreeMap;

use serde_json::Value;

use super::check::{Checker, join};
use crate::graph::Job;

pub(super) fn parse_ops(c: &mut Checker, ops: &Value, job: &Job) -> BTreeMap<String, Value> {
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
        let Some((value, cpath)) = c.config_of(body, &join("ops", step)) else {
            continue;
        };
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
