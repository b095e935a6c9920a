//! Building jobs: typed wiring, wiring by name, and whole-graph validation.

use dagster_dask::graph::{GraphProblem, JobBuilder};
use dagster_dask::op::{AnyOp, OpDef, RetryPolicy};
use dagster_dask::plan::Plan;

fn ops() -> (AnyOp, AnyOp, AnyOp, AnyOp) {
    let source = OpDef::new("source", [], |_ctx, (): ()| 1_i64).erase();
    let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (i64,)| x + 1).erase();
    let add = OpDef::new("add", ["a", "b"], |_ctx, (a, b): (i64, i64)| a + b).erase();
    let shout = OpDef::new("shout", ["s"], |_ctx, (s,): (String,)| s.to_uppercase()).erase();
    (source, inc, add, shout)
}

#[test]
fn typed_wiring_aliases_and_fan_in() {
    let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
    let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (i64,)| x + 1);
    let total = OpDef::new("total", ["xs"], |_ctx, (xs,): (Vec<i64>,)| {
        xs.iter().sum::<i64>()
    });
    let mut b = JobBuilder::new("typed");
    let x = b.add(&one, ());
    let y = b.add(&inc, x);
    let z = b.add(&inc, (y,));
    let w = b.add_as("third_inc", &inc, z);
    b.add(&total, ([x, y, z, w],));
    let job = b.build().unwrap();
    let keys: Vec<&str> = job.plan().steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["one", "inc", "inc_2", "third_inc", "total"]);
    let fan_in = &job.plan().step("total").unwrap().inputs[0];
    assert!(fan_in.fan_in);
    let sources: Vec<String> = fan_in.sources.iter().map(ToString::to_string).collect();
    assert_eq!(sources, ["one", "inc", "inc_2", "third_inc"]);
    let result = job.execute_in_process().unwrap();
    assert_eq!(result.output::<i64>("total").unwrap(), 1 + 2 + 3 + 4);
}

#[test]
fn wiring_by_name_runs_and_orders_topologically() {
    let (source, inc, add, _) = ops();
    let mut b = JobBuilder::new("by_name");
    // Declared out of order on purpose: the plan still puts upstreams first.
    b.add_by_name(&add, None, &[("a", "inc"), ("b", "source")]);
    b.add_by_name(&inc, None, &[("x", "source")]);
    b.add_by_name(&source, None, &[]);
    let job = b.build().unwrap();
    let keys: Vec<&str> = job.plan().steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["source", "inc", "add"]);
    assert_eq!(
        job.execute_in_process()
            .unwrap()
            .output::<i64>("add")
            .unwrap(),
        3
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let (source, inc, add, shout) = ops();
    let mut b = JobBuilder::new("broken");
    b.add_by_name(&source, None, &[]);
    // dangling: no step `nowhere`
    b.add_by_name(&inc, Some("dangling"), &[("x", "nowhere")]);
    // missing input `b`, unknown input `c`
    b.add_by_name(&add, Some("partial"), &[("a", "source"), ("c", "source")]);
    // type mismatch: i64 into String
    b.add_by_name(&shout, None, &[("s", "source")]);
    // duplicate explicit step names
    b.add_by_name(&inc, Some("twice"), &[("x", "source")]);
    b.add_by_name(&inc, Some("twice"), &[("x", "source")]);
    // a cycle of three
    b.add_by_name(&inc, Some("c1"), &[("x", "c3")]);
    b.add_by_name(&inc, Some("c2"), &[("x", "c1")]);
    b.add_by_name(&inc, Some("c3"), &[("x", "c2")]);
    // a self-loop
    b.add_by_name(&inc, Some("selfish"), &[("x", "selfish")]);
    // fan-in by name is refused
    b.add_by_name(&inc, Some("many"), &[("x", "source"), ("x", "twice")]);
    // a name that cannot be a path
    b.add_by_name(&source, Some("bad name/.."), &[]);

    let err = b.build().unwrap_err();
    let p = &err.problems;
    assert!(p.contains(&GraphProblem::DanglingInput {
        step: "dangling".into(),
        input: "x".into(),
        upstream: "nowhere".into(),
        outputs: vec![],
    }));
    assert!(p.contains(&GraphProblem::MissingInput {
        step: "partial".into(),
        input: "b".into(),
        type_name: "i64".into()
    }));
    assert!(p.iter().any(
        |x| matches!(x, GraphProblem::UnknownInput { input, known, .. }
        if input == "c" && known == &["a", "b"])
    ));
    assert!(p.contains(&GraphProblem::TypeMismatch {
        step: "shout".into(),
        input: "s".into(),
        expected: "alloc::string::String".into(),
        upstream: "source".into(),
        found: "i64".into()
    }));
    assert!(p.contains(&GraphProblem::DuplicateStep {
        step: "twice".into(),
        ops: vec!["inc".into(), "inc".into()]
    }));
    assert!(p.contains(&GraphProblem::Cycle {
        steps: vec!["c1".into(), "c2".into(), "c3".into()]
    }));
    assert!(p.contains(&GraphProblem::Cycle {
        steps: vec!["selfish".into()]
    }));
    assert!(
        p.iter()
            .any(|x| matches!(x, GraphProblem::FanInByName { step, .. } if step == "many"))
    );
    assert!(
        p.iter()
            .any(|x| matches!(x, GraphProblem::InvalidName { name, .. } if name == "bad name/.."))
    );
    assert_eq!(p.len(), 9, "{err}");

    let text = err.to_string();
    assert!(
        text.starts_with("job `broken` is invalid (9 problems):"),
        "{text}"
    );
    assert!(
        text.contains("steps form a cycle: c1 -> c2 -> c3 -> c1"),
        "{text}"
    );
    assert!(
        text.contains("step `shout` input `s` takes a `alloc::string::String`, but step `source` outputs a `i64`"),
        "{text}"
    );
    assert!(text.contains("is not wired to any step"), "{text}");
    assert!(text.contains("which does not exist"), "{text}");
}

#[test]
fn handles_from_another_builder_are_refused() {
    let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
    let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (i64,)| x + 1);
    let mut other = JobBuilder::new("other");
    let foreign = other.add(&one, ());
    let mut b = JobBuilder::new("mine");
    b.add(&inc, foreign);
    let err = b.build().unwrap_err();
    assert!(
        err.to_string().contains("handle from another JobBuilder"),
        "{err}"
    );
}

#[test]
fn auto_names_skip_taken_names() {
    let inc = OpDef::new("inc", [], |_ctx, (): ()| 1_i64);
    let mut b = JobBuilder::new("names");
    b.add_as("inc_2", &inc, ());
    b.add(&inc, ());
    b.add(&inc, ());
    let job = b.build().unwrap();
    let keys: Vec<&str> = job.plan().steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["inc_2", "inc", "inc_3"]);
}

#[test]
fn plan_carries_tags_resources_retries_and_renders() {
    let gpu = OpDef::new("train", ["rows"], |_ctx, (rows,): (Vec<f64>,)| rows.len())
        .description("Trains on a GPU.")
        .tag("team", "ml")
        .resource("GPU", 1.0)
        .resource("MEMORY", 10e9)
        .retry_policy(RetryPolicy::new(3));
    let load = OpDef::new("load", [], |_ctx, (): ()| vec![1.0_f64]);
    let mut b = JobBuilder::new("ml");
    let rows = b.add(&load, ());
    b.add(&gpu, rows);
    let job = b.build().unwrap();
    let plan = job.plan();

    let json = plan.to_json();
    assert!(
        json.contains("\"resource_requirements\": {\n          \"GPU\": 1,\n          \"MEMORY\": 10000000000\n"),
        "{json}"
    );
    let back = Plan::from_json(&json).unwrap();
    assert_eq!(&back, plan);
    let train = back.step("train").unwrap();
    assert_eq!(train.retry_policy.max_retries, 3);
    assert_eq!(train.tags.values["team"], "ml");
    assert_eq!(train.description.as_deref(), Some("Trains on a GPU."));

    let text = plan.to_text();
    assert!(text.contains("job `ml`: 2 steps"), "{text}");
    assert!(
        text.contains(
            "train -> usize  resources {\"GPU\":1,\"MEMORY\":10000000000}  retries 3  team=ml"
        ),
        "{text}"
    );
    assert!(text.contains("rows: Vec<f64> <- load"), "{text}");
    let mermaid = plan.to_mermaid();
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert!(mermaid.contains("load -->|rows| train"), "{mermaid}");
    let dot = plan.to_dot();
    assert!(
        dot.contains("\"load\" -> \"train\" [label=\"rows\"];"),
        "{dot}"
    );
}

#[test]
fn inconsistent_plan_json_is_refused() {
    let json = r#"{"job":"j","steps":[
        {"key":"b","op":"b",
         "inputs":[{"name":"x","type_name":"i64","sources":[{"step":"a","output":"result"}]}],
         "outputs":[{"name":"result","type_name":"i64"}]},
        {"key":"a","op":"a","inputs":[],"outputs":[{"name":"result","type_name":"i64"}]}]}"#;
    let err = Plan::from_json(json).unwrap_err().to_string();
    assert!(
        err.contains("step `b` input `x` reads `a`, which is not an output of an earlier step"),
        "{err}"
    );
    assert!(
        Plan::from_json("{")
            .unwrap_err()
            .to_string()
            .starts_with("not a plan")
    );
}

#[test]
fn ten_thousand_steps_build_quickly_enough_to_plan() {
    // Correctness at size, not speed: a wide, deep graph validates and orders.
    let job = tests::chain(10_000);
    assert_eq!(job.plan().steps.len(), 10_000);
    assert_eq!(job.plan().steps.last().unwrap().key, "inc_9999");
}

#[test]
fn one_upstream_feeding_two_inputs_is_one_dependency() {
    use dagster_dask::prelude::*;
    let one = OpDef::new("one", [], |_ctx, (): ()| 21_i64);
    let add = OpDef::new("add", ["a", "b"], |_ctx, (a, b): (i64, i64)| a + b);
    let mut b = JobBuilder::new("twice");
    let x = b.add(&one, ());
    b.add(&add, (x, x));
    let job = b.build().unwrap();
    assert_eq!(job.plan().upstream()[1], vec![0]);
    let result = job.execute_in_process().unwrap();
    assert_eq!(result.output::<i64>("add").unwrap(), 42);
}
