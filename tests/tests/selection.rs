//! Op selection: Dagster's syntax, the selected part of a job, inputs from a parent run.

use std::process::Command;

use dagster_dask::config::RunConfig;
use dagster_dask::events::EventKind;
use dagster_dask::graph::{GraphDef, GraphInput};
use dagster_dask::prelude::*;
use dagster_dask::selection::{Selection, SelectionError};

/// The steps of the diamond (`numbers` -> `scale`, `square`, `negate` -> `total` ->
/// `describe`) that `expr` selects.
fn selected(expr: &str) -> Vec<String> {
    let job = tests::diamond();
    let keep = Selection::parse(expr).unwrap().steps(job.plan()).unwrap();
    job.plan()
        .steps
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(s, _)| s.key.clone())
        .collect()
}

#[test]
fn each_form_of_the_syntax_selects_its_steps() {
    assert_eq!(selected("total"), ["total"]);
    assert_eq!(
        selected("*total"),
        ["numbers", "scale", "square", "negate", "total"]
    );
    assert_eq!(selected("total*"), ["total", "describe"]);
    assert_eq!(selected("+total"), ["scale", "square", "negate", "total"]);
    assert_eq!(
        selected("++total"),
        ["numbers", "scale", "square", "negate", "total"]
    );
    assert_eq!(
        selected("numbers+"),
        ["numbers", "scale", "square", "negate"]
    );
    assert_eq!(selected("numbers++"), selected("numbers*")[..5].to_vec());
    assert_eq!(selected("square, describe"), ["square", "describe"]);
    assert_eq!(
        selected("+total+"),
        ["scale", "square", "negate", "total", "describe"]
    );
}

#[test]
fn a_graph_instance_name_selects_its_steps() {
    let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (i64,)| x + 1);
    let one = OpDef::new("one", [], |_ctx, (): ()| 1_i64);
    let twice = GraphDef::new(
        "twice",
        ["x"],
        move |g: &mut JobBuilder, (x,): (GraphInput<i64>,)| {
            let y = g.add(&inc, x);
            g.add(&inc, y)
        },
    );
    let mut b = JobBuilder::new("g");
    let x = b.add(&one, ());
    b.add_graph(&twice, x);
    let job = b.build().unwrap();
    let keep = Selection::parse("twice")
        .unwrap()
        .steps(job.plan())
        .unwrap();
    assert_eq!(keep, [false, true, true]);
}

#[test]
fn bad_selections_say_what_is_wrong() {
    for (expr, needle) in [
        ("a,,b", "an empty clause"),
        ("*+total", "mixes `*` and `+`"),
        ("total**", "mixes `*` and `+`"),
        ("to tal", "does not name a step"),
    ] {
        let err = Selection::parse(expr).unwrap_err().to_string();
        assert!(err.contains(needle), "{expr}: {err}");
    }
    let err = Selection::parse("totl")
        .unwrap()
        .steps(tests::diamond().plan())
        .unwrap_err();
    assert!(
        matches!(&err, SelectionError::Unknown { name, steps, .. }
            if name == "totl" && steps.contains("total")),
        "{err}"
    );
}

#[test]
fn inputs_from_steps_not_selected_need_a_parent_run() {
    let job = tests::diamond();
    let err = Selection::parse("total")
        .unwrap()
        .apply(&job, None)
        .unwrap_err()
        .to_string();
    for input in [
        "step `total` input `parts` <- scale",
        "step `total` input `parts` <- square",
        "step `total` input `parts` <- negate",
    ] {
        assert!(err.contains(input), "{err}");
    }
    assert!(err.contains("--from RUN_ID"), "{err}");
}

fn config(dir: &std::path::Path) -> RunConfig {
    RunConfig::from_yaml(
        &format!(
            "ops: {{ scale: {{ config: {{ factor: 2 }} }} }}\n\
             resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}",
            dir.display()
        ),
        &tests::diamond(),
    )
    .unwrap()
}

#[test]
fn a_selection_runs_only_its_steps_reading_the_rest_from_the_parent_run() {
    let dir = tempfile::tempdir().unwrap();
    let job = tests::diamond();
    let parent = Run::new(&job).config(config(dir.path())).execute().unwrap();
    assert!(parent.success());

    let result = Run::new(&job)
        .config(config(dir.path()))
        .select("total*")
        .from_run(parent.run_id())
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
    let started: Vec<&str> = result
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StepStart))
        .filter_map(|e| e.step_key.as_deref())
        .collect();
    assert_eq!(started, ["total", "describe"]);
    assert_eq!(
        result.output::<String>("describe").unwrap(),
        "3 parts, total 40"
    );
    assert!(result.step_status("numbers").is_none());

    // A parent run that did not store them: refused before anything runs.
    let err = Run::new(&job)
        .config(config(dir.path()))
        .select("describe")
        .from_run("no-such-run")
        .execute()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("step `describe` input `summary` <- total (run no-such-run): not stored"),
        "{err}"
    );
}

#[test]
fn plan_select_prints_the_sub_plan_and_run_select_refuses_missing_inputs() {
    let out = Command::new(env!("CARGO_BIN_EXE_diamond"))
        .args(["plan", "--select", "total*", "--from", "parent-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("job `diamond`: 2 steps"), "{text}");
    assert!(
        text.contains("parts: Vec<i64> <- [scale (run parent-run), square (run parent-run), negate (run parent-run)]"),
        "{text}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_diamond"))
        .args(["run", "--select", "describe"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("step `describe` input `summary` <- total"),
        "{err}"
    );
}
