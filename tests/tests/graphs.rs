//! Nested graphs: used like ops, steps named after their instance, config nested in
//! Dagster's shape, tags and retry policies inherited, drawn as subgraphs.

use dagster_dask::events::EventKind;
use dagster_dask::prelude::*;

#[derive(Debug, serde::Deserialize)]
struct Scale {
    factor: i64,
}

#[op]
fn numbers() -> Vec<i64> {
    vec![3, 0, 1, 3]
}

#[op]
fn drop_zeros(xs: Vec<i64>) -> Vec<i64> {
    xs.into_iter().filter(|x| *x != 0).collect()
}

#[op(tags(owner = "op"))]
fn dedupe(mut xs: Vec<i64>) -> Vec<i64> {
    xs.sort_unstable();
    xs.dedup();
    xs
}

#[op(config = Scale, retries = 3)]
fn scale(ctx: &OpContext, xs: Vec<i64>) -> Result<Vec<i64>, BoxError> {
    let cfg: Scale = ctx.config()?;
    Ok(xs.iter().map(|x| x * cfg.factor).collect())
}

#[op]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[op]
fn count(xs: Vec<i64>) -> usize {
    xs.len()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

graph! {
    /// Drops zeros and duplicates.
    #[graph(tags(owner = "graph", team = "data"), retries = 1)]
    fn clean(raw: Vec<i64>) -> Vec<i64> {
        let t = drop_zeros(raw);
        dedupe(t)
    }
}

graph! {
    /// Cleans, scales, and gives two results.
    fn prepare(raw: Vec<i64>) -> (i64, usize) {
        let cleaned = clean(raw);
        let scaled = scale(cleaned);
        (total(scaled), count(cleaned))
    }
}

job! {
    fn pipeline() {
        let xs = numbers();
        let (sum, _) = prepare(xs);
        clean(xs).alias("clean_again");
        total(vec![sum, sum]).alias("twice");
        count(drop_zeros(xs)).alias("n_direct");
    }
}

fn config(factor: i64) -> RunConfig {
    RunConfig::from_yaml(
        &format!(
            "ops: {{ prepare: {{ ops: {{ scale: {{ config: {{ factor: {factor} }} }} }} }} }}"
        ),
        &pipeline(),
    )
    .unwrap()
}

#[test]
fn steps_are_named_after_their_graph_instance_and_run() {
    let job = pipeline();
    let keys: Vec<&str> = job.plan().steps.iter().map(|s| s.key.as_str()).collect();
    for key in [
        "prepare.clean.drop_zeros",
        "prepare.clean.dedupe",
        "prepare.scale",
        "prepare.total",
        "prepare.count",
        "clean_again.drop_zeros",
        "clean_again.dedupe",
        "twice",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    let result = Run::new(&job)
        .config(config(10))
        .in_memory()
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(result.output::<i64>("prepare.total").unwrap(), 40);
    assert_eq!(result.output::<usize>("prepare.count").unwrap(), 2);
    assert_eq!(result.output::<i64>("twice").unwrap(), 80);
    assert_eq!(
        result.output::<Vec<i64>>("clean_again.dedupe").unwrap(),
        [1, 3]
    );
}

#[test]
fn config_of_a_step_in_a_graph_is_nested_and_checked_with_its_path() {
    let job = pipeline();
    let err = RunConfig::from_yaml("", &job).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.path == "ops.prepare.ops.scale.config" && p.message.contains("required")),
        "{err}"
    );
    let err = RunConfig::from_yaml(
        "ops: { prepare: { ops: { scale: { config: { factor: two } }, nope: {} } } }",
        &job,
    )
    .unwrap_err();
    let at = |path: &str| err.problems.iter().find(|p| p.path == path);
    assert!(
        at("ops.prepare.ops.scale.config").is_some_and(|p| p.message.contains("does not fit")),
        "{err}"
    );
    assert!(
        at("ops.prepare.ops.nope").is_some_and(|p| p.message.contains("`clean`, `scale`")),
        "{err}"
    );
    // What step processes get reads back the same.
    let cfg = config(2);
    assert_eq!(RunConfig::from_value(&cfg.to_value(), &job).unwrap(), cfg);
}

#[test]
fn tags_and_retry_policies_of_a_graph_apply_unless_an_op_sets_its_own() {
    let plan = pipeline().plan().clone();
    let step = |key: &str| plan.step(key).unwrap().clone();
    let drop = step("prepare.clean.drop_zeros");
    assert_eq!(drop.tags.values["owner"], "graph");
    assert_eq!(drop.tags.values["team"], "data");
    assert_eq!(drop.retry_policy.max_retries, 1);
    let dedupe = step("prepare.clean.dedupe");
    assert_eq!(dedupe.tags.values["owner"], "op", "the op's own tag wins");
    assert_eq!(
        step("prepare.scale").retry_policy.max_retries,
        3,
        "its own policy wins"
    );
    assert!(step("n_direct").tags.values.is_empty(), "outside the graph");
    assert_eq!(step("drop_zeros").retry_policy.max_retries, 0);
}

#[test]
fn graphs_are_drawn_as_subgraphs() {
    let plan = pipeline().plan().clone();
    let mermaid = plan.to_mermaid();
    assert!(
        mermaid.contains("    subgraph prepare[\"prepare\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("        subgraph prepare__clean[\"clean\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("            prepare__clean__dedupe[\"dedupe<br/>Vec<i64>\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("prepare__clean__dedupe -->|xs| prepare__scale"),
        "{mermaid}"
    );
    let dot = plan.to_dot();
    assert!(dot.contains("subgraph \"cluster_prepare.clean\""), "{dot}");
    assert!(
        dot.contains("\"prepare.clean.dedupe\" -> \"prepare.scale\" [label=\"xs\"];"),
        "{dot}"
    );
}

#[test]
fn a_retry_policy_from_a_graph_retries_its_ops() {
    // `scale` fails without config of the right shape at run time only if skipped by
    // validation; use the macro-free API to make an op that fails once.
    use dagster_dask::graph::{GraphDef, GraphInput};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let flaky = OpDef::try_new("flaky", ["x"], |_ctx, (x,): (i64,)| {
        if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
            Err("first call fails")
        } else {
            Ok(x)
        }
    });
    let g = GraphDef::new(
        "g",
        ["x"],
        move |b: &mut JobBuilder, (x,): (GraphInput<i64>,)| b.add(&flaky, x),
    )
    .retry_policy(RetryPolicy::new(1));
    let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
    let mut b = JobBuilder::new("retrying");
    let x = b.add(&one, ());
    b.add_graph(&g, x);
    let result = b.build().unwrap().execute_in_process().unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert!(
        result
            .step_events("g.flaky")
            .any(|e| matches!(e.kind, EventKind::StepUpForRetry { .. }))
    );
}
