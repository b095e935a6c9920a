//! The job binary as a process: step mode (what workers run) and the command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dagster_dask::codec;
use dagster_dask::config::RunConfig;
use dagster_dask::events::{ErrorInfo, ErrorKind, Event, EventKind};
use dagster_dask::exec::Run;
use dagster_dask::plan::Plan;

fn bin(name: &str) -> PathBuf {
    match name {
        "diamond" => PathBuf::from(env!("CARGO_BIN_EXE_diamond")),
        "failing" => PathBuf::from(env!("CARGO_BIN_EXE_failing")),
        "flaky" => PathBuf::from(env!("CARGO_BIN_EXE_flaky")),
        "sleepy" => PathBuf::from(env!("CARGO_BIN_EXE_sleepy")),
        "payload" => PathBuf::from(env!("CARGO_BIN_EXE_payload")),
        other => panic!("no binary {other}"),
    }
}

fn run(name: &str, args: &[&str], home: &Path) -> Output {
    Command::new(bin(name))
        .args(args)
        .env("DAGSTER_DASK_HOME", home)
        .output()
        .expect("the job binary starts")
}

/// Runs the job binary with `input` on its stdin.
fn run_with_stdin(name: &str, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(bin(name))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the job binary starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Storage under `dir`, plus the `scale` op's config for the diamond job.
fn write_config(dir: &Path) -> PathBuf {
    write_storage_config(
        dir,
        "run.yaml",
        "ops:\n  scale:\n    config: { factor: 2 }\n",
    )
}

/// Storage under `dir` only, for jobs without op config.
fn write_plain_config(dir: &Path) -> PathBuf {
    write_storage_config(dir, "plain.yaml", "")
}

fn write_storage_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    let storage = dir.join("storage");
    let yaml = format!(
        "resources:\n  io_manager:\n    config:\n      base_dir: '{}'\n{extra}",
        storage.display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// One step process: its exit code, the events it sent, how it said the attempt ended, and
/// its stderr.
struct Stepped {
    code: i32,
    events: Vec<Event>,
    end: Option<serde_json::Value>,
    stderr: String,
}

/// Runs one step in its own process, its messages on stdout (no `--events`).
fn step(name: &str, run_id: &str, key: &str, attempt: u32, cfg: &Path) -> Stepped {
    let out = run(
        name,
        &[
            "__step",
            "--run-id",
            run_id,
            "--step",
            key,
            "--attempt",
            &attempt.to_string(),
            "-c",
            cfg.to_str().unwrap(),
        ],
        cfg.parent().unwrap(),
    );
    let mut events = Vec::new();
    let mut end = None;
    for line in text(&out.stdout).lines() {
        let message: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a message: {line}: {e}"));
        match message["msg"].as_str() {
            Some("event") => events.push(serde_json::from_value(message["body"].clone()).unwrap()),
            Some("ended") => {
                assert!(end.is_none(), "two ends: {line}");
                end = Some(message["body"].clone());
            }
            _ => panic!("not a step message: {line}"),
        }
    }
    Stepped {
        code: out.status.code().unwrap_or(-1),
        events,
        end,
        stderr: text(&out.stderr),
    }
}

/// The error a step process said its attempt failed with.
fn failure_of(end: &Option<serde_json::Value>) -> (ErrorKind, String) {
    let end = end.as_ref().expect("the attempt's end");
    assert_eq!(end["outcome"], "failure", "{end}");
    let error: ErrorInfo = serde_json::from_value(end.clone()).unwrap();
    (error.kind, error.to_string())
}

#[test]
fn a_job_run_entirely_in_step_mode_equals_the_embedded_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = write_config(dir.path());
    let job = tests::diamond();

    for plan_step in &job.plan().steps {
        let Stepped {
            code,
            events,
            end,
            stderr,
        } = step("diamond", "by-steps", &plan_step.key, 1, &cfg_path);
        assert_eq!(code, 0, "step {}: {stderr}", plan_step.key);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.type_name()).collect();
        assert_eq!(kinds.first(), Some(&"STEP_START"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"HANDLED_OUTPUT"), "{kinds:?}");
        assert_eq!(end.as_ref().unwrap()["outcome"], "success", "{end:?}");
        for e in &events {
            assert_eq!(e.step_key.as_deref(), Some(plan_step.key.as_str()));
            assert_eq!(e.run_id, "by-steps");
            assert_ne!(
                e.pid,
                std::process::id(),
                "events come from the step process"
            );
        }
        let loaded = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::LoadedInput { .. }))
            .count();
        let sources: usize = plan_step.inputs.iter().map(|i| i.sources.len()).sum();
        assert_eq!(loaded, sources, "step {}", plan_step.key);
        if plan_step.key == "numbers" {
            assert!(events.iter().any(
                |e| matches!(&e.kind, EventKind::Log { message, .. } if message == "making numbers")
            ));
        }
    }

    let yaml = std::fs::read_to_string(&cfg_path).unwrap();
    let config = RunConfig::from_yaml(&yaml, &job).unwrap();
    let embedded = Run::new(&job)
        .config(config)
        .run_id("embedded")
        .execute()
        .unwrap();
    assert!(embedded.success());
    let storage = std::fs::canonicalize(dir.path().join("storage")).unwrap();
    for plan_step in &job.plan().steps {
        let a =
            std::fs::read(storage.join("by-steps").join(&plan_step.key).join("result")).unwrap();
        let b =
            std::fs::read(storage.join("embedded").join(&plan_step.key).join("result")).unwrap();
        assert_eq!(a, b, "output of {} differs", plan_step.key);
    }
    let describe: String =
        codec::decode(&std::fs::read(storage.join("by-steps/describe/result")).unwrap()).unwrap();
    assert_eq!(describe, "3 parts, total 40");
}

#[test]
fn corrupt_wrong_type_and_missing_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    assert_eq!(step("diamond", "r", "numbers", 1, &cfg).code, 0);
    let stored = std::fs::canonicalize(dir.path().join("storage/r/numbers/result")).unwrap();

    std::fs::write(&stored, b"\x80\x04\x95 a pickle").unwrap();
    let Stepped { code, end, .. } = step("diamond", "r", "square", 1, &cfg);
    assert_eq!(code, 1);
    let (kind, message) = failure_of(&end);
    assert_eq!(kind, ErrorKind::Input);
    assert!(
        message.contains("cannot load input `xs` of step `square` from step `numbers`"),
        "{message}"
    );
    assert!(message.contains("not a dagster-dask object"), "{message}");
    assert!(message.contains(&stored.display().to_string()), "{message}");

    std::fs::write(&stored, codec::encode(&"a string".to_owned()).unwrap()).unwrap();
    let Stepped { code, end, .. } = step("diamond", "r", "square", 1, &cfg);
    assert_eq!(code, 1);
    let (_, message) = failure_of(&end);
    assert!(
        message
            .contains("object holds a `alloc::string::String`, expected a `alloc::vec::Vec<i64>`"),
        "{message}"
    );

    let Stepped { code, end, .. } = step("diamond", "other-run", "square", 1, &cfg);
    assert_eq!(code, 1);
    let (_, message) = failure_of(&end);
    assert!(
        message.contains("no stored output `result` of step `numbers` at"),
        "{message}"
    );
    assert!(message.contains("other-run/numbers/result"), "{message}");
}

#[test]
fn an_input_written_by_a_build_whose_type_changed_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    assert_eq!(step("diamond", "r", "numbers", 1, &cfg).code, 0);
    let stored = std::fs::canonicalize(dir.path().join("storage/r/numbers/result")).unwrap();
    // As another build wrote it: `Vec<i64>` was a `Vec<i32>` there (same name in the header
    // would be another type's; here the shape says so).
    let bytes = std::fs::read(&stored).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("I64").expect("the shape names the element type");
    let mut other = bytes.clone();
    other[at..at + 3].copy_from_slice(b"I32");
    std::fs::write(&stored, other).unwrap();
    let Stepped { code, end, .. } = step("diamond", "r", "square", 1, &cfg);
    assert_eq!(code, 1);
    let (kind, message) = failure_of(&end);
    assert_eq!(kind, ErrorKind::Input);
    assert!(
        message.contains("cannot load input `xs` of step `square` from step `numbers`")
            && message.contains("of another shape, written by another build")
            && message.contains("I32")
            && message.contains("I64"),
        "{message}"
    );
}

#[test]
fn step_mode_reports_retries_and_failures_by_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_plain_config(dir.path());
    let Stepped {
        code, events, end, ..
    } = step("flaky", "r", "flaky", 1, &cfg);
    assert_eq!(code, 1);
    let (kind, message) = failure_of(&end);
    assert_eq!(kind, ErrorKind::Op);
    assert_eq!(message, "transient failure on attempt 1");
    // Retries are the run's decision, not the step process's.
    assert!(
        events.iter().all(|e| !matches!(
            e.kind,
            EventKind::StepUpForRetry { .. } | EventKind::StepFailure { .. }
        )),
        "{events:?}"
    );
    let Stepped { code, events, .. } = step("flaky", "r", "flaky", 3, &cfg);
    assert_eq!(code, 0);
    assert_eq!(events[0].kind, EventKind::StepRestarted { attempt: 3 });

    assert_eq!(step("failing", "r", "start", 1, &cfg).code, 0);
    let Stepped { code, end, .. } = step("failing", "r", "boom", 1, &cfg);
    assert_eq!(code, 1);
    let (kind, message) = failure_of(&end);
    assert_eq!(kind, ErrorKind::Op);
    assert_eq!(
        message,
        "ANCHOR-BOOM: the op failed on purpose\n  caused by: disk on fire"
    );
}

#[test]
fn step_mode_refuses_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let Stepped {
        code,
        events,
        end,
        stderr,
    } = step("diamond", "r", "nope", 1, &cfg);
    assert_eq!(code, 2);
    assert!(events.is_empty() && end.is_none());
    assert!(stderr.contains("job `diamond` has no step `nope` (steps: numbers, scale, square, negate, total, describe)"), "{stderr}");
    let Stepped { code, stderr, .. } = step("diamond", "r/..", "numbers", 1, &cfg);
    assert_eq!(code, 2);
    assert!(stderr.contains("run id `r/..` is invalid"), "{stderr}");
    let Stepped { code, stderr, .. } = step("diamond", "r", "numbers", 0, &cfg);
    assert_eq!(code, 2);
    assert!(stderr.contains("--attempt counts from 1"), "{stderr}");
    let out = run_with_stdin(
        "diamond",
        &[
            "__step",
            "--run-id",
            "r",
            "--step",
            "numbers",
            "--config-stdin",
        ],
        r#"{"ops":{"scale":{"config":{"factor":1}}},"resources":{"io_manager":{"config":{"in_memory":true}}}}"#,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("in-memory IO manager is per process"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn cli_run_prints_results_events_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let out = run(
        "diamond",
        &["run", "-c", cfg.to_str().unwrap(), "--run-id", "cli-run"],
        dir.path(),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("RUN_SUCCESS job `diamond` run cli-run: 6 steps succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  describe = \"3 parts, total 40\""),
        "{stdout}"
    );
    let storage = std::fs::canonicalize(dir.path().join("storage")).unwrap();
    assert!(
        stdout.contains(&format!(
            "event log: {}",
            storage.join("cli-run/events.jsonl").display()
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("numbers LOG INFO making numbers"),
        "{stderr}"
    );
    assert!(stderr.contains("describe STEP_SUCCESS"), "{stderr}");

    let plain = write_plain_config(dir.path());
    let out = run(
        "failing",
        &["run", "-c", plain.to_str().unwrap(), "--quiet"],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("RUN_FAILURE job `failing`"), "{stdout}");
    assert!(
        stdout.contains("2 succeeded, 1 failed, 2 skipped, 0 not run"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "boom failed: ANCHOR-BOOM: the op failed on purpose\n    caused by: disk on fire"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("AFTER-BOOM-RAN"),
        "a skipped step ran: {stdout}"
    );
    assert!(
        text(&out.stderr).is_empty(),
        "--quiet printed events: {}",
        text(&out.stderr)
    );

    // No command means `run`; no config means default storage under DAGSTER_DASK_HOME.
    let out = run("flaky", &[], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("after_flaky = 6"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains(&dir.path().join("storage").display().to_string()));
}

#[test]
fn cli_validate_plan_graph_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let out = run(
        "diamond",
        &["validate", "-c", cfg.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "run config is valid for job `diamond`\n");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "execution:\n  config:\n    cluster: {}\n").unwrap();
    let out = run(
        "diamond",
        &["validate", "-c", bad.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("execution.config.cluster: choose one cluster type"),
        "{stderr}"
    );
    assert!(stderr.contains("ops.scale.config: required"), "{stderr}");

    let out = run("diamond", &["run"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ops.scale.config: required"));

    let out = run("diamond", &["plan", "--format", "json"], dir.path());
    let plan = Plan::from_json(&text(&out.stdout)).unwrap();
    assert_eq!(&plan, tests::diamond().plan());
    let out = run("diamond", &["plan"], dir.path());
    assert!(text(&out.stdout).starts_with("job `diamond`: 6 steps\n"));
    let out = run("diamond", &["graph", "--format", "mermaid"], dir.path());
    assert!(
        text(&out.stdout).contains("scale -->|parts| total"),
        "{}",
        text(&out.stdout)
    );
    let out = run("diamond", &["graph", "--format", "dot"], dir.path());
    assert!(text(&out.stdout).starts_with("digraph \"diamond\""));

    let out = run("diamond", &["bogus"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unrecognized subcommand 'bogus'"),
        "{}",
        text(&out.stderr)
    );
    let out = run("diamond", &["--help"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(!text(&out.stdout).contains("__step"), "step mode is hidden");
}

#[test]
fn ctrl_c_cancels_an_embedded_run_after_the_running_step() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("nap.pid");
    let cfg = write_storage_config(
        dir.path(),
        "nap.yaml",
        &format!(
            "ops:\n  nap:\n    config: {{ seconds: 2, pid_file: '{}' }}\n",
            pid_file.display()
        ),
    );
    let child = Command::new(bin("sleepy"))
        .args(["run", "-c", cfg.to_str().unwrap(), "--run-id", "ctrl-c"])
        .env("DAGSTER_DASK_HOME", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the nap never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "RUN_CANCELED job `sleepy` run ctrl-c: 1 succeeded, 0 failed, 0 skipped, 1 not run"
        ),
        "{stdout}"
    );
    let log = std::fs::canonicalize(dir.path().join("storage/ctrl-c/events.jsonl")).unwrap();
    let events = dagster_dask::events::read_event_log(&log).unwrap();
    // The running step finished; the next one never started; the run says why it ended.
    assert!(
        events.iter().any(|e| e.step_key.as_deref() == Some("nap")
            && matches!(e.kind, EventKind::StepSuccess { .. }))
    );
    assert!(
        !events
            .iter()
            .any(|e| e.step_key.as_deref() == Some("after_nap"))
    );
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(EventKind::RunCanceled { .. })
    ));
}

#[test]
fn after_a_library_run_sigint_and_sigterm_take_their_default_action() {
    use std::os::unix::process::ExitStatusExt;
    for (name, number) in [("INT", 2), ("TERM", 15)] {
        let out = Command::new(env!("CARGO_BIN_EXE_signals_after_run"))
            .arg(name)
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("run ended"),
            "{name}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            !stdout.contains("SURVIVED"),
            "SIG{name} was ignored: {stdout}"
        );
        assert_eq!(
            out.status.signal(),
            Some(number),
            "SIG{name}: {:?}",
            out.status
        );
    }
}

#[test]
fn the_summary_shows_a_large_output_by_type_and_size_without_decoding_it() {
    let dir = tempfile::tempdir().unwrap();
    // The stored size: the value and the codec's small header.
    for (bytes, shown) in [
        (10, "  payload = [7,7,7,7,7,7,7,7,7,7]"),
        (300_000, "  payload: a `Vec<u8>` of 3000"),
    ] {
        let cfg = write_storage_config(
            dir.path(),
            &format!("payload-{bytes}.yaml"),
            &format!("ops: {{ payload: {{ config: {{ bytes: {bytes} }} }} }}\n"),
        );
        let out = run(
            "payload",
            &["run", "-q", "-c", cfg.to_str().unwrap()],
            dir.path(),
        );
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        let line = stdout.lines().find(|l| l.starts_with("  payload"));
        let line = line.unwrap_or_else(|| panic!("no payload line in {stdout}"));
        assert!(line.starts_with(shown), "{line}");
        assert_eq!(
            line.ends_with("bytes (too large to show here)"),
            bytes > 65_536,
            "{line}"
        );
    }
}

/// Runs the diamond job's warm runner (`__serve`) under `dir` on these requests, its
/// messages to `events` (stdout when `None`).
fn serve_diamond(dir: &Path, requests: &str, events: Option<&Path>) -> Output {
    let cfg = write_config(dir);
    let path = dir.join("requests.jsonl");
    std::fs::write(&path, requests).unwrap();
    let run_id = dagster_dask::exec::new_run_id();
    let mut args = vec![
        "__serve",
        "--run-id",
        &run_id,
        "--requests",
        path.to_str().unwrap(),
        "-c",
        cfg.to_str().unwrap(),
    ];
    if let Some(events) = events {
        args.extend(["--events", events.to_str().unwrap()]);
    }
    run("diamond", &args, dir)
}

#[test]
fn a_warm_runner_runs_the_requested_steps_in_one_process_and_marks_where_each_ends() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "").unwrap();
    let out = serve_diamond(
        dir.path(),
        concat!(
            r#"{"step":"numbers","attempt":1,"marker":"<end-1>"}"#,
            "\n",
            r#"{"step":"scale","attempt":2,"marker":"<end-2>"}"#,
            "\n",
            r#"{"step":"nope","attempt":1,"marker":"<end-3>"}"#,
            "\n"
        ),
        Some(&events),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Each stream says where each step's output ends, in request order.
    for stream in [text(&out.stdout), text(&out.stderr)] {
        let marks: Vec<&str> = stream.lines().filter(|l| l.starts_with("<end-")).collect();
        assert_eq!(marks, ["<end-1>", "<end-2>", "<end-3>"], "{stream}");
    }
    let messages: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ends: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m["msg"] == "ended")
        .map(|m| &m["body"])
        .collect();
    assert_eq!(ends.len(), 3, "{messages:#?}");
    assert_eq!(ends[0]["outcome"], "success");
    assert_eq!(
        ends[1]["outcome"], "success",
        "scale loads what numbers stored"
    );
    assert_eq!(ends[2]["outcome"], "failure");
    assert!(
        ends[2]["message"]
            .as_str()
            .unwrap()
            .contains("job `diamond` has no step `nope`"),
        "{}",
        ends[2]
    );
    // One process ran both steps; the second was a restart (attempt 2).
    let steps: Vec<Event> = messages
        .iter()
        .filter(|m| m["msg"] == "event")
        .map(|m| serde_json::from_value(m["body"].clone()).unwrap())
        .collect();
    let pids: std::collections::BTreeSet<u32> = steps.iter().map(|e| e.pid).collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(
        steps.iter().any(|e| e.step_key.as_deref() == Some("scale")
            && matches!(e.kind, EventKind::StepRestarted { attempt: 2 })),
        "{steps:#?}"
    );
}

#[test]
fn a_warm_runner_refuses_a_request_that_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_diamond(dir.path(), "run numbers please\n", None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("a step request is not"),
        "{}",
        text(&out.stderr)
    );
}
