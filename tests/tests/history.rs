//! The run history commands of a job binary (`runs`, `show`, `logs`, `report`, `runs
//! delete`, `runs prune`) on a storage holding several runs, and the HTML report in a real
//! headless browser.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "fragile" => env!("CARGO_BIN_EXE_fragile"),
        "sleepy" => env!("CARGO_BIN_EXE_sleepy"),
        "mapped" => env!("CARGO_BIN_EXE_mapped"),
        "numbers_split" => env!("CARGO_BIN_EXE_numbers_split"),
        "flaky" => env!("CARGO_BIN_EXE_flaky"),
        other => panic!("no binary {other}"),
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config file naming storage under `dir`, with `extra` YAML.
fn config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    let yaml = format!(
        "resources: {{ io_manager: {{ config: {{ base_dir: '{}' }} }} }}\n{extra}",
        dir.join("storage").display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

fn job(name: &str, args: &[&str], cfg: &Path) -> Output {
    Command::new(bin(name))
        .args(args)
        .args(["-c", cfg.to_str().unwrap()])
        .env("DAGSTER_DASK_HOME", cfg.parent().unwrap())
        .output()
        .expect("the job binary starts")
}

/// A run of `sleepy` napping `seconds`, started; returns once its nap has begun.
fn napping(dir: &Path, run_id: &str, seconds: f64) -> Child {
    let pid_file = dir.join(format!("{run_id}.pid"));
    let cfg = config(
        dir,
        &format!("{run_id}.yaml"),
        &format!(
            "ops: {{ nap: {{ config: {{ seconds: {seconds}, pid_file: '{}' }} }} }}",
            pid_file.display()
        ),
    );
    let child = Command::new(bin("sleepy"))
        .args(["run", "-q", "--run-id", run_id, "-c", cfg.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the nap never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn runs_show_and_logs_read_every_run_on_the_storage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pass = config(
        d,
        "pass.yaml",
        "ops: { shaky: { config: { fail: false } } }",
    );
    let fail = config(d, "fail.yaml", "ops: { shaky: { config: { fail: true } } }");
    assert!(
        job("fragile", &["run", "-q", "--run-id", "aa-good"], &pass)
            .status
            .success()
    );
    let out = job("fragile", &["run", "-q", "--run-id", "ab-bad"], &fail);
    assert_eq!(out.status.code(), Some(1));
    // One run still going, then canceled.
    let running = napping(d, "c-nap", 3.0);
    let out = job("fragile", &["runs"], &pass);
    let listed = text(&out.stdout);
    assert!(out.status.success(), "{listed}{}", text(&out.stderr));
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("run "), "{listed}");
    // newest first: the napping run, the failure, the success
    let order: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(order, ["c-nap", "ab-bad", "aa-good"], "{listed}");
    assert!(
        lines[1].contains("sleepy") && lines[1].contains("running"),
        "{listed}"
    );
    assert!(
        lines[2].contains("failure") && lines[2].contains("2/1/1"),
        "{listed}"
    );
    assert!(
        lines[3].contains("success") && lines[3].contains("4/0/0"),
        "{listed}"
    );

    Command::new("kill")
        .args(["-INT", &running.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(running.wait_with_output().unwrap().status.code(), Some(1));
    let out = job("fragile", &["runs", "--status", "canceled"], &pass);
    let listed = text(&out.stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.contains("c-nap") && listed.contains("canceled"),
        "{listed}"
    );

    // A unique prefix is enough; the step table has the failure's first line.
    let out = job("fragile", &["show", "ab"], &pass);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(shown.starts_with("run ab-bad\n"), "{shown}");
    let shaky = shown.lines().find(|l| l.starts_with("shaky ")).unwrap();
    assert!(
        shaky.contains("failed") && shaky.contains("told to fail"),
        "{shown}"
    );
    let after = shown
        .lines()
        .find(|l| l.starts_with("after_shaky "))
        .unwrap();
    assert!(after.contains("skipped"), "{shown}");

    // An ambiguous prefix lists the runs; a wrong id names the nearest.
    let out = job("fragile", &["show", "a"], &pass);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("ambiguous: aa-good, ab-bad"), "{err}");
    let out = job("fragile", &["logs", "ab-bda"], &pass);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no run `ab-bda`") && err.contains("nearest: ab-bad"),
        "{err}"
    );

    // The events as the console showed them, one step's only with --step.
    let out = job("fragile", &["logs", "ab-bad", "--step", "shaky"], &pass);
    let logs = text(&out.stdout);
    assert!(out.status.success(), "{logs}");
    assert!(logs.lines().all(|l| l.contains("shaky")), "{logs}");
    assert!(logs.contains("STEP_FAILURE"), "{logs}");
    let out = job("fragile", &["logs", "ab-bad"], &pass);
    let all = text(&out.stdout);
    assert!(all.lines().next().unwrap().contains("RUN_START"), "{all}");
    assert!(all.lines().last().unwrap().contains("RUN_FAILURE"), "{all}");
}

#[test]
fn logs_follow_tails_a_run_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let running = napping(d, "follow-me", 2.0);
    let cfg = config(d, "plain.yaml", "");
    let started = Instant::now();
    let out = job("sleepy", &["logs", "follow-me", "--follow"], &cfg);
    let followed = text(&out.stdout);
    assert!(out.status.success(), "{followed}{}", text(&out.stderr));
    assert!(running.wait_with_output().unwrap().status.success());
    // It printed what came after it started, and stopped at the run's end.
    assert!(followed.contains("nap started"), "{followed}");
    assert!(followed.contains("nap over"), "{followed}");
    assert!(
        followed.lines().last().unwrap().contains("RUN_SUCCESS"),
        "{followed}"
    );
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "it waited for the run"
    );
}

#[test]
fn runs_delete_and_prune_remove_runs_and_their_cache_entries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(
        d,
        "split.yaml",
        "ops: { split: { config: { odds: true } } }",
    );
    for id in ["keep-1", "drop-1"] {
        assert!(
            job("numbers_split", &["run", "-q", "--run-id", id], &cfg)
                .status
                .success()
        );
    }
    // `split` has a code version: the first run's step is in the cache, the second reused it.
    let cache = d.join("storage/cache");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let out = job("numbers_split", &["runs", "delete", "keep"], &cfg);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("deleted run keep-1:")
            && text(&out.stdout).contains("1 cache entries"),
        "{}",
        text(&out.stdout)
    );
    assert!(!d.join("storage/keep-1").exists());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    // The cache's directory is not a run, whatever its name starts like.
    let out = job("numbers_split", &["show", "ca"], &cfg);
    assert!(
        text(&out.stderr).contains("no run `ca`"),
        "{}",
        text(&out.stderr)
    );

    let out = job(
        "numbers_split",
        &["runs", "prune", "--older-than", "1h"],
        &cfg,
    );
    assert!(
        text(&out.stdout).contains("pruned 0 run(s)"),
        "{}",
        text(&out.stdout)
    );
    std::thread::sleep(Duration::from_millis(1100));
    let out = job(
        "numbers_split",
        &["runs", "prune", "--older-than", "1s", "--status", "failure"],
        &cfg,
    );
    assert!(
        text(&out.stdout).contains("pruned 0 run(s)"),
        "{}",
        text(&out.stdout)
    );
    let out = job(
        "numbers_split",
        &["runs", "prune", "--older-than", "1s"],
        &cfg,
    );
    assert!(
        text(&out.stdout).contains("pruned 1 run(s)"),
        "{}",
        text(&out.stdout)
    );
    assert!(!d.join("storage/drop-1").exists());
    let out = job("numbers_split", &["runs"], &cfg);
    assert!(
        text(&out.stdout).starts_with("no runs on"),
        "{}",
        text(&out.stdout)
    );
}

/// The headless browser: `DAGSTER_DASK_CHROMIUM`, else Debian's `chromium-headless-shell`
/// or `chromium` (`.ci/run` installs the first).
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("DAGSTER_DASK_CHROMIUM") {
        return PathBuf::from(path);
    }
    ["chromium-headless-shell", "chromium", "chromium-browser"]
        .iter()
        .map(|name| Path::new("/usr/bin").join(name))
        .find(|p| p.exists())
        .expect(
            "no headless Chromium: `apt-get install chromium-headless-shell`, or set \
             DAGSTER_DASK_CHROMIUM to a Chromium binary",
        )
}

fn browser(args: &[&str], page: &Path) -> Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts")
}

#[test]
fn the_report_shows_each_attempt_and_the_error_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(
        d,
        "mapped.yaml",
        "ops: { emit_keys: { config: { count: 5 } }, halve: { config: { fail: k3 } } }",
    );
    let out = job("mapped", &["run", "-q", "--run-id", "reported"], &cfg);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let report = std::fs::canonicalize(d.join("storage/reported/report.html")).unwrap();
    assert!(
        stdout.contains(&format!("report: {}", report.display())),
        "{stdout}"
    );
    let events =
        dagster_dask::events::read_event_log(&report.with_file_name("events.jsonl")).unwrap();
    let attempts = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                dagster_dask::events::EventKind::StepStart
                    | dagster_dask::events::EventKind::StepRestarted { .. }
            )
        })
        .count();

    let out = browser(&["--dump-dom"], &report);
    let dom = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        dom.matches("<rect class=\"bar ").count(),
        attempts,
        "one bar per attempt"
    );
    assert_eq!(dom.matches("data-outcome=\"failure\"").count(), 1);
    let failed = dom
        .split("<details")
        .find(|d| d.contains("id=\"step-halve[k3]\""))
        .expect("the failed step's logs");
    assert!(
        failed.contains("open") && failed.contains("halve fails on purpose at halve[k3]"),
        "{failed}"
    );
    assert!(
        dom.contains("data-status=\"failed\""),
        "the graph colours the failed step"
    );

    // A screenshot that is not blank: far more than a blank page's.
    let shot = d.join("report.png");
    let out = browser(
        &[
            "--window-size=1200,900",
            &format!("--screenshot={}", shot.display()),
        ],
        &report,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let blank_page = d.join("blank.html");
    std::fs::write(&blank_page, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_shot = d.join("blank.png");
    browser(
        &[
            "--window-size=1200,900",
            &format!("--screenshot={}", blank_shot.display()),
        ],
        &blank_page,
    );
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&shot) > 5 * size(&blank_shot),
        "{} vs blank {}",
        size(&shot),
        size(&blank_shot)
    );

    // A step tried three times has three bars: two retried, one that succeeded.
    let plain = config(d, "plain.yaml", "");
    let out = job("flaky", &["run", "-q", "--run-id", "retried"], &plain);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let flaky = std::fs::canonicalize(d.join("storage/retried/report.html")).unwrap();
    let dom = text(&browser(&["--dump-dom"], &flaky).stdout);
    let bars: Vec<&str> = dom
        .split("<rect class=\"bar ")
        .skip(1)
        .map(|bar| bar.split('>').next().unwrap_or_default())
        .filter(|bar| bar.contains("data-step=\"flaky\""))
        .collect();
    assert_eq!(bars.len(), 3, "{dom}");
    assert_eq!(bars.iter().filter(|b| b.starts_with("retry")).count(), 2);
    assert!(bars[2].starts_with("success") && bars[2].contains("data-attempt=\"3\""));

    // `report` writes it again, anywhere.
    let again = d.join("again.html");
    let out = job(
        "mapped",
        &["report", "rep", "-o", again.to_str().unwrap()],
        &cfg,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        std::fs::read_to_string(&report).unwrap()
    );
}

/// `sleepy` napping a second and a half, its output as a terminal of `cols` columns shows it
/// (under `script`, which gives it a pseudo-terminal), and the raw bytes written.
fn on_a_terminal(dir: &Path, cols: u16) -> (String, String) {
    let cfg = config(
        dir,
        "nap.yaml",
        "ops: { nap: { config: { seconds: 1.5 } } }",
    );
    // (the pseudo-terminal's size is set first: the screen below is that size)
    let command = format!(
        "stty cols {cols} rows 40 && exec {} run -c {}",
        bin("sleepy").display(),
        cfg.display()
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux) runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut screen = vt100::Parser::new(40, cols, 1000);
    screen.process(&out.stdout);
    (screen.screen().contents(), text(&out.stdout))
}

#[test]
fn a_terminal_shows_live_progress_and_a_pipe_gets_plain_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (screen, raw) = on_a_terminal(dir.path(), 160);
    // The display was drawn while the nap ran, naming the running step; it is gone at the
    // end, and the logs printed above it stay, without the routine events.
    assert!(raw.contains("steps done"), "{raw}");
    assert!(
        raw.contains("1 running") && raw.contains("now: nap"),
        "{raw}"
    );
    assert!(screen.contains("nap LOG INFO nap started"), "{screen}");
    assert!(screen.contains("nap LOG INFO nap over"), "{screen}");
    assert!(screen.contains("RUN_SUCCESS job `sleepy`"), "{screen}");
    assert!(!screen.contains("STEP_START"), "{screen}");
    assert!(
        !screen.contains("steps done"),
        "the display is cleared at the end: {screen}"
    );

    let cfg = config(
        dir.path(),
        "nap.yaml",
        "ops: { nap: { config: { seconds: 0.1 } } }",
    );
    let out = job("sleepy", &["run"], &cfg);
    let plain = text(&out.stderr);
    assert!(out.status.success(), "{plain}");
    assert!(
        plain.contains("STEP_START") && plain.contains("[2/2]"),
        "{plain}"
    );
    assert!(!plain.contains("steps done"), "{plain}");
}

/// The `LOG` events of a run's event log: (level, target, message, fields).
fn logs_of(events: &[dagster_dask::events::Event]) -> Vec<(String, String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            dagster_dask::events::EventKind::Log {
                level,
                message,
                target,
                fields,
            } => Some((
                level.to_string(),
                target.clone().unwrap_or_default(),
                message.clone(),
                format!("{fields:?}"),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn tracing_and_log_records_of_an_op_and_its_library_are_the_steps_events() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "plain.yaml", "");
    let out = Command::new(env!("CARGO_BIN_EXE_traced"))
        .args([
            "run",
            "-q",
            "--run-id",
            "traced-1",
            "-c",
            cfg.to_str().unwrap(),
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = std::fs::canonicalize(dir.path().join("storage/traced-1/events.jsonl")).unwrap();
    let events = dagster_dask::events::read_event_log(&log).unwrap();
    let logs = logs_of(&events);
    assert_eq!(logs.len(), 3, "{logs:?}");
    assert_eq!(logs[0].0, "WARNING");
    assert_eq!(logs[0].1, "tests");
    assert!(logs[0].3.contains("\"stage\": \"start\""), "{logs:?}");
    // `log` crate, inside a span: target is the library's module
    assert_eq!(logs[1].1, "tests::chatty_library");
    assert_eq!(logs[1].2, "connecting for users");
    assert!(logs[1].3.contains("\"spans\": \"fetch\""), "{logs:?}");
    assert_eq!(logs[2].2, "fetched");
    assert!(logs[2].3.contains("\"rows\": \"42\""), "{logs:?}");
    assert!(
        events
            .iter()
            .filter(|e| matches!(e.kind, dagster_dask::events::EventKind::Log { .. }))
            .all(|e| e.step_key.as_deref() == Some("traced"))
    );

    // A RUST_LOG filter: debug for the library, warnings only for the rest.
    let out = Command::new(env!("CARGO_BIN_EXE_traced"))
        .args([
            "run",
            "-q",
            "--run-id",
            "traced-2",
            "-c",
            cfg.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn,tests::chatty_library=debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = log
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("traced-2/events.jsonl");
    let logs = logs_of(&dagster_dask::events::read_event_log(&log).unwrap());
    let messages: Vec<&str> = logs.iter().map(|l| l.2.as_str()).collect();
    assert_eq!(messages, tests::chatty_library::MESSAGES_AT_DEBUG);
    // A filter that does not parse is refused before the run.
    let out = Command::new(env!("CARGO_BIN_EXE_traced"))
        .args(["run", "-q", "-c", cfg.to_str().unwrap()])
        .env("RUST_LOG", "tests=loud")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("log filter `tests=loud`"),
        "{}",
        text(&out.stderr)
    );
}
