//! The cache by code version: a step of an op with a code version reuses an earlier
//! step's outputs when its config and inputs are the same, on the same storage.

use std::sync::atomic::{AtomicUsize, Ordering};

use dagster_dask::config::RunConfig;
use dagster_dask::events::EventKind;
use dagster_dask::prelude::*;

static SLOW_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(serde::Deserialize)]
struct Factor {
    factor: u64,
}

#[op]
fn base() -> u64 {
    7
}

/// Expensive, and versioned: cached.
#[op(code_version = "1", config = Factor)]
fn slow(ctx: &OpContext, x: u64) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    Ok(x * ctx.config::<Factor>()?.factor)
}

#[op]
fn unversioned(x: u64) -> u64 {
    x + 1
}

job! {
    fn cached() {
        unversioned(slow(base()));
    }
}

fn config(dir: &std::path::Path, factor: u64) -> RunConfig {
    RunConfig::from_yaml(
        &format!(
            "ops: {{ slow: {{ config: {{ factor: {factor} }} }} }}\n\
             resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}",
            dir.display()
        ),
        &cached(),
    )
    .unwrap()
}

fn cached_from(result: &RunResult, step: &str) -> Option<String> {
    result.step_events(step).find_map(|e| match &e.kind {
        EventKind::StepOutput { cached_from, .. } => cached_from.clone(),
        _ => None,
    })
}

// One test: the call counter is process-wide.
#[test]
fn a_versioned_step_with_the_same_config_and_inputs_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let job = cached();
    let run = |factor: u64, no_cache: bool| {
        Run::new(&job)
            .config(config(dir.path(), factor))
            .no_cache(no_cache)
            .execute()
            .unwrap()
    };
    let text = job.plan().to_text();
    assert!(text.contains("slow -> u64  code_version 1"), "{text}");
    let first = run(3, false);
    assert!(first.success(), "{:?}", first.events());
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 1);

    // Same version, config and input: not run, its output reused.
    let second = run(3, false);
    assert!(second.success(), "{:?}", second.events());
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 1, "cached");
    assert_eq!(
        cached_from(&second, "slow").as_deref(),
        Some(first.run_id())
    );
    assert_eq!(second.output::<u64>("slow").unwrap(), 21);
    // Ops without a code version always run.
    assert_eq!(cached_from(&second, "unversioned"), None);
    assert_eq!(second.output::<u64>("unversioned").unwrap(), 22);

    // Another config: runs again.
    let third = run(4, false);
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(cached_from(&third, "slow"), None);
    assert_eq!(third.output::<u64>("unversioned").unwrap(), 29);

    // `no_cache`: runs again.
    run(3, true);
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 3);

    // A corrupt index entry is a miss, never a failure.
    for entry in std::fs::read_dir(dir.path().join("cache")).unwrap() {
        std::fs::write(entry.unwrap().path(), b"{ not json").unwrap();
    }
    let after = run(3, false);
    assert!(after.success(), "{:?}", after.events());
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 4);
    // ... and the run that ran it is the cache's again.
    let again = run(3, false);
    assert_eq!(cached_from(&again, "slow").as_deref(), Some(after.run_id()));
    assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 4);
}

#[test]
fn another_code_version_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let make = |version: &str| {
        let op = OpDef::new("versioned", [], |_ctx, (): ()| 1_u8).code_version(version);
        let mut b = JobBuilder::new("v");
        b.add(&op, ());
        b.build().unwrap()
    };
    let io = |job: &Job| {
        RunConfig::from_yaml(
            &format!(
                "resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}",
                dir.path().display()
            ),
            job,
        )
        .unwrap()
    };
    let v1 = make("1");
    let first = Run::new(&v1).config(io(&v1)).execute().unwrap();
    let again = Run::new(&v1).config(io(&v1)).execute().unwrap();
    assert_eq!(
        cached_from(&again, "versioned").as_deref(),
        Some(first.run_id())
    );
    let v2 = make("2");
    let changed = Run::new(&v2).config(io(&v2)).execute().unwrap();
    assert_eq!(cached_from(&changed, "versioned"), None);
}
