use dagster_dask::prelude::*;

struct NotSerde {
    _x: i32,
}

#[op]
fn takes(x: NotSerde) -> i32 {
    x._x
}

#[op]
fn gives() -> NotSerde {
    NotSerde { _x: 1 }
}

#[op]
fn borrows(name: &str) -> usize {
    name.len()
}

fn main() {}
