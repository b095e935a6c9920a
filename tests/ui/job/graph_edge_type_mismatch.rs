use dagster_dask::prelude::*;

#[op]
fn words() -> Vec<String> {
    vec!["a".to_owned()]
}

#[op]
fn numbers() -> Vec<i64> {
    vec![1]
}

#[op]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

graph! {
    // Inside a graph: an edge of the wrong type.
    fn inside(raw: Vec<String>) -> i64 {
        total(raw)
    }
}

graph! {
    fn sums(raw: Vec<i64>) -> i64 {
        total(raw)
    }
}

graph! {
    // The tail is not the declared output.
    fn returns_the_wrong_type(raw: Vec<i64>) -> String {
        total(raw)
    }
}

graph! {
    // A graph returns what its body ends with.
    fn no_tail(raw: Vec<i64>) -> i64 {
        total(raw);
    }
}

job! {
    fn uses() {
        // At a graph's use: its input takes `Vec<i64>`.
        sums(words());
        sums(numbers());
    }
}

fn main() {}
