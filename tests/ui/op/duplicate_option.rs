use dagster_dask::prelude::*;

#[op(retries = 1, retries = 2)]
fn hello(name: String) -> String {
    name
}

#[op(retries = 1, retry_policy(max_retries = 2))]
fn both(name: String) -> String {
    name
}

fn main() {}
