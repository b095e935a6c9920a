use dagster_dask::prelude::*;

#[op]
fn inc(x: i64) -> i64 {
    x + 1
}

job! {
    fn cyclic() {
        let a = inc(b);
        let b = inc(a);
    }
}

fn main() {}
