use dagster_dask::prelude::*;

#[op(retry_policy(max_retries = 2, backoff = quadratic, wait = 3))]
fn flaky() {}

#[op(retry_policy(delay_ms = 10))]
fn no_max() {}

fn main() {}
