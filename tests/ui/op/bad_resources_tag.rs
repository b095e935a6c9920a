use dagster_dask::prelude::*;

#[op(tags("dagster-dask/resource_requirements" = "GPU=1"))]
fn not_json() -> u8 {
    1
}

#[op(tags("dagster-dask/resource_requirements" = r#"{"GPU": "one"}"#))]
fn not_a_number() -> u8 {
    1
}

fn main() {}
