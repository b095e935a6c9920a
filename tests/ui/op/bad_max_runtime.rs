use dagster_dask::prelude::*;

#[op(max_runtime = 0)]
fn never() {}

#[op(max_runtime = "an hour")]
fn words() {}

fn main() {}
