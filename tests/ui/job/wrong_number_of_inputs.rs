use dagster_dask::prelude::*;

#[op]
fn one() -> i64 {
    1
}

#[op]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

job! {
    fn too_few() {
        let x = one();
        add(x);
    }
}

job! {
    fn too_many() {
        let x = one();
        add(x, x, x);
    }
}

fn main() {}
