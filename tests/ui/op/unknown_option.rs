use dagster_dask::prelude::*;

#[op(nmae = "typo", retries = 1)]
fn hello(name: String) -> String {
    name
}

fn main() {}
