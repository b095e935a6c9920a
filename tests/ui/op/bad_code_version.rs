use dagster_dask::prelude::*;

#[op(code_version = "")]
fn unversioned() -> u8 {
    1
}

fn main() {}
