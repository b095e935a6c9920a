use dagster_dask::prelude::*;

// Three names, two values.
#[op(out(a, b, c))]
fn three_names(xs: Vec<u64>) -> (Vec<u64>, Vec<u64>) {
    (xs.clone(), xs)
}

// Two names, one value that is not a tuple.
#[op(out(a, b))]
fn not_a_tuple(xs: Vec<u64>) -> Vec<u64> {
    xs
}

// An optional output is returned as an `Option`.
#[op(out(evens, odds(optional)))]
fn not_an_option(xs: Vec<u64>) -> (Vec<u64>, Vec<u64>) {
    (xs.clone(), xs)
}

// Names: twice, a flag that is not `optional`, none at all.
#[op(out(a, a))]
fn twice(x: u64) -> (u64, u64) {
    (x, x)
}

#[op(out(a(required)))]
fn unknown_flag(x: u64) -> u64 {
    x
}

#[op(out())]
fn no_names(x: u64) -> u64 {
    x
}

fn main() {}
