//! Re-execution: a new run naming its parent, all of the job or only what did not end well,
//! reading the rest from the parent's stored outputs.

use dagster_dask::config::RunConfig;
use dagster_dask::events::EventKind;
use dagster_dask::prelude::*;

fn config(dir: &std::path::Path, fail: bool) -> RunConfig {
    RunConfig::from_yaml(
        &format!(
            "ops: {{ shaky: {{ config: {{ fail: {fail} }} }} }}\n\
             resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}",
            dir.display()
        ),
        &tests::fragile(),
    )
    .unwrap()
}

fn started(result: &RunResult) -> Vec<String> {
    result
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StepStart))
        .filter_map(|e| e.step_key.clone())
        .collect()
}

fn parent_of(result: &RunResult) -> Option<String> {
    result.events().iter().find_map(|e| match &e.kind {
        EventKind::RunStart { parent_run_id, .. } => parent_run_id.clone(),
        _ => None,
    })
}

#[test]
fn from_failure_runs_only_what_did_not_end_well() {
    let dir = tempfile::tempdir().unwrap();
    let job = tests::fragile();
    let parent = Run::new(&job)
        .config(config(dir.path(), true))
        .execute()
        .unwrap();
    assert!(!parent.success());
    assert_eq!(parent.step_status("after_shaky"), Some(StepStatus::Skipped));

    let result = Run::new(&job)
        .config(config(dir.path(), false))
        .reexecute(parent.run_id())
        .from_failure(true)
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(started(&result), ["shaky", "after_shaky"]);
    assert_eq!(parent_of(&result).as_deref(), Some(parent.run_id()));
    assert_eq!(result.output::<i64>("after_shaky").unwrap(), 42);
    assert_ne!(result.run_id(), parent.run_id());
}

#[test]
fn a_whole_reexecution_runs_every_step_again_under_a_new_run() {
    let dir = tempfile::tempdir().unwrap();
    let job = tests::fragile();
    let parent = Run::new(&job)
        .config(config(dir.path(), false))
        .execute()
        .unwrap();
    let result = Run::new(&job)
        .config(config(dir.path(), false))
        .reexecute(parent.run_id())
        .execute()
        .unwrap();
    assert!(result.success());
    assert_eq!(started(&result).len(), 4);
    assert_eq!(parent_of(&result).as_deref(), Some(parent.run_id()));
}

#[test]
fn steps_of_a_parent_whose_driver_died_without_an_end_event_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let job = tests::fragile();
    let parent = Run::new(&job)
        .config(config(dir.path(), false))
        .execute()
        .unwrap();
    assert!(parent.success());
    // The driver "died" before `aside` and the run ended: their end events are missing.
    let log = parent.event_log().unwrap().to_owned();
    let kept: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| {
            let aside_ended = l.contains("\"aside\"") && l.contains("STEP_SUCCESS");
            !(aside_ended || l.contains("RUN_SUCCESS"))
        })
        .map(str::to_owned)
        .collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();

    let result = Run::new(&job)
        .config(config(dir.path(), false))
        .reexecute(parent.run_id())
        .from_failure(true)
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(started(&result), ["aside"]);
}

#[test]
fn a_parent_that_cannot_be_read_is_an_error_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let job = tests::fragile();
    let err = Run::new(&job)
        .config(config(dir.path(), false))
        .reexecute("no-such-run")
        .from_failure(true)
        .execute()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot re-execute run `no-such-run`"),
        "{err}"
    );
}
