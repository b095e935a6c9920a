//! Dynamic outputs: one step per mapping key made at run time, chains per key, collect in
//! emission order, failures of one key, empty outputs, bad keys; the macro-free API.

use dagster_dask::dynamic::Dynamic;
use dagster_dask::graph::JobBuilder;
use dagster_dask::op::{OpDef, dynamic_out};
use dagster_dask::prelude::*;

fn squares(n: u64) -> Job {
    let numbers = OpDef::multi("numbers", [], dynamic_out("n"), move |_ctx, (): ()| {
        (1..=n).map(|i| (format!("n{i}"), i)).collect::<Dynamic<u64>>()
    });
    let square = OpDef::new("square", ["x"], |_ctx, (x,): (u64,)| x * x);
    let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (u64,)| x + 1);
    let total = OpDef::new("total", ["xs"], |_ctx, (xs,): (Vec<u64>,)| xs);
    let mut job = JobBuilder::new("squares");
    let n = job.add(&numbers, ());
    let squares = job.map(&square, n);
    let plus = job.map(&inc, squares);
    job.add(&total, plus.collect());
    job.build().unwrap()
}

#[test]
fn a_map_chain_runs_per_key_and_collects_in_order() {
    let result = squares(100).execute_in_process().unwrap();
    assert!(result.success(), "{:?}", result.events());
    let want: Vec<u64> = (1..=100).map(|i| i * i + 1).collect();
    assert_eq!(result.output::<Vec<u64>>("total").unwrap(), want);
    assert_eq!(result.step_status("square[n7]"), Some(StepStatus::Succeeded));
    assert_eq!(result.step_status("inc[n100]"), Some(StepStatus::Succeeded));
    assert_eq!(result.output::<u64>("inc[n3]").unwrap(), 10);
}
