use dagster_dask::prelude::*;

#[op]
fn count() -> i64 {
    3
}

#[op]
fn name() -> String {
    "dask".to_owned()
}

#[op]
fn greet(name: String, times: i64) -> String {
    name.repeat(times as usize)
}

#[op]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

job! {
    fn swapped() {
        let n = count();
        let s = name();
        greet(n, s);
    }
}

job! {
    fn bad_fan_in() {
        let n = count();
        let s = name();
        total([n, s]);
    }
}

fn main() {}
