use dagster_dask::prelude::*;

#[op]
fn generic<T: Clone>(x: T) -> T {
    x
}

#[op(name = "not a name")]
fn badly_named() {}

#[op]
struct NotAFunction;

fn main() {}
