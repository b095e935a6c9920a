use dagster_dask::prelude::*;

#[op(out(items(dynamic)))]
fn not_dynamic() -> Vec<u64> {
    vec![1]
}

#[op(out(items(dynamc)))]
fn bad_flag() -> Vec<u64> {
    vec![1]
}

fn main() {}
