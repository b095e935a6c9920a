//! The embedded executor: results, failure semantics, retries, logs, event log, threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use dagster_dask::config::{ExecutionConfig, RunConfig};
use dagster_dask::events::{ErrorKind, EventKind, LogLevel, read_event_log};
use dagster_dask::prelude::*;
use tests::Summary;

fn config(execution: &str) -> RunConfig {
    RunConfig::from_yaml(
        &format!("ops: {{ scale: {{ config: {{ factor: 2 }} }} }}\n{execution}"),
        &tests::diamond(),
    )
    .unwrap()
}

fn kinds<'a>(result: &'a RunResult, step: &'a str) -> Vec<&'static str> {
    result
        .step_events(step)
        .map(|e| e.kind.type_name())
        .collect()
}

#[test]
fn diamond_gives_the_same_result_threaded_and_in_process() {
    let job = tests::diamond();
    let expected = Summary {
        count: 3,
        total: 20 + 30 - 10,
        label: "scale+square+negate".to_owned(),
    };
    for execution in [
        "",
        "execution: { config: { in_process: {} } }",
        "execution: { config: { multithread: { max_concurrent: 1 } } }",
    ] {
        let result = Run::new(&job)
            .config(config(execution))
            .in_memory()
            .execute()
            .unwrap();
        assert!(result.success(), "{execution}: {:?}", result.events());
        assert_eq!(
            result.output::<Summary>("total").unwrap(),
            expected,
            "{execution}"
        );
        assert_eq!(
            result.output::<String>("describe").unwrap(),
            "3 parts, total 40"
        );
        // Every upstream value reached the fan-in: one LOADED_INPUT per source.
        let loaded = result
            .step_events("total")
            .filter(|e| matches!(e.kind, EventKind::LoadedInput { .. }))
            .count();
        assert_eq!(loaded, 3, "{execution}");
    }
}

#[test]
fn downstream_of_a_failure_is_skipped_and_independent_branches_finish() {
    let job = tests::failing();
    for execution in [RunConfig::default(), {
        let mut c = RunConfig::default();
        c.execution = ExecutionConfig::InProcess;
        c
    }] {
        let result = Run::new(&job)
            .config(execution)
            .in_memory()
            .execute()
            .unwrap();
        assert_eq!(result.status(), RunStatus::Failure);
        assert_eq!(result.step_status("start"), Some(StepStatus::Succeeded));
        assert_eq!(result.step_status("boom"), Some(StepStatus::Failed));
        assert_eq!(result.step_status("after_boom"), Some(StepStatus::Skipped));
        assert_eq!(result.step_status("end"), Some(StepStatus::Skipped));
        assert_eq!(result.step_status("side"), Some(StepStatus::Succeeded));
        assert_eq!(result.output::<i64>("side").unwrap(), 10);
        // Skipped steps never started: one STEP_SKIPPED event and nothing else.
        assert_eq!(kinds(&result, "after_boom"), ["STEP_SKIPPED"]);
        assert_eq!(kinds(&result, "end"), ["STEP_SKIPPED"]);
        let failure = result
            .step_events("boom")
            .find_map(|e| match &e.kind {
                EventKind::StepFailure { error, attempt } => Some((error.clone(), *attempt)),
                _ => None,
            })
            .expect("a STEP_FAILURE for boom");
        assert_eq!(failure.1, 1);
        assert_eq!(failure.0.kind, ErrorKind::Op);
        assert_eq!(failure.0.message, "ANCHOR-BOOM: the op failed on purpose");
        assert_eq!(failure.0.causes, ["disk on fire"]);
        let Some(EventKind::RunFailure {
            failed, skipped, ..
        }) = result.events().last().map(|e| &e.kind)
        else {
            panic!("last event is not RUN_FAILURE")
        };
        assert_eq!(failed, &["boom"]);
        assert_eq!(skipped, &["after_boom", "end"]);
        // The skip names the upstream that did not succeed.
        assert!(result.step_events("end").any(|e| matches!(&e.kind,
            EventKind::StepSkipped { upstream, .. } if upstream == &["after_boom"])));
    }
}

#[test]
fn retries_follow_the_policy_with_events_and_delays() {
    let result = Run::new(&tests::flaky()).in_memory().execute().unwrap();
    assert!(result.success());
    assert_eq!(result.output::<i64>("after_flaky").unwrap(), 6);
    assert_eq!(
        kinds(&result, "flaky"),
        [
            "STEP_START",
            "STEP_UP_FOR_RETRY",
            "STEP_RESTARTED",
            "STEP_UP_FOR_RETRY",
            "STEP_RESTARTED",
            "STEP_OUTPUT",
            "HANDLED_OUTPUT",
            "STEP_SUCCESS"
        ]
    );
    let delays: Vec<f64> = result
        .step_events("flaky")
        .filter_map(|e| match &e.kind {
            EventKind::StepUpForRetry {
                delay_ms,
                attempt,
                error,
            } => {
                assert!(
                    error.message.contains(&format!("attempt {attempt}")),
                    "{error}"
                );
                Some(*delay_ms)
            }
            _ => None,
        })
        .collect();
    // Exponential backoff over a 20 ms base: 20 * (2^1 - 1), 20 * (2^2 - 1).
    assert_eq!(delays, [20.0, 60.0]);
    // The wait really happened: the restart comes at least the delay after the failure.
    let at = |kind: &str, nth: usize| {
        result
            .step_events("flaky")
            .filter(|e| e.kind.type_name() == kind)
            .nth(nth)
            .unwrap()
            .timestamp
    };
    assert!(at("STEP_RESTARTED", 1) - at("STEP_UP_FOR_RETRY", 1) >= 0.059);
}

#[test]
fn exhausted_retries_fail_the_step() {
    let always = OpDef::try_new("always", [], |_ctx, (): ()| Err::<(), _>("nope"))
        .retry_policy(RetryPolicy::new(1));
    let mut b = JobBuilder::new("exhausted");
    b.add(&always, ());
    let result = b.build().unwrap().execute_in_process().unwrap();
    assert_eq!(result.status(), RunStatus::Failure);
    assert_eq!(
        kinds(&result, "always"),
        [
            "STEP_START",
            "STEP_UP_FOR_RETRY",
            "STEP_RESTARTED",
            "STEP_FAILURE"
        ]
    );
    assert!(
        result
            .step_events("always")
            .any(|e| matches!(e.kind, EventKind::StepFailure { attempt: 2, .. }))
    );
}

#[test]
fn a_panicking_op_fails_its_step_and_the_run_goes_on() {
    let calm = OpDef::new("calm", [], |_ctx, (): ()| 1_u8);
    let wild = OpDef::new("wild", ["x"], |_ctx, (_x,): (u8,)| -> u8 {
        panic!("wild op lost it")
    });
    let after = OpDef::new("after", ["x"], |_ctx, (x,): (u8,)| x);
    let mut b = JobBuilder::new("panics");
    let c = b.add(&calm, ());
    let w = b.add(&wild, c);
    b.add(&after, w);
    let result = Run::new(&b.build().unwrap()).in_memory().execute().unwrap();
    assert_eq!(result.step_status("wild"), Some(StepStatus::Failed));
    assert_eq!(result.step_status("after"), Some(StepStatus::Skipped));
    assert!(result.step_events("wild").any(|e| matches!(&e.kind,
        EventKind::StepFailure { error, .. } if error.kind == ErrorKind::Panic && error.message == "op `wild` panicked: wild op lost it")));
}

#[test]
fn op_logs_become_events_and_the_event_log_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        "resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}",
        dir.path().display()
    ));
    let result = Run::new(&tests::diamond())
        .config(cfg.clone())
        .run_id("logs-run")
        .execute()
        .unwrap();
    assert!(result.success());
    let log = result.event_log().expect("a local event log");
    assert_eq!(
        log,
        std::fs::canonicalize(dir.path())
            .unwrap()
            .join("logs-run/events.jsonl")
    );
    assert_eq!(read_event_log(log).unwrap(), result.events());
    let logged: Vec<_> = result
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Log { level, message, .. } => {
                Some((e.step_key.clone().unwrap(), *level, message.clone()))
            }
            _ => None,
        })
        .collect();
    assert!(
        logged.contains(&("numbers".into(), LogLevel::Info, "making numbers".into())),
        "{logged:?}"
    );
    assert!(
        logged.contains(&("total".into(), LogLevel::Info, "fan-in of 3 parts".into())),
        "{logged:?}"
    );
    for event in result.events() {
        assert_eq!(event.run_id, "logs-run");
        assert_eq!(event.pid, std::process::id());
        assert!(!event.host.is_empty());
    }
    // Outputs are where the layout says.
    assert!(
        std::fs::canonicalize(dir.path())
            .unwrap()
            .join("logs-run/total/result")
            .is_file()
    );

    // The same run id again would mix two runs: refused before anything runs.
    let err = Run::new(&tests::diamond())
        .config(cfg)
        .run_id("logs-run")
        .execute()
        .unwrap_err();
    assert!(
        err.to_string().starts_with("run `logs-run` already exists"),
        "{err}"
    );
    assert_eq!(read_event_log(log).unwrap().len(), result.events().len());
}

/// Two ops that each wait for the other: they only finish if they run at the same time.
fn rendezvous_job() -> Job {
    let (tx_a, rx_a) = mpsc::channel::<()>();
    let (tx_b, rx_b) = mpsc::channel::<()>();
    let rx_a = Arc::new(Mutex::new(rx_a));
    let rx_b = Arc::new(Mutex::new(rx_b));
    let meet = |name: &'static str, tx: mpsc::Sender<()>, rx: Arc<Mutex<mpsc::Receiver<()>>>| {
        let tx = Mutex::new(tx);
        OpDef::try_new(name, [], move |_ctx, (): ()| {
            tx.lock().unwrap().send(()).map_err(|e| e.to_string())?;
            rx.lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(20))
                .map_err(|_| "the other op never ran alongside".to_owned())
        })
    };
    let a = meet("a", tx_b, rx_a);
    let b = meet("b", tx_a, rx_b);
    let mut job = JobBuilder::new("rendezvous");
    job.add(&a, ());
    job.add(&b, ());
    job.build().unwrap()
}

#[test]
fn multithread_runs_independent_steps_at_the_same_time() {
    let mut cfg = RunConfig::default();
    cfg.execution = ExecutionConfig::Multithread {
        max_concurrent: Some(2),
    };
    let result = Run::new(&rendezvous_job())
        .config(cfg)
        .in_memory()
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
}

#[test]
fn max_concurrent_bounds_the_threads_and_in_process_never_overlaps() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let busy = {
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        OpDef::new("busy", [], move |_ctx, (): ()| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            running.fetch_sub(1, Ordering::SeqCst);
        })
    };
    let mut b = JobBuilder::new("busy");
    for _ in 0..6 {
        b.add(&busy, ());
    }
    let job = b.build().unwrap();
    let mut cfg = RunConfig::default();
    cfg.execution = ExecutionConfig::Multithread {
        max_concurrent: Some(2),
    };
    assert!(
        Run::new(&job)
            .config(cfg)
            .in_memory()
            .execute()
            .unwrap()
            .success()
    );
    assert_eq!(peak.load(Ordering::SeqCst), 2);

    peak.store(0, Ordering::SeqCst);
    let result = job.execute_in_process().unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 1);
    // Strictly sequential: each step's events are contiguous, in plan order.
    let order: Vec<&str> = result
        .events()
        .iter()
        .filter_map(|e| e.step_key.as_deref())
        .collect();
    let mut deduped = order.clone();
    deduped.dedup();
    assert_eq!(
        deduped,
        ["busy", "busy_2", "busy_3", "busy_4", "busy_5", "busy_6"]
    );
}

#[test]
fn an_empty_job_succeeds() {
    let result = JobBuilder::new("empty")
        .build()
        .unwrap()
        .execute_in_process()
        .unwrap();
    assert!(result.success());
}

#[test]
fn bad_run_ids_and_unknown_steps_are_errors() {
    let job = tests::flaky();
    let err = Run::new(&job)
        .run_id("../etc")
        .in_memory()
        .execute()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "run id `../etc` is invalid: use only letters, digits, `_` and `-`"
    );
    let result = job.execute_in_process().unwrap();
    let err = result.output::<i64>("nope").unwrap_err().to_string();
    assert_eq!(
        err,
        "job `flaky` has no step `nope` (steps: after_flaky, flaky)"
    );
    let err = result.output::<String>("flaky").unwrap_err().to_string();
    assert!(
        err.contains("object holds a `i64`, expected a `alloc::string::String`"),
        "{err}"
    );
}

#[test]
fn an_op_printing_forged_events_changes_nothing() {
    let job = tests::forging();
    for execution in ["execution: { config: { in_process: } }", ""] {
        let config = RunConfig::from_yaml(execution, &job).unwrap();
        let result = Run::new(&job).config(config).in_memory().execute().unwrap();
        assert_eq!(result.status(), RunStatus::Failure, "{execution}");
        assert_eq!(kinds(&result, "forger"), ["STEP_START", "STEP_FAILURE"]);
        let ends: Vec<_> = result
            .events()
            .iter()
            .filter(|e| e.step_key.is_none() && e.kind.type_name().starts_with("RUN_"))
            .map(|e| e.kind.type_name())
            .collect();
        assert_eq!(ends, ["RUN_START", "RUN_FAILURE"]);
        let failure = result.step_events("forger").find_map(|e| match &e.kind {
            EventKind::StepFailure { error, .. } => Some(error.message.clone()),
            _ => None,
        });
        assert_eq!(failure.as_deref(), Some(tests::FORGER_ERROR));
    }
}

#[test]
fn async_ops_await_tokio_timers_and_sockets() {
    let job = tests::tokio_job();
    for execution in ["in_process:", "multithread:"] {
        let config = RunConfig::from_yaml(
            &format!(
                "execution: {{ config: {{ {execution} }} }}\nops: {{ tokio_io: {{ config: {{ sleep_ms: 20 }} }} }}"
            ),
            &job,
        )
        .unwrap();
        let started = std::time::Instant::now();
        let result = Run::new(&job).config(config).in_memory().execute().unwrap();
        assert!(result.success(), "{execution}: {:?}", result.events());
        assert_eq!(result.output::<Vec<u8>>("tokio_io").unwrap(), b"ping");
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}

fn stuck_config(seconds: f64, execution: &str) -> RunConfig {
    RunConfig::from_yaml(
        &format!("ops: {{ hang: {{ config: {{ seconds: {seconds} }} }} }}\n{execution}"),
        &tests::stuck(),
    )
    .unwrap()
}

/// The step's error on its final failure.
fn failure_of(result: &RunResult, step: &str) -> dagster_dask::events::ErrorInfo {
    result
        .step_events(step)
        .find_map(|e| match &e.kind {
            EventKind::StepFailure { error, .. } => Some(error.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{step} did not fail"))
}

#[test]
fn an_op_past_its_max_runtime_times_out_and_is_retried_on_both_embedded_executors() {
    for execution in ["", "execution: { config: { in_process: {} } }"] {
        let started = std::time::Instant::now();
        let result = Run::new(&tests::stuck())
            .config(stuck_config(30.0, execution))
            .in_memory()
            .execute()
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{execution}: took {:?}",
            started.elapsed()
        );
        assert_eq!(result.status(), RunStatus::Failure);
        assert_eq!(
            kinds(&result, "hang"),
            [
                "STEP_START",
                "LOG",
                "STEP_UP_FOR_RETRY",
                "STEP_RESTARTED",
                "LOG",
                "STEP_FAILURE"
            ],
            "{execution}"
        );
        let error = failure_of(&result, "hang");
        assert_eq!(error.kind, ErrorKind::Timeout);
        assert!(
            error
                .message
                .starts_with("step `hang` attempt 2 ran past its max_runtime of 1 s"),
            "{}",
            error.message
        );
        assert_eq!(result.step_status("after_hang"), Some(StepStatus::Skipped));
        assert_eq!(result.step_status("beside"), Some(StepStatus::Succeeded));
    }
}

#[test]
fn an_op_within_its_max_runtime_succeeds() {
    let result = Run::new(&tests::stuck())
        .config(stuck_config(0.05, ""))
        .in_memory()
        .execute()
        .unwrap();
    assert!(result.success());
    assert_eq!(result.output::<f64>("after_hang").unwrap(), 1.05);
    assert!(
        result
            .step_events("hang")
            .any(|e| matches!(&e.kind, EventKind::Log { message, .. } if message == "hang over"))
    );
}

#[test]
fn a_run_past_its_max_runtime_stops_and_fails_without_retrying() {
    let job = tests::sleepy();
    let config = RunConfig::from_yaml(
        "ops: { nap: { config: { seconds: 30 } } }\nexecution: { config: { max_runtime: 1 } }",
        &job,
    )
    .unwrap();
    assert_eq!(config.max_runtime, Some(Duration::from_secs(1)));
    let started = std::time::Instant::now();
    let result = Run::new(&job).config(config).in_memory().execute().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(result.status(), RunStatus::Failure);
    // `nap` may be retried once, but not past the run's end.
    assert_eq!(kinds(&result, "nap"), ["STEP_START", "LOG", "STEP_FAILURE"]);
    let error = failure_of(&result, "nap");
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert_eq!(
        error.message,
        "step `nap` attempt 1 was stopped: the run passed its max_runtime of 1 s; the op's \
         thread was abandoned (threads cannot be killed) and what it does from now on is dropped"
    );
    assert_eq!(result.step_status("after_nap"), Some(StepStatus::Skipped));
    assert!(result.events().iter().any(|e| matches!(&e.kind,
        EventKind::EngineEvent { message } if message == "the run passed its max_runtime of 1 s")));
    assert_eq!(
        result.events().last().map(|e| e.kind.type_name()),
        Some("RUN_FAILURE")
    );
}

#[test]
fn a_job_tag_limits_the_run_and_a_bad_one_is_a_build_error() {
    let nap = OpDef::new("nap", [], |_ctx, (): ()| {
        std::thread::sleep(Duration::from_secs(30));
        1_u8
    });
    let mut b = JobBuilder::new("tagged");
    b.tag("dagster/max_runtime", "0.5");
    b.add(&nap, ());
    let result = Run::new(&b.build().unwrap()).in_memory().execute().unwrap();
    assert_eq!(result.status(), RunStatus::Failure);
    assert_eq!(failure_of(&result, "nap").kind, ErrorKind::Timeout);

    let mut b = JobBuilder::new("tagged");
    b.tag("dagster/max_runtime", "soon");
    b.add(&nap.clone().max_runtime(Duration::ZERO), ());
    let err = b.build().unwrap_err().to_string();
    assert!(
        err.contains("job `tagged` tag `dagster/max_runtime`: expected a positive number of seconds, found `soon`")
            && err.contains("step `nap` tag `dagster/max_runtime`: expected a positive number of seconds, found `0`"),
        "{err}"
    );
}

#[test]
fn a_run_on_a_directory_keeps_its_summary_beside_its_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let job = tests::diamond();
    let config = RunConfig::from_yaml(
        &format!(
            "ops: {{ scale: {{ config: {{ factor: 2 }} }} }}\nresources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}",
            dir.path().display()
        ),
        &job,
    )
    .unwrap();
    let result = Run::new(&job).config(config).execute().unwrap();
    assert!(result.success());
    let log = result.event_log().expect("an event log file");
    let summary: dagster_dask::events::RunSummary =
        serde_json::from_slice(&std::fs::read(log.with_file_name("run.json")).unwrap()).unwrap();
    assert_eq!(summary.run_id, result.run_id());
    assert_eq!(
        (
            summary.status.as_str(),
            summary.steps,
            summary.succeeded,
            summary.failed
        ),
        ("success", 6, 6, 0)
    );
    // On a directory, the events are in `events.jsonl`, not in segments.
    assert_eq!(summary.segments, 0);
    assert!(result.stored_log().is_none());
}
