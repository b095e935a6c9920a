use dagster_dask::prelude::*;

#[op(tags(resource_requirements(GPU = "one")))]
fn string_amount() {}

#[op(tags(resource_requirements(GPU = -1)))]
fn negative() {}

#[op(tags(resource_requirements(GPU)))]
fn no_amount() {}

#[op(tags(resource_requirements()))]
fn empty() {}

#[op(tags(team = 3))]
fn tag_not_a_string() {}

fn main() {}
