//! Dynamic outputs: one step per mapping key made at run time, chains per key, collect in
//! emission order, failures of one key, empty outputs, bad keys; the macro-free API.

use dagster_dask::dynamic::Dynamic;
use dagster_dask::graph::JobBuilder;
use dagster_dask::op::{OpDef, dynamic_out};
use dagster_dask::prelude::*;

fn squares(n: u64) -> Job {
    let numbers = OpDef::multi("numbers", [], dynamic_out("n"), move |_ctx, (): ()| {
        (1..=n)
            .map(|i| (format!("n{i}"), i))
            .collect::<Dynamic<u64>>()
    });
    let square = OpDef::new("square", ["x"], |_ctx, (x,): (u64,)| x * x);
    let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (u64,)| x + 1);
    let total = OpDef::new("total", ["xs"], |_ctx, (xs,): (Vec<u64>,)| xs);
    let mut job = JobBuilder::new("squares");
    let n = job.add(&numbers, ());
    let squares = job.map(&square, n);
    let plus = job.map(&inc, squares);
    job.add(&total, plus.collect());
    job.build().unwrap()
}

#[test]
fn a_map_chain_runs_per_key_and_collects_in_order() {
    let result = squares(100).execute_in_process().unwrap();
    assert!(result.success(), "{:?}", result.events());
    let want: Vec<u64> = (1..=100).map(|i| i * i + 1).collect();
    assert_eq!(result.output::<Vec<u64>>("total").unwrap(), want);
    assert_eq!(
        result.step_status("square[n7]"),
        Some(StepStatus::Succeeded)
    );
    assert_eq!(result.step_status("inc[n100]"), Some(StepStatus::Succeeded));
    assert_eq!(result.output::<u64>("inc[n3]").unwrap(), 10);
}

fn run_mapped(yaml: &str) -> RunResult {
    let job = tests::mapped();
    let config = dagster_dask::config::RunConfig::from_yaml(yaml, &job).unwrap();
    Run::new(&job).config(config).in_memory().execute().unwrap()
}

#[test]
fn the_macros_map_and_collect_per_mapping_key() {
    let result = run_mapped("ops: { emit_keys: { config: { count: 100 } } }");
    assert!(result.success(), "{:?}", result.events());
    let want: u64 = (1..=100).map(|i| 9 * i / 2).sum();
    assert_eq!(result.output::<u64>("add_up").unwrap(), want);
    assert_eq!(result.output::<u64>("listed").unwrap(), 5050);
    // 1 producer, 100 + 100 mapped steps, 2 collects
    let ran = result
        .events()
        .iter()
        .filter(|e| matches!(e.kind, dagster_dask::events::EventKind::StepSuccess { .. }))
        .count();
    assert_eq!(ran, 203);
}

#[test]
fn a_failing_mapping_key_skips_the_collect_but_not_its_siblings() {
    let result = run_mapped(
        "ops: { emit_keys: { config: { count: 10 } }, halve: { config: { fail: k7 } } }",
    );
    assert_eq!(result.status(), RunStatus::Failure);
    assert_eq!(result.step_status("halve[k7]"), Some(StepStatus::Failed));
    for k in (1..=10).filter(|&k| k != 7) {
        assert_eq!(
            result.step_status(&format!("halve[k{k}]")),
            Some(StepStatus::Succeeded),
            "k{k}"
        );
    }
    assert_eq!(result.step_status("add_up"), Some(StepStatus::Skipped));
    assert_eq!(result.step_status("listed"), Some(StepStatus::Succeeded));
    let failure = result
        .step_events("halve[k7]")
        .find_map(|e| match &e.kind {
            dagster_dask::events::EventKind::StepFailure { error, .. } => {
                Some(error.message.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(failure.contains("halve[k7]"), "{failure}");
}

#[test]
fn an_empty_dynamic_output_skips_what_collects_it_and_the_run_succeeds() {
    let result = run_mapped("ops: { emit_keys: { config: { count: 0 } } }");
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(result.step_status("add_up"), Some(StepStatus::Skipped));
    assert_eq!(result.step_status("listed"), Some(StepStatus::Skipped));
    assert_eq!(
        result.step_status("triple"),
        None,
        "a template is not a step of the run"
    );
}

fn keyed(keys: &'static [&'static str]) -> Job {
    let emit = OpDef::multi("emit", [], dynamic_out("items"), move |_ctx, (): ()| {
        keys.iter().map(|k| (*k, 1_u64)).collect::<Dynamic<u64>>()
    });
    let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (u64,)| x + 1);
    let mut job = JobBuilder::new("keyed");
    let items = job.add(&emit, ());
    job.map(&inc, items);
    job.build().unwrap()
}

fn failure_of(result: &RunResult, step: &str) -> String {
    result
        .step_events(step)
        .find_map(|e| match &e.kind {
            dagster_dask::events::EventKind::StepFailure { error, .. } => Some(error.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no failure of {step}: {:?}", result.events()))
}

#[test]
fn duplicate_or_invalid_mapping_keys_fail_the_producing_step() {
    let result = keyed(&["a", "b", "a"]).execute_in_process().unwrap();
    assert_eq!(result.step_status("emit"), Some(StepStatus::Failed));
    let error = failure_of(&result, "emit");
    assert!(
        error.contains("`a` is emitted twice (items 1 and 3)"),
        "{error}"
    );
    let result = keyed(&["a.csv"]).execute_in_process().unwrap();
    let error = failure_of(&result, "emit");
    assert!(
        error.contains("mapping key `a.csv`") && error.contains("letters, digits"),
        "{error}"
    );
    assert!(result.step_status("inc[a_csv]").is_none());
}

#[test]
fn the_plan_shows_the_dynamic_part_as_such() {
    let text = tests::mapped().plan().to_text();
    assert!(text.contains("triple[*]"), "{text}");
    assert!(text.contains("mapped over emit_keys.numbers"), "{text}");
    assert!(text.contains("numbers: Dynamic<u64>"), "{text}");
    assert!(text.contains("<- halve[*] (collect)"), "{text}");
}

fn started(result: &RunResult) -> Vec<String> {
    result
        .events()
        .iter()
        .filter(|e| matches!(e.kind, dagster_dask::events::EventKind::StepStart))
        .filter_map(|e| e.step_key.clone())
        .collect()
}

#[test]
fn a_reexecution_from_failure_runs_only_the_failed_mapping_key_and_the_collect() {
    let dir = tempfile::tempdir().unwrap();
    let job = tests::mapped();
    let yaml = |fail: &str| {
        format!(
            "ops: {{ emit_keys: {{ config: {{ count: 10 }} }}, halve: {{ config: {{ fail: {fail} }} }} }}\n\
             resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}",
            dir.path().display()
        )
    };
    let config = |fail| dagster_dask::config::RunConfig::from_yaml(&yaml(fail), &job).unwrap();
    let parent = Run::new(&job).config(config("k7")).execute().unwrap();
    assert_eq!(parent.step_status("add_up"), Some(StepStatus::Skipped));

    let result = Run::new(&job)
        .config(config("none"))
        .reexecute(parent.run_id())
        .from_failure(true)
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(started(&result), ["halve[k7]", "add_up"]);
    // Where the events say a made step's output went is where it is.
    let location = result
        .step_events("halve[k7]")
        .find_map(|e| match &e.kind {
            dagster_dask::events::EventKind::HandledOutput { location, .. } => {
                Some(location.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(location.ends_with("/halve/k7/result"), "{location}");
    assert!(std::path::Path::new(&location).is_file(), "{location}");
    let want: u64 = (1..=10).map(|i| 9 * i / 2).sum();
    assert_eq!(result.output::<u64>("add_up").unwrap(), want);
}

#[test]
fn graph_drawings_mark_the_mapped_steps() {
    let plan = tests::mapped().plan().clone();
    let mermaid = plan.to_mermaid();
    assert!(mermaid.contains("halve[\"halve[*]<br/>u64\"]"), "{mermaid}");
    let dot = plan.to_dot();
    assert!(dot.contains("label=\"triple[*]\\nu64\""), "{dot}");
}

#[test]
fn a_map_body_takes_other_inputs_and_runs_each_of_its_ops_per_key() {
    let job = tests::scaled();
    let config = dagster_dask::config::RunConfig::from_yaml(
        "ops: { emit_keys: { config: { count: 4 } } }",
        &job,
    )
    .unwrap();
    let result = Run::new(&job).config(config).in_memory().execute().unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(result.output::<u64>("add_up").unwrap(), 100);
    assert_eq!(result.output::<u64>("both_total").unwrap(), 300);
    assert_eq!(result.output::<u64>("times[k2]").unwrap(), 20);
    assert_eq!(result.output::<u64>("times_again[k3]").unwrap(), 30);
    assert_eq!(result.output::<u64>("triple[k4]").unwrap(), 120);
    let text = job.plan().to_text();
    assert!(
        text.contains("times[*]") && text.contains("triple[*]"),
        "{text}"
    );
}

#[test]
fn a_map_body_must_return_a_step_that_takes_the_per_key_value() {
    let numbers = OpDef::multi("numbers", [], dynamic_out("n"), |_ctx, (): ()| {
        Dynamic::<u64>::new()
    });
    let ten = OpDef::new("ten", [], |_ctx, (): ()| 10_u64);
    let mut job = JobBuilder::new("unmapped");
    let n = job.add(&numbers, ());
    let _ = job.map_with(n, |job, _x| job.add(&ten, ()));
    let err = job.build().unwrap_err().to_string();
    assert!(
        err.contains("step `ten`: a map's body returns it, but it takes no value per mapping key"),
        "{err}"
    );
}

mod bare {
    use dagster_dask::dynamic::Dynamic;
    use dagster_dask::prelude::*;

    /// A dynamic output without `out(...)`: the op returns `Dynamic<T>`.
    #[op]
    fn list_files() -> Dynamic<String> {
        ["a.csv", "bb.csv", "ccc.csv"]
            .iter()
            .map(|f| (f.replace('.', "_"), (*f).to_owned()))
            .collect()
    }

    #[op]
    fn file_size(ctx: &OpContext, path: String) -> u64 {
        // (the key it runs for is its own)
        assert_eq!(ctx.mapping_key(), Some(path.replace('.', "_").as_str()));
        path.len() as u64
    }

    #[op]
    fn total(sizes: Vec<u64>) -> u64 {
        sizes.iter().sum()
    }

    job! {
        fn sizes() {
            let files = list_files();
            let sizes = files.map(file_size);
            total(sizes.collect());
        }
    }

    #[test]
    fn an_op_returning_dynamic_needs_no_out_declaration() {
        let result = sizes().execute_in_process().unwrap();
        assert!(result.success(), "{:?}", result.events());
        assert_eq!(result.output::<u64>("total").unwrap(), 5 + 6 + 7);
        assert_eq!(
            result.step_status("file_size[bb_csv]"),
            Some(StepStatus::Succeeded)
        );
        let plan = sizes().plan().to_text();
        assert!(plan.contains("result: Dynamic<String>"), "{plan}");
    }
}
