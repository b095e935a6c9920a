//! Outputs on object storage: a real S3-compatible server (moto) on loopback, Dagster's own
//! config keys, the check before a run, and what a run says when the storage fails.

use std::path::Path;
use std::time::{Duration, Instant};

use dagster_dask::config::RunConfig;
use dagster_dask::events::{ErrorKind, EventKind};
use dagster_dask::exec::{Run, RunResult, RunStatus, StepStatus};
use dagster_dask::graph::Job;
use tests::store::{AZURITE_ACCOUNT, AZURITE_KEY, AzureServer, S3Server, free_port};

/// Run config for `s3_bucket` on `endpoint`, with Dagster's S3 resource, plus `extra`.
fn s3_yaml(endpoint: &str, bucket: &str, extra: &str) -> String {
    format!(
        "resources:\n  io_manager:\n    config: {{ s3_bucket: {bucket}, timeout: 2, retries: 1 }}\n  \
         s3:\n    config:\n      endpoint_url: {endpoint}\n      use_ssl: false\n      \
         region_name: us-east-1\n      aws_access_key_id: test\n      aws_secret_access_key: \
         secret-value\n{extra}"
    )
}

fn config(job: &Job, yaml: &str) -> RunConfig {
    RunConfig::from_yaml(yaml, job).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the diamond with `yaml`, which must stop it before it starts; returns the error and
/// how long it took to come.
fn refused_before_the_run(yaml: &str) -> (String, Duration) {
    let job = tests::diamond();
    let started = Instant::now();
    let err = Run::new(&job)
        .config(config(&job, yaml))
        .execute()
        .expect_err("the run should not start");
    (err.to_string(), started.elapsed())
}

/// [`s3_yaml`] for the diamond on `endpoint`, bucket `bucket`.
fn diamond_s3_yaml(endpoint: &str, bucket: &str) -> String {
    s3_yaml(
        endpoint,
        bucket,
        "ops: { scale: { config: { factor: 2 } } }\n",
    )
}

#[test]
fn a_run_stores_its_outputs_in_s3_under_dagsters_layout() {
    let s3 = S3Server::start();
    s3.create_bucket("runs");
    let job = tests::diamond();
    let yaml = diamond_s3_yaml(&s3.endpoint, "runs");
    let result = Run::new(&job)
        .config(config(&job, &yaml))
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
    let run_id = result.run_id();
    let mut expected: Vec<String> = job
        .plan()
        .steps
        .iter()
        .map(|s| format!("dagster/storage/{run_id}/{}/result", s.key))
        .collect();
    expected.sort();
    let stored: Vec<String> = s3
        .keys("runs")
        .into_iter()
        .filter(|k| k.ends_with("/result"))
        .collect();
    assert_eq!(stored, expected);
    // Read back through the store, as a later process would.
    let summary: tests::Summary = result.output("total").unwrap();
    assert_eq!(summary.total, 2 * (1 + 2 + 3 + 4) * 2);
    let handled = result.events().iter().find_map(|e| match &e.kind {
        EventKind::HandledOutput { location, .. } => Some(location.clone()),
        _ => None,
    });
    assert!(
        handled.is_some_and(|l| l.starts_with(&format!("s3://runs/dagster/storage/{run_id}/"))),
        "{:?}",
        result.events()
    );
    // No secret in any event.
    let all = serde_json::to_string(result.events()).unwrap();
    assert!(!all.contains("secret-value"));

    // The event log and the run's summary are on the store too, complete at the run's end.
    assert_eq!(
        result.stored_log(),
        Some(format!("s3://runs/dagster/storage/{run_id}").as_str())
    );
    let io = dagster_dask::exec::open_io_manager(&config(&job, &yaml).io_manager).unwrap();
    let stored = dagster_dask::events::read_stored_events(io.as_ref(), run_id).unwrap();
    assert_eq!(stored, result.events());
    let summary = dagster_dask::events::read_run_summary(io.as_ref(), run_id).unwrap();
    assert_eq!(
        (
            summary.job.as_str(),
            summary.status.as_str(),
            summary.steps,
            summary.succeeded
        ),
        ("diamond", "success", 6, 6)
    );
    assert!(summary.ended.is_some_and(|end| end >= summary.started));
    assert!(summary.segments >= 1);

    // The run history and the report work on the store as on a directory.
    let report = format!("s3://runs/dagster/storage/{run_id}/report.html");
    assert_eq!(result.report(), Some(Ok(report.as_str())));
    let runs = dagster_dask::history::list_runs(io.as_ref()).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run_id, run_id);
    let id = dagster_dask::history::resolve_run(io.as_ref(), &run_id[..6]).unwrap();
    assert_eq!(id, run_id);
    assert_eq!(
        dagster_dask::history::run_events(io.as_ref(), &id).unwrap(),
        stored
    );
    let removed = dagster_dask::history::delete_run(io.as_ref(), &id).unwrap();
    assert!(removed.objects >= 9, "{removed:?}");
    assert!(
        s3.keys("runs").iter().all(|k| !k.contains(run_id)),
        "{:?}",
        s3.keys("runs")
    );
    assert!(
        dagster_dask::history::list_runs(io.as_ref())
            .unwrap()
            .is_empty()
    );
}

/// A running `sleepy` job whose `nap` takes `seconds`, storing on `s3` (bucket `runs`), once
/// the nap has begun: the run's thread, its id and its IO manager.
fn nap_on_s3(
    s3: &S3Server,
    dir: &Path,
    seconds: u32,
) -> (
    std::thread::JoinHandle<Result<RunResult, dagster_dask::exec::RunError>>,
    String,
    std::sync::Arc<dyn dagster_dask::io::IoManager>,
) {
    s3.create_bucket("runs");
    let pid_file = dir.join("nap.pid");
    let job = tests::sleepy();
    let yaml = s3_yaml(
        &s3.endpoint,
        "runs",
        &format!(
            "ops: {{ nap: {{ config: {{ seconds: {seconds}, pid_file: '{}' }} }} }}\n",
            pid_file.display()
        ),
    );
    let cfg = config(&job, &yaml);
    let io = dagster_dask::exec::open_io_manager(&cfg.io_manager).unwrap();
    let run_id = dagster_dask::exec::new_run_id();
    let running = {
        let run_id = run_id.clone();
        std::thread::spawn(move || Run::new(&job).config(cfg).run_id(run_id).execute())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "nap never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    (running, run_id, io)
}

#[test]
fn a_running_run_keeps_its_summary_and_log_current_on_the_store() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (running, run_id, io) = nap_on_s3(&s3, dir.path(), 6);
    // Within two flushes of the step's start, its log line and a fresh heartbeat are stored.
    std::thread::sleep(dagster_dask::events::FLUSH_EVERY * 2);
    let summary = dagster_dask::events::read_run_summary(io.as_ref(), &run_id).unwrap();
    assert_eq!(summary.status, "running");
    assert!(
        !summary.is_abandoned(dagster_dask::events::FLUSH_EVERY * 3),
        "{summary:?}"
    );
    let so_far = dagster_dask::events::read_stored_events(io.as_ref(), &run_id).unwrap();
    assert!(
        so_far
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Log { message, .. } if message == "nap started")),
        "{so_far:?}"
    );
    let result = running.join().unwrap().unwrap();
    assert!(result.success());
    let summary = dagster_dask::events::read_run_summary(io.as_ref(), &run_id).unwrap();
    assert_eq!((summary.status.as_str(), summary.succeeded), ("success", 2));
}

#[test]
fn a_missing_bucket_stops_the_run_before_it_starts_and_names_what_was_tried() {
    let s3 = S3Server::start();
    let (err, _) = refused_before_the_run(&diamond_s3_yaml(&s3.endpoint, "nowhere"));
    for needle in [
        "s3://nowhere/dagster/storage",
        &s3.endpoint,
        "credentials from run config (`aws_access_key_id`)",
        "cannot write there",
    ] {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    assert!(!err.contains("secret-value"), "{err}");
}

#[test]
fn an_unreachable_endpoint_fails_within_the_configured_timeout() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let (err, took) = refused_before_the_run(&diamond_s3_yaml(&endpoint, "runs"));
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(err.contains(&endpoint), "{err}");
}

/// Runs `relay` on `s3`, doing `meddle` to `first`'s stored output before `second` loads it.
fn relay_with(s3: &S3Server, dir: &Path, meddle: &str) -> dagster_dask::exec::RunResult {
    s3.create_bucket("relay");
    let job = tests::relay();
    let open = dir.join("open");
    let yaml = s3_yaml(
        &s3.endpoint,
        "relay",
        &format!(
            "ops: {{ gate: {{ config: {{ path: '{}' }} }} }}\n",
            open.display()
        ),
    );
    let run_id = dagster_dask::exec::new_run_id();
    let key = format!("dagster/storage/{run_id}/first/result");
    let cfg = config(&job, &yaml);
    let running = {
        let run_id = run_id.clone();
        std::thread::spawn(move || Run::new(&job).config(cfg).run_id(run_id).execute())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s3.keys("relay").contains(&key) {
        assert!(Instant::now() < deadline, "first never stored its output");
        std::thread::sleep(Duration::from_millis(50));
    }
    s3.boto(&meddle.replace("KEY", &key));
    std::fs::write(&open, "").unwrap();
    running.join().unwrap().unwrap()
}

fn failure_of(result: &dagster_dask::exec::RunResult, step: &str) -> String {
    result
        .step_events(step)
        .find_map(|e| match &e.kind {
            EventKind::StepFailure { error, .. } => {
                assert_eq!(error.kind, ErrorKind::Input);
                Some(error.message.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{step} did not fail"))
}

#[test]
fn an_output_deleted_between_steps_names_step_output_and_key() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let result = relay_with(
        &s3,
        dir.path(),
        "s3.delete_object(Bucket='relay', Key='KEY')",
    );
    assert_eq!(result.status(), RunStatus::Failure);
    let message = failure_of(&result, "second");
    assert!(
        message.contains("cannot load input `x` of step `second` from step `first`")
            && message.contains("no stored output `result` of step `first`")
            && message.contains(&format!(
                "s3://relay/dagster/storage/{}/first/result",
                result.run_id()
            )),
        "{message}"
    );
}

#[test]
fn an_output_corrupted_between_steps_names_step_output_and_key() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let result = relay_with(
        &s3,
        dir.path(),
        "s3.put_object(Bucket='relay', Key='KEY', Body=b'not an output')",
    );
    assert_eq!(result.step_status("second"), Some(StepStatus::Failed));
    let message = failure_of(&result, "second");
    assert!(
        message.contains("cannot load input `x` of step `second` from step `first`")
            && message.contains(&format!(
                "(at s3://relay/dagster/storage/{}/first/result)",
                result.run_id()
            )),
        "{message}"
    );
}

#[test]
fn the_server_stopping_mid_run_fails_the_step_naming_the_endpoint_after_its_retries() {
    let mut s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (running, _, _) = nap_on_s3(&s3, dir.path(), 1);
    s3.stop();
    let endpoint = s3.endpoint.clone();
    let result = running.join().unwrap().unwrap();
    assert_eq!(result.status(), RunStatus::Failure);
    // `nap` may be retried once: both attempts fail to store.
    let kinds: Vec<_> = result
        .step_events("nap")
        .map(|e| e.kind.type_name())
        .collect();
    assert!(kinds.contains(&"STEP_UP_FOR_RETRY"), "{kinds:?}");
    let error = result
        .step_events("nap")
        .find_map(|e| match &e.kind {
            EventKind::StepFailure { error, .. } => Some(error.clone()),
            _ => None,
        })
        .expect("nap failed");
    assert_eq!(error.kind, ErrorKind::Output);
    assert!(
        error
            .message
            .contains("cannot store output `result` of step `nap`")
            && error.message.contains(&endpoint),
        "{error}"
    );
    assert_eq!(result.step_status("after_nap"), Some(StepStatus::Skipped));
}

#[test]
fn a_large_output_goes_up_in_parts_and_comes_back_whole() {
    let s3 = S3Server::start();
    s3.create_bucket("runs");
    let job = tests::payload_job();
    let bytes = 64 << 20;
    let yaml = s3_yaml(
        &s3.endpoint,
        "runs",
        &format!("ops: {{ payload: {{ config: {{ bytes: {bytes} }} }} }}\n"),
    );
    let result = Run::new(&job)
        .config(config(&job, &yaml))
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
    let value: Vec<u8> = result.output("payload").unwrap();
    assert_eq!(value.len(), bytes);
    assert!(value.iter().all(|b| *b == 7));
    // One object, no parts left behind: the upload completed.
    let key = format!("dagster/storage/{}/payload/result", result.run_id());
    assert!(s3.keys("runs").contains(&key));
    assert!(s3.multipart_uploads("runs").is_empty());
    // ... and its note went with it.
    assert!(s3.keys("runs").iter().all(|k| !k.contains("/.uploads/")));
}

#[test]
fn a_server_that_never_answers_is_given_up_on_within_the_configured_timeout() {
    // Accepts connections and reads, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    // `s3_yaml` sets a 2 s timeout and one retry.
    let (err, took) = refused_before_the_run(&diamond_s3_yaml(&endpoint, "runs"));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}: {err}"
    );
    assert!(
        err.contains(&endpoint) && err.contains("cannot write there"),
        "{err}"
    );
}

/// Run config for Dagster's ADLS2 keys on Azurite, with `key` as the account key.
fn azure_yaml(server: &AzureServer, key: &str) -> String {
    format!(
        "resources:\n  io_manager:\n    config:\n      adls2_file_system: runs\n      \
         adls2_prefix: team\n      timeout: 2\n      retries: 1\n      storage_options: \
         {{ azure_endpoint: '{}', azure_allow_http: true }}\n  adls2:\n    config:\n      \
         storage_account: {AZURITE_ACCOUNT}\n      credential: {{ key: '{key}' }}\n\
         ops: {{ scale: {{ config: {{ factor: 2 }} }} }}\n",
        server.endpoint
    )
}

#[test]
fn a_run_stores_its_outputs_and_log_in_azure() {
    let azure = AzureServer::start();
    azure.create_container("runs");
    let job = tests::diamond();
    let yaml = azure_yaml(&azure, AZURITE_KEY);
    let result = Run::new(&job)
        .config(config(&job, &yaml))
        .execute()
        .unwrap();
    assert!(result.success(), "{:?}", result.events());
    let run_id = result.run_id();
    let blobs = azure.blobs("runs");
    for step in ["numbers", "total", "describe"] {
        let name = format!("team/storage/{run_id}/{step}/result");
        assert!(blobs.contains(&name), "{name} not in {blobs:?}");
    }
    assert!(blobs.contains(&format!("team/storage/{run_id}/run.json")));
    let describe: String = result.output("describe").unwrap();
    assert_eq!(describe, "3 parts, total 40");
}

#[test]
fn wrong_credentials_are_one_error_before_the_run() {
    let azure = AzureServer::start();
    azure.create_container("runs");
    let wrong = AZURITE_KEY.replace('E', "F");
    let (err, _) = refused_before_the_run(&azure_yaml(&azure, &wrong));
    for needle in [
        "az://runs/team/storage",
        azure.endpoint.as_str(),
        "credentials from run config (`azure_storage_account_key`)",
        "cannot write there",
    ] {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    assert!(!err.contains(&wrong), "{err}");
    // Nothing was stored.
    assert!(azure.blobs("runs").is_empty());
}

#[test]
fn the_standard_aws_environment_is_enough() {
    let s3 = S3Server::start();
    s3.create_bucket("envruns");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.yaml");
    std::fs::write(
        &cfg,
        "resources: { io_manager: { config: { base_url: 's3://envruns/x' } } }\n\
         ops: { scale: { config: { factor: 2 } } }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_diamond"))
        .args(["run", "-q", "-c"])
        .arg(&cfg)
        .env("AWS_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "from-env")
        .env("AWS_SECRET_ACCESS_KEY", "from-env-secret")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("describe = \"3 parts, total 40\""),
        "{stdout}"
    );
    assert!(stdout.contains("(summary s3://envruns/x/"), "{stdout}");
    assert!(
        s3.keys("envruns")
            .iter()
            .any(|k| k.ends_with("/describe/result"))
    );
}

#[test]
fn deleting_a_run_aborts_the_upload_a_killed_process_left() {
    let s3 = S3Server::start();
    s3.create_bucket("runs");
    let job = tests::payload_job();
    let yaml = s3_yaml(
        &s3.endpoint,
        "runs",
        &format!(
            "ops: {{ payload: {{ config: {{ bytes: {} }} }} }}\n",
            384 << 20
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_payload"))
        .args(["run", "-q", "--run-id", "killed-mid-upload", "-c"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its output's multipart upload has begun (noted beside the run).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s3
        .keys("runs")
        .iter()
        .any(|k| k.contains("killed-mid-upload/.uploads/"))
    {
        assert!(Instant::now() < deadline, "the upload never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        s3.multipart_uploads("runs").len(),
        1,
        "the killed upload is left"
    );

    let io = dagster_dask::exec::open_io_manager(&config(&job, &yaml).io_manager).unwrap();
    let id = dagster_dask::history::resolve_run(io.as_ref(), "killed").unwrap();
    let removed = dagster_dask::history::delete_run(io.as_ref(), &id).unwrap();
    assert_eq!(removed.uploads_aborted, 1, "{removed:?}");
    assert!(s3.multipart_uploads("runs").is_empty());
    assert!(
        s3.keys("runs")
            .iter()
            .all(|k| !k.contains("killed-mid-upload")),
        "{:?}",
        s3.keys("runs")
    );
}
