use dagster_dask::prelude::*;

#[op]
fn numbers() -> Vec<u64> {
    vec![1, 2, 3]
}

#[op(out(evens, odds(optional)))]
fn split(xs: Vec<u64>) -> (Vec<u64>, Option<Vec<u64>>) {
    (xs.clone(), Some(xs))
}

#[op]
fn count(xs: Vec<u64>) -> usize {
    xs.len()
}

#[op]
fn half(n: usize) -> usize {
    n / 2
}

job! {
    fn wrong_arity() {
        let (evens, odds, rest) = split(numbers());
        count(evens);
    }
}

job! {
    fn wrong_handle_type() {
        let (evens, _) = split(numbers());
        half(evens);
    }
}

job! {
    fn both_outputs_as_one() {
        let parts = split(numbers());
        count(parts);
    }
}

fn main() {}
