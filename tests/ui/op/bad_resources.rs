use dagster_dask::prelude::*;

struct Counter;

// `&str` is not a resource: inputs are owned.
#[op]
fn greet(name: &str) -> String {
    name.to_owned()
}

// Resources are shared.
#[op]
fn bump(counter: &mut Counter) -> u32 {
    let _ = counter;
    1
}

fn main() {}
