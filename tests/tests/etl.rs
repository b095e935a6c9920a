//! The `etl` example, which uses every feature a ported Dagster job meets on day one at once
//! (multiple and optional outputs, a nested graph, a resource, an input from run config),
//! on the embedded executor. (`dask.rs` runs it on the test cluster.)

#[path = "../../examples/etl.rs"]
#[allow(dead_code, unreachable_pub)]
mod etl;

use dagster_dask::prelude::*;

fn run(source: &str, root: &std::path::Path) -> RunResult {
    let job = etl::etl();
    let yaml = format!(
        "ops: {{ extract: {{ inputs: {{ source: {source} }} }} }}\n\
         resources: {{ warehouse: {{ config: {{ root: '{}' }} }} }}",
        root.display()
    );
    let config = RunConfig::from_yaml(&yaml, &job).unwrap();
    Run::new(&job).config(config).in_memory().execute().unwrap()
}

#[test]
fn the_etl_example_loads_valid_rows_and_quarantines_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let result = run("['a:1', 'a:1', 'b:', 'c:-100', 'd:20']", dir.path());
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(result.output::<usize>("load").unwrap(), 2);
    assert_eq!(result.output::<usize>("quarantine").unwrap(), 1);
    let loaded = std::fs::read_to_string(dir.path().join("readings.csv")).unwrap();
    assert_eq!(loaded, "station,temp_c\na,1\nd,20\n");
    let quarantined = std::fs::read_to_string(dir.path().join("quarantine.csv")).unwrap();
    assert_eq!(quarantined, "station,temp_c\nc,-100\n");
}

#[test]
fn with_nothing_rejected_the_quarantine_is_skipped_and_the_run_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let result = run("['a:1', 'b:2']", dir.path());
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(result.step_status("quarantine"), Some(StepStatus::Skipped));
    assert!(!dir.path().join("quarantine.csv").exists());
    assert_eq!(result.output::<usize>("load").unwrap(), 2);
}
