//! The expansions of `#[op]` and `job!` use fully qualified paths: they compile in a crate
//! without the prelude.

#![no_implicit_prelude]

use ::dagster_dask::prelude::*;
use ::std::iter::Iterator;

/// Doubles, with every option the attribute has.
#[op(
    name = "twice",
    description = "Doubles.",
    tags(team = "hygiene", "dagster/priority" = "1", resource_requirements(GPU = 1, MEMORY = 10e9)),
    retry_policy(max_retries = 1, delay_ms = 5, backoff = linear, jitter = full)
)]
fn double(ctx: &OpContext, x: i64) -> ::std::result::Result<i64, ::std::string::String> {
    ctx.log().debug("doubling");
    ::std::result::Result::Ok(x * 2)
}

#[op(retries = 2)]
fn one() -> i64 {
    1
}

#[op]
fn sum(xs: ::std::vec::Vec<i64>) -> i64 {
    xs.iter().sum()
}

job! {
    #[job(tags(kind = "hygiene"))]
    fn hygienic() {
        let a = one();
        let b = double(a);
        sum(vec![a, b]);
        sum([a, b]).alias("sum_array");
    }
}

#[test]
fn expands_without_the_prelude() {
    let result = hygienic().execute_in_process().unwrap();
    ::std::assert_eq!(result.output::<i64>("sum").unwrap(), 3);
    ::std::assert_eq!(result.output::<i64>("sum_array").unwrap(), 3);
    let job = hygienic();
    let twice = job.plan().step("twice").unwrap();
    ::std::assert_eq!(twice.tags.values["dagster/priority"], "1");
    ::std::assert_eq!(twice.tags.resource_requirements["MEMORY"], 10e9);
}
