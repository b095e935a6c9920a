//! `#[op]` and `job!` at work, under strict lints: the expansions must not set off
//! `missing_docs`, `unused` or `clippy::pedantic` in the user's crate (CI runs clippy over
//! this file with the deny below).

#![deny(missing_docs, unused, clippy::pedantic)]

use std::time::Duration;

use dagster_dask::events::{ErrorKind, EventKind};
use dagster_dask::op::{Backoff, RetryPolicy};
use dagster_dask::prelude::*;

#[path = "../../examples/no_macros.rs"]
#[allow(dead_code, unreachable_pub, clippy::pedantic)]
mod no_macros;

use no_macros::{ScaleConfig, Stats};

/// Loads the readings.
#[op]
fn load(ctx: &OpContext) -> Vec<f64> {
    ctx.log().info("loading readings");
    vec![3.0, 1.5, 4.0, 1.0, 5.5, 9.0]
}

// Ops own their inputs (they are loaded from storage for them): pedantic's
// `needless_pass_by_value` is about the user's signature, not the expansion.
#[op(config = ScaleConfig, retry_policy(max_retries = 2, delay_ms = 100, backoff = exponential))]
#[allow(clippy::needless_pass_by_value)]
fn scale(
    ctx: &OpContext,
    readings: Vec<f64>,
) -> Result<Vec<f64>, Box<dyn std::error::Error + Send + Sync>> {
    let cfg: ScaleConfig = ctx.config()?;
    Ok(readings.iter().map(|x| x * cfg.factor).collect())
}

#[op(tags(team = "analytics", resource_requirements(GPU = 1)))]
#[allow(clippy::cast_precision_loss, clippy::needless_pass_by_value)]
fn stats(readings: Vec<f64>) -> Stats {
    Stats {
        count: readings.len(),
        mean: readings.iter().sum::<f64>() / readings.len().max(1) as f64,
        max: readings.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

#[op]
#[allow(clippy::needless_pass_by_value)]
fn report(stats: Stats) -> String {
    format!(
        "{} readings, mean {:.2}, max {:.2}",
        stats.count, stats.mean, stats.max
    )
}

job! {
    /// Scales readings and reports their statistics.
    fn stats_twin() {
        let readings = load();
        let scaled = scale(readings);
        let summary = stats(scaled);
        report(summary);
    }
}

#[test]
fn the_macro_twin_has_the_same_plan_as_the_builder_job() {
    let by_hand = no_macros::stats_job();
    let by_macro = stats_twin();
    // The job names differ by design (`stats` is the example's); everything else is equal.
    let mut expected = by_hand.plan().clone();
    expected.job = "stats_twin".to_owned();
    assert_eq!(by_macro.plan(), &expected);
    assert_eq!(
        by_macro.plan().step("scale").unwrap().retry_policy,
        RetryPolicy::new(2)
            .with_delay(Duration::from_millis(100))
            .with_backoff(Backoff::Exponential)
    );
}

#[test]
fn gpu_tag_reaches_the_plan_as_dask_resources() {
    let plan = tests::gpu().plan().clone();
    let train = plan.step("train_1").unwrap();
    assert_eq!(train.tags.resource_requirements.get("GPU"), Some(&1.0));
    let json = plan.to_json();
    assert!(
        json.contains("\"resource_requirements\": {\n          \"GPU\": 1\n"),
        "{json}"
    );
    assert!(
        plan.step("cpu_side")
            .unwrap()
            .tags
            .resource_requirements
            .is_empty()
    );
}

/// Doubles a number.
#[op]
#[allow(clippy::unused_async)] // an async op, on purpose
async fn double(x: i64) -> i64 {
    x * 2
}

#[op]
fn one() -> i64 {
    1
}

#[op(name = "sum_all")]
#[allow(clippy::needless_pass_by_value)]
fn sum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

job! {
    /// Nested calls, aliases, arrays and vectors of handles.
    #[job(name = "shapes", tags(owner = "tests"))]
    fn shapes_job() {
        let a = one();
        let b = double(a);
        let c = double(b).alias("quadruple");
        let all = [a, b, c];
        sum(all);
        sum(vec![double(a), double(c)]).alias("doubled_sum");
    }
}

#[test]
fn job_shapes_wire_and_run() {
    let job = shapes_job();
    let plan = job.plan();
    assert_eq!(plan.job, "shapes");
    assert_eq!(plan.tags["owner"], "tests");
    assert_eq!(
        plan.description.as_deref(),
        Some("Nested calls, aliases, arrays and vectors of handles.")
    );
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "one",
            "double",
            "quadruple",
            "sum_all",
            "double_2",
            "double_3",
            "doubled_sum"
        ]
    );
    assert_eq!(
        plan.step("double").unwrap().description.as_deref(),
        Some("Doubles a number.")
    );
    let result = job.execute_in_process().unwrap();
    assert_eq!(result.output::<i64>("sum_all").unwrap(), 1 + 2 + 4);
    assert_eq!(result.output::<i64>("doubled_sum").unwrap(), 2 + 8);
}

#[test]
fn the_op_function_stays_callable() {
    assert_eq!(one(), 1);
    assert_eq!(sum(vec![1, 2]), 3);
    assert_eq!(one::NAME, "one");
    assert_eq!(sum::NAME, "sum_all");
    assert_eq!(dagster_dask::__private::block_on(double(4)), 8);
}

#[test]
fn fallible_ops_fail_with_their_error_chain() {
    let result = tests::failing().execute_in_process().unwrap();
    assert_eq!(result.status(), RunStatus::Failure);
    let error = result
        .step_events("boom")
        .find_map(|e| match &e.kind {
            EventKind::StepFailure { error, .. } => Some(error.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(error.kind, ErrorKind::Op);
    assert_eq!(error.causes, ["disk on fire"]);
}

#[op]
fn dawdle() -> u8 {
    std::thread::sleep(std::time::Duration::from_secs(30));
    1
}

job! {
    /// A run limited by Dagster's tag on the job.
    #[job(tags("dagster/max_runtime" = "0.5", owner = "tests"))]
    fn limited_job() {
        dawdle();
    }
}

#[test]
fn a_job_tag_with_a_string_key_limits_the_run() {
    let job = limited_job();
    assert_eq!(job.plan().tags["dagster/max_runtime"], "0.5");
    assert_eq!(
        job.plan().max_runtime(),
        Some(std::time::Duration::from_millis(500))
    );
    let started = std::time::Instant::now();
    let result = job.execute_in_process().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(result.status(), RunStatus::Failure);
}

/// Ported from Python as Dagster writes it.
#[op(tags("dagster-dask/resource_requirements" = r#"{"GPU": 1, "MEMORY": 10e9}"#))]
fn ported() -> u8 {
    1
}

job! {
    /// A ported GPU op.
    fn ported_job() {
        ported();
    }
}

#[test]
fn dagsters_literal_resource_tag_sets_the_resource_requirements() {
    let plan = ported_job().plan().clone();
    let tags = &plan.step("ported").unwrap().tags;
    assert_eq!(tags.resource_requirements.get("GPU"), Some(&1.0));
    assert_eq!(tags.resource_requirements.get("MEMORY"), Some(&10e9));
    assert!(tags.values.is_empty(), "{tags:?}");

    // The macro-free API honours it the same way, and refuses a value that does not parse.
    let op = OpDef::new("gpu", [], |_ctx, (): ()| 1_u8)
        .tag("dagster-dask/resource_requirements", r#"{"GPU": 2}"#);
    let mut b = JobBuilder::new("j");
    b.add(&op, ());
    let plan = b.build().unwrap().plan().clone();
    assert_eq!(
        plan.steps[0].tags.resource_requirements.get("GPU"),
        Some(&2.0)
    );
    let bad = OpDef::new("gpu", [], |_ctx, (): ()| 1_u8)
        .tag("dagster-dask/resource_requirements", "GPU=1");
    let mut b = JobBuilder::new("j");
    b.add(&bad, ());
    let err = b.build().unwrap_err().to_string();
    assert!(
        err.contains("dagster-dask/resource_requirements") && err.contains("OpDef::resource"),
        "{err}"
    );
}
