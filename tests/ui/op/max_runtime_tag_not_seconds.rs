use dagster_dask::prelude::*;

#[op(tags("dagster/max_runtime" = "soon"))]
fn soon() {}

#[op(max_runtime = 30, tags("dagster/max_runtime" = "60"))]
fn both() {}

fn main() {}
