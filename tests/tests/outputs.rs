//! Multiple and optional outputs: stored and loaded one by one, skips when one is not
//! produced, fan-in lists of what was produced; through the macros and the macro-free API.

use dagster_dask::config::RunConfig;
use dagster_dask::events::EventKind;
use dagster_dask::graph::{GraphProblem, JobBuilder};
use dagster_dask::op::{OpDef, optional_out, out};
use dagster_dask::prelude::*;

fn run_split(odds: bool) -> RunResult {
    let job = tests::numbers_split();
    let config = RunConfig::from_yaml(
        &format!("ops: {{ split: {{ config: {{ odds: {odds} }} }} }}"),
        &job,
    )
    .unwrap();
    Run::new(&job).config(config).in_memory().execute().unwrap()
}

fn outputs_stored(result: &RunResult, step: &str) -> Vec<String> {
    result
        .step_events(step)
        .filter_map(|e| match &e.kind {
            EventKind::StepOutput { output, .. } => Some(output.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn each_output_is_stored_and_read_on_its_own() {
    let result = run_split(true);
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(outputs_stored(&result, "split"), ["evens", "odds"]);
    assert_eq!(
        result.output::<Vec<u64>>("split.evens").unwrap(),
        [2, 4, 6, 8, 10]
    );
    assert_eq!(
        result.output::<Vec<u64>>("split.odds").unwrap(),
        [1, 3, 5, 7, 9]
    );
    // A downstream step loads only the output it takes.
    let loaded: Vec<String> = result
        .step_events("sum_of_odds")
        .filter_map(|e| match &e.kind {
            EventKind::LoadedInput { upstream, .. } => Some(upstream.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(loaded, ["split.odds"]);
    assert_eq!(result.output::<u64>("sum_all").unwrap(), 55);
    assert_eq!(result.output::<f64>("mean").unwrap(), 5.0);
    // One named output: the step's key names it, and so does `step.output`.
    assert_eq!(result.output::<u64>("largest_odd").unwrap(), 9);
    assert_eq!(result.output::<u64>("largest.largest").unwrap(), 10);
    let err = result.output::<Vec<u64>>("split").unwrap_err().to_string();
    assert!(
        err.contains("step `split` has several outputs: name one of split.evens, split.odds"),
        "{err}"
    );
}

#[test]
fn an_output_not_produced_skips_what_reads_it_and_the_run_succeeds() {
    let result = run_split(false);
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(outputs_stored(&result, "split"), ["evens"]);
    for step in ["sum_of_odds", "count_of", "largest_odd"] {
        assert_eq!(
            result.step_status(step),
            Some(StepStatus::Skipped),
            "{step}"
        );
        let skipped = result
            .step_events(step)
            .find_map(|e| match &e.kind {
                EventKind::StepSkipped { not_produced, .. } => Some(not_produced.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(skipped, ["split.odds"], "{step}");
    }
    // Downstream of a step skipped so: skipped too, naming it.
    assert!(result.step_events("mean").any(|e| matches!(&e.kind,
        EventKind::StepSkipped { upstream, .. } if upstream == &["sum_of_odds", "count_of"])));
    // Steps that do not read it run; the fan-in list gets what was produced.
    assert_eq!(result.step_status("largest"), Some(StepStatus::Succeeded));
    assert_eq!(result.output::<u64>("sum_all").unwrap(), 30);
    let parts = result
        .step_events("sum_all")
        .filter(|e| matches!(e.kind, EventKind::LoadedInput { .. }))
        .count();
    assert_eq!(parts, 1);
}

#[test]
fn a_fan_in_whose_items_were_all_not_produced_is_skipped() {
    let maybe = OpDef::multi("maybe", [], optional_out::<u64>("value"), |_ctx, (): ()| {
        None::<u64>
    });
    let sum = OpDef::new("sum", ["xs"], |_ctx, (xs,): (Vec<u64>,)| {
        xs.iter().sum::<u64>()
    });
    let mut b = JobBuilder::new("none_produced");
    let a = b.add(&maybe, ());
    let c = b.add(&maybe, ());
    b.add(&sum, ([a, c],));
    let job = b.build().unwrap();
    let result = Run::new(&job).in_memory().execute().unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(result.step_status("sum"), Some(StepStatus::Skipped));
}

#[test]
fn outputs_wire_by_name_as_step_dot_output() {
    let split = OpDef::multi("split", [], (out("small"), out("large")), |_ctx, (): ()| {
        (1_i64, 1000_i64)
    });
    let neg = OpDef::new("neg", ["x"], |_ctx, (x,): (i64,)| -x);
    let mut b = JobBuilder::new("by_name");
    b.add_by_name(&split.erase(), None, &[]);
    b.add_by_name(&neg.erase(), Some("neg_large"), &[("x", "split.large")]);
    let job = b.build().unwrap();
    let source = &job.plan().step("neg_large").unwrap().inputs[0].sources[0];
    assert_eq!(source.to_string(), "split.large");
    let result = Run::new(&job).in_memory().execute().unwrap();
    assert_eq!(result.output::<i64>("neg_large").unwrap(), -1000);

    // A step with several outputs must be wired by one of them.
    let mut b = JobBuilder::new("by_name");
    b.add_by_name(&split.erase(), None, &[]);
    b.add_by_name(&neg.erase(), None, &[("x", "split")]);
    b.add_by_name(&neg.erase(), Some("other"), &[("x", "split.nope")]);
    let problems = b.build().unwrap_err().problems;
    let outputs = vec!["split.small".to_owned(), "split.large".to_owned()];
    assert!(problems.contains(&GraphProblem::DanglingInput {
        step: "neg".into(),
        input: "x".into(),
        upstream: "split".into(),
        outputs: outputs.clone(),
    }));
    assert!(problems.contains(&GraphProblem::DanglingInput {
        step: "other".into(),
        input: "x".into(),
        upstream: "split.nope".into(),
        outputs,
    }));
}

#[test]
fn plans_name_outputs_as_step_dot_output() {
    let plan = tests::numbers_split().plan().clone();
    let text = plan.to_text();
    assert!(
        text.contains("split -> (evens: Vec<u64>, odds?: Vec<u64>)"),
        "{text}"
    );
    assert!(text.contains("xs: Vec<u64> <- split.odds"), "{text}");
    let mermaid = plan.to_mermaid();
    assert!(
        mermaid.contains("split -->|odds -> xs| count_of"),
        "{mermaid}"
    );
    let split = plan.step("split").unwrap();
    assert_eq!(split.outputs.len(), 2);
    assert!(!split.outputs[0].optional && split.outputs[1].optional);
}
