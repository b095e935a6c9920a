use dagster_dask::dynamic::Dynamic;
use dagster_dask::prelude::*;

#[op]
fn numbers() -> Vec<u64> {
    vec![1, 2, 3]
}

#[op(out(items(dynamic)))]
fn fan_out() -> Dynamic<u64> {
    Dynamic::new()
}

#[op]
fn double(x: u64) -> u64 {
    2 * x
}

#[op]
fn describe(x: String) -> usize {
    x.len()
}

#[op]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

job! {
    fn map_over_a_plain_output() {
        let xs = numbers();
        xs.map(double);
    }
}

job! {
    fn collect_a_plain_output() {
        let xs = numbers();
        total(xs.collect());
    }
}

job! {
    fn a_dynamic_output_passed_as_a_value() {
        let items = fan_out();
        double(items);
    }
}

job! {
    fn map_an_op_of_another_type() {
        let items = fan_out();
        items.map(describe);
    }
}

job! {
    fn map_without_an_op() {
        let items = fan_out();
        items.map(double(items));
    }
}

job! {
    fn a_body_with_two_values() {
        let items = fan_out();
        items.map(|a, b| double(a));
    }
}

job! {
    fn an_alias_on_a_body() {
        let items = fan_out();
        items.map(|x| double(x)).alias("twice");
    }
}

fn main() {}
