//! Jobs shared by the integration tests and the job binaries in `src/bin/`, which the tests
//! run as real processes (CLI, step mode, Dask workers).
//!
//! Fixed jobs are written with `#[op]` and `job!`; `chain(n)` and `fan(n)` take their size
//! as a parameter, which `job!` does not, so they use the builder API.

pub mod dask;
pub mod store;
mod venv;

use std::time::Duration;

use dagster_dask::prelude::*;
use serde::{Deserialize, Serialize};

/// What fallible test ops return as errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Config of the `scale` op.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleConfig {
    /// The factor applied to every number.
    pub factor: i64,
}

/// A record that travels between steps, to exercise structs in the codec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many numbers went in.
    pub count: usize,
    /// Their sum.
    pub total: i64,
    /// Which steps they came from.
    pub label: String,
}

#[op]
fn numbers(ctx: &OpContext) -> Vec<i64> {
    ctx.log().info("making numbers");
    vec![1, 2, 3, 4]
}

#[op(config = ScaleConfig)]
fn scale(ctx: &OpContext, xs: Vec<i64>) -> Result<i64, BoxError> {
    let cfg: ScaleConfig = ctx.config()?;
    Ok(xs.iter().map(|x| x * cfg.factor).sum())
}

#[op]
fn square(xs: Vec<i64>) -> i64 {
    xs.iter().map(|x| x * x).sum()
}

#[op]
fn negate(xs: Vec<i64>) -> i64 {
    -xs.iter().sum::<i64>()
}

#[op]
fn total(ctx: &OpContext, parts: Vec<i64>) -> Summary {
    ctx.log().info(format!("fan-in of {} parts", parts.len()));
    Summary {
        count: parts.len(),
        total: parts.iter().sum(),
        label: "scale+square+negate".to_owned(),
    }
}

#[op]
fn describe(summary: Summary) -> String {
    format!("{} parts, total {}", summary.count, summary.total)
}

job! {
    /// `numbers` fans out to `scale` (config), `square` and `negate`, which fan in to
    /// `total`, then `describe`: 6 steps, result `Summary { count: 3, total: 40 }` with
    /// `factor: 2`.
    pub fn diamond() {
        let xs = numbers();
        let a = scale(xs);
        let b = square(xs);
        let c = negate(xs);
        let t = total(vec![a, b, c]);
        describe(t);
    }
}

/// The error the `boom` op fails with, with a cause, to check error chains.
#[derive(Debug)]
pub struct Boom {
    source: std::io::Error,
}

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ANCHOR-BOOM: the op failed on purpose")
    }
}

impl std::error::Error for Boom {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[op]
fn start() -> i64 {
    1
}

#[op]
fn boom(_x: i64) -> Result<i64, Boom> {
    Err(Boom {
        source: std::io::Error::other("disk on fire"),
    })
}

#[op]
fn after_boom(x: i64) -> i64 {
    // Never runs: if it did, this marker would show up in the output.
    println!("AFTER-BOOM-RAN");
    x + 1
}

#[op]
fn end(x: i64) -> i64 {
    x
}

#[op]
fn side(x: i64) -> i64 {
    x * 10
}

job! {
    /// `start` feeds `boom` (always fails) -> `after_boom` -> `end`, and `side` (succeeds).
    pub fn failing() {
        let s = start();
        end(after_boom(boom(s)));
        side(s);
    }
}

/// Fails on its first two attempts and succeeds on the third.
#[op(retry_policy(max_retries = 2, delay_ms = 20, backoff = exponential))]
fn flaky_op(ctx: &OpContext) -> Result<i64, String> {
    if ctx.attempt() < 3 {
        Err(format!("transient failure on attempt {}", ctx.attempt()))
    } else {
        Ok(i64::from(ctx.attempt()))
    }
}

#[op]
fn after_flaky(x: i64) -> i64 {
    x * 2
}

job! {
    /// `flaky` fails twice and succeeds on its third attempt (2 retries, 20 ms base delay,
    /// exponential backoff); `after_flaky` doubles its output.
    pub fn flaky() {
        let f = flaky_op().alias("flaky");
        after_flaky(f);
    }
}

/// A chain of `n` increments starting from 0: the result is `n - 1`.
pub fn chain(n: usize) -> Job {
    let zero = OpDef::new("zero", [], |_ctx, (): ()| 0_u64);
    let inc = OpDef::new("inc", ["x"], |_ctx, (x,): (u64,)| x + 1);
    let mut job = JobBuilder::new("chain");
    let mut last = job.add(&zero, ());
    for _ in 1..n {
        last = job.add(&inc, last);
    }
    job.build().expect("chain is valid")
}

/// `source` fans out to `n` steps `part_i` (each returns `i`), which fan in to `sum`: the
/// result is `n * (n + 1) / 2`.
pub fn fan(n: usize) -> Job {
    let source = OpDef::new("source", [], |_ctx, (): ()| 1_u64);
    let part = OpDef::new("part", ["one"], |ctx: &OpContext, (one,): (u64,)| {
        let i: u64 = ctx
            .step_key()
            .rsplit('_')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        one * i
    });
    let sum = OpDef::new("sum", ["parts"], |_ctx, (parts,): (Vec<u64>,)| {
        parts.iter().sum::<u64>()
    });
    let mut job = JobBuilder::new("fan");
    let s = job.add(&source, ());
    let parts: Vec<_> = (1..=n)
        .map(|i| job.add_as(&format!("part_{i}"), &part, s))
        .collect();
    job.add(&sum, parts);
    job.build().expect("fan is valid")
}

#[op]
fn prepare() -> u32 {
    // A plain print, outside the event protocol: it reaches the driver as a line.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("prepare runs {exe}");
    eprintln!("prepare says this on stderr");
    21
}

#[op(tags(resource_requirements(GPU = 1)))]
fn train(ctx: &OpContext, x: u32) -> u32 {
    ctx.log().info("training on the GPU");
    x * 2
}

#[op]
fn cpu_side(x: u32) -> u32 {
    x + 1
}

#[op]
fn report(xs: Vec<u32>) -> u32 {
    xs.iter().sum()
}

job! {
    /// `prepare` feeds three GPU-tagged `train_i` steps and an untagged `cpu_side`;
    /// `report` collects the trainings (126). Where each step ran shows in its events.
    pub fn gpu() {
        let p = prepare();
        let t1 = train(p).alias("train_1");
        let t2 = train(p).alias("train_2");
        let t3 = train(p).alias("train_3");
        cpu_side(p);
        report([t1, t2, t3]);
    }
}

/// `source` fans out to `n` independent steps `wait_i` that each sleep half a second: a
/// scheduler that gives them to free workers runs them side by side.
pub fn spread(n: usize) -> Job {
    let source = OpDef::new("source", [], |_ctx, (): ()| 1_u64);
    let wait = OpDef::new("wait", ["one"], |_ctx, (one,): (u64,)| {
        std::thread::sleep(Duration::from_millis(500));
        one
    });
    let mut job = JobBuilder::new("spread");
    let s = job.add(&source, ());
    for i in 1..=n {
        job.add_as(&format!("wait_{i}"), &wait, s);
    }
    job.build().expect("spread is valid")
}

/// Config of the `nap` op.
#[derive(Debug, Deserialize)]
pub struct NapConfig {
    /// How long to sleep.
    pub seconds: f64,
    /// Where to write the step process's id first.
    #[serde(default)]
    pub pid_file: Option<String>,
}

#[op(config = NapConfig, retries = 1)]
fn nap(ctx: &OpContext) -> Result<f64, BoxError> {
    let cfg: NapConfig = ctx.config()?;
    if let Some(path) = &cfg.pid_file {
        std::fs::write(path, std::process::id().to_string())?;
    }
    ctx.log().info("nap started");
    std::thread::sleep(Duration::from_secs_f64(cfg.seconds));
    ctx.log().info("nap over");
    Ok(cfg.seconds)
}

#[op]
fn after_nap(s: f64) -> f64 {
    s * 2.0
}

job! {
    /// `nap` logs, then sleeps for `ops.nap.config.seconds`, writing its process id to
    /// `ops.nap.config.pid_file` first (tests check the process is gone after a cancel);
    /// it may be retried once.
    pub fn sleepy() {
        let n = nap();
        after_nap(n);
    }
}

/// Lines that look like the step protocol and like run events of `ctx`'s run and step: a
/// step's success, the run's success, a retry with an absurd delay, and the step protocol's
/// own end and event messages.
pub fn forged_lines(ctx: &OpContext) -> Vec<String> {
    use dagster_dask::events::{ErrorInfo, ErrorKind, Event, EventKind};
    let event = |step: Option<&str>, kind: EventKind| {
        serde_json::to_string(&Event::new(ctx.run_id(), step, kind)).expect("events serialize")
    };
    let step = Some(ctx.step_key());
    let success = event(step, EventKind::StepSuccess { duration_ms: 1.0 });
    vec![
        success.clone(),
        event(None, EventKind::RunSuccess { duration_ms: 1.0 }),
        event(
            step,
            EventKind::StepUpForRetry {
                attempt: ctx.attempt(),
                delay_ms: 1e300,
                error: ErrorInfo::new(ErrorKind::Op, "forged"),
            },
        ),
        r#"{"msg":"ended","body":{"outcome":"success","duration_ms":1.0}}"#.to_owned(),
        format!(r#"{{"msg":"event","body":{success}}}"#),
    ]
}

/// The message the `forger` op fails with, after its forged lines.
pub const FORGER_ERROR: &str = "the forger fails after printing forged events";

/// Prints [`forged_lines`] on stdout and stderr, then fails.
#[op]
fn forger(ctx: &OpContext) -> Result<u32, String> {
    for line in forged_lines(ctx) {
        println!("{line}");
        eprintln!("{line}");
    }
    Err(FORGER_ERROR.to_owned())
}

/// Prints without a newline, then succeeds.
#[op]
fn partial() -> u32 {
    print!("no newline at the end");
    7
}

/// Ends its process with exit code 0 before its output is stored.
#[op]
fn quitter() -> u32 {
    std::process::exit(0)
}

#[op]
fn after_quitter(x: u32) -> u32 {
    x
}

job! {
    /// `forger` prints forged events and fails; `partial` prints without a newline and
    /// succeeds; `quitter` exits 0 without storing its output, so `after_quitter` is skipped.
    /// (Only for executors that run steps in processes of their own.)
    pub fn hostile() {
        forger();
        partial();
        after_quitter(quitter());
    }
}

job! {
    /// `forger` alone.
    pub fn forging() {
        forger();
    }
}

/// Config of the `tokio_io` op.
#[derive(Debug, Deserialize)]
pub struct TokioConfig {
    /// How long to sleep on a tokio timer, milliseconds.
    pub sleep_ms: u64,
}

/// Awaits a tokio timer and a loopback TCP connection; returns the bytes it echoed.
#[op(config = TokioConfig)]
async fn tokio_io(ctx: &OpContext) -> Result<Vec<u8>, BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cfg: TokioConfig = ctx.config()?;
    tokio::time::sleep(Duration::from_millis(cfg.sleep_ms)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let client = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"ping").await?;
        Ok::<_, std::io::Error>(())
    });
    let (mut accepted, _) = listener.accept().await?;
    let mut got = Vec::new();
    accepted.read_to_end(&mut got).await?;
    client.await??;
    Ok(got)
}

job! {
    /// One async op on tokio's timer and sockets.
    pub fn tokio_job() {
        tokio_io();
    }
}

/// Config of the `payload` op.
#[derive(Debug, Deserialize)]
pub struct PayloadConfig {
    /// How many bytes the op returns.
    pub bytes: usize,
}

/// Returns `bytes` bytes.
#[op(config = PayloadConfig)]
fn payload(ctx: &OpContext) -> Result<Vec<u8>, BoxError> {
    let cfg: PayloadConfig = ctx.config()?;
    Ok(vec![7; cfg.bytes])
}

job! {
    /// One op that returns as many bytes as its config says.
    pub fn payload_job() {
        payload();
    }
}

/// Starts `sleep 60` in the background, sharing the step's stdout and stderr, and returns its
/// process id without waiting for it.
#[op]
fn spawner() -> Result<u32, BoxError> {
    let child = std::process::Command::new("sleep").arg("60").spawn()?;
    Ok(child.id())
}

job! {
    /// `spawner` leaves a background child behind.
    pub fn background() {
        spawner();
    }
}

/// Config of the `chatter` op.
#[derive(Debug, Deserialize)]
pub struct ChatterConfig {
    /// How many lines to print.
    pub lines: usize,
}

/// Prints `lines` numbered lines on stdout; returns how many.
#[op(config = ChatterConfig)]
fn chatter(ctx: &OpContext) -> Result<usize, BoxError> {
    use std::io::Write as _;
    let cfg: ChatterConfig = ctx.config()?;
    let mut out = std::io::stdout().lock();
    for i in 0..cfg.lines {
        writeln!(out, "line {i}")?;
    }
    Ok(cfg.lines)
}

job! {
    /// `chatter` prints as many lines as its config says.
    pub fn chatty() {
        chatter();
    }
}

/// Config of the `hang` op.
#[derive(Debug, Deserialize)]
pub struct HangConfig {
    /// How long to sleep: past the op's one-second `max_runtime` when above 1.
    pub seconds: f64,
    /// Where each attempt writes its process id first, as `<pid_file>.<attempt>`.
    #[serde(default)]
    pub pid_file: Option<String>,
}

/// Sleeps for its config's seconds, within a `max_runtime` of one second, retried once.
#[op(config = HangConfig, max_runtime = 1, retries = 1)]
fn hang(ctx: &OpContext) -> Result<f64, BoxError> {
    let cfg: HangConfig = ctx.config()?;
    if let Some(path) = &cfg.pid_file {
        let path = format!("{path}.{}", ctx.attempt());
        std::fs::write(path, std::process::id().to_string())?;
    }
    ctx.log().info("hang started");
    std::thread::sleep(Duration::from_secs_f64(cfg.seconds));
    ctx.log().info("hang over");
    Ok(cfg.seconds)
}

#[op]
fn after_hang(s: f64) -> f64 {
    s + 1.0
}

#[op]
fn beside() -> u32 {
    7
}

job! {
    /// `hang` may take one second per attempt; `beside` does not depend on it.
    pub fn stuck() {
        let h = hang();
        after_hang(h);
        beside();
    }
}

/// Config of the `gate` op.
#[derive(Debug, Deserialize)]
pub struct GateConfig {
    /// The file whose appearance opens the gate.
    pub path: String,
}

#[op]
fn first() -> i64 {
    41
}

/// Waits (up to a minute) until its config's file exists.
#[op(config = GateConfig)]
fn gate(ctx: &OpContext) -> Result<(), BoxError> {
    let cfg: GateConfig = ctx.config()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(&cfg.path).exists() {
        if std::time::Instant::now() > deadline {
            return Err(format!("{} never appeared", cfg.path).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[op]
fn second(x: i64, _gate: ()) -> i64 {
    x + 1
}

job! {
    /// `second` loads `first`'s output once `gate` opens: a test may change the stored output
    /// in between.
    pub fn relay() {
        let f = first();
        let g = gate();
        second(f, g);
    }
}

#[op]
fn measure(bytes: Vec<u8>) -> u64 {
    bytes.len() as u64
}

job! {
    /// `payload`, then a step that loads it whole.
    pub fn payload_pair() {
        let p = payload();
        measure(p);
    }
}

/// Whether `split` produces its optional output `odds`.
#[derive(Debug, Deserialize)]
pub struct SplitConfig {
    /// Produce `odds`.
    pub odds: bool,
}

#[op]
fn one_to_ten() -> Vec<u64> {
    (1..=10).collect()
}

/// Splits numbers by parity; `odds` only when the config asks for it.
#[op(out(evens, odds(optional)), config = SplitConfig, code_version = "1")]
fn split(ctx: &OpContext, xs: Vec<u64>) -> Result<(Vec<u64>, Option<Vec<u64>>), BoxError> {
    let cfg: SplitConfig = ctx.config()?;
    let (evens, odds): (Vec<u64>, Vec<u64>) = xs.into_iter().partition(|x| x % 2 == 0);
    Ok((evens, cfg.odds.then_some(odds)))
}

#[op]
fn sum_of(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[op]
fn count_of(xs: Vec<u64>) -> usize {
    xs.len()
}

/// One output, named and optional: the largest of a list, when it is not empty.
#[op(out(largest(optional)))]
fn largest(xs: Vec<u64>) -> Option<u64> {
    xs.into_iter().max()
}

#[op]
fn sum_all(parts: Vec<u64>) -> u64 {
    parts.iter().sum()
}

#[op]
fn mean(sum: u64, count: usize) -> f64 {
    sum as f64 / count as f64
}

job! {
    /// Multiple and optional outputs: `split` gives `evens` and, when `ops.split.config.odds`
    /// is true, `odds`. Without `odds`, the steps that read it (`sum_of_odds`, `count_of`,
    /// `largest_odd`, and `mean`, which reads `count_of`) are skipped, and `sum_all` (a
    /// fan-in) adds what was produced: 30 instead of 55.
    pub fn numbers_split() {
        let (evens, odds) = split(one_to_ten());
        let even_sum = sum_of(evens);
        let odd_sum = sum_of(odds).alias("sum_of_odds");
        let count = count_of(odds);
        mean(odd_sum, count);
        largest(odds).alias("largest_odd");
        largest(evens);
        sum_all([even_sum, odd_sum]);
    }
}

#[op]
fn upper(word: String) -> String {
    word.to_uppercase()
}

#[op]
fn repeat(word: String, times: u32) -> String {
    word.repeat(times as usize)
}

job! {
    /// Inputs from run config: `upper`'s `word` and `repeat`'s `times` are given at
    /// `ops.upper.inputs.word` and `ops.repeat.inputs.times`.
    pub fn greeting() {
        let word = upper(from_config!());
        repeat(word, from_config!());
    }
}

/// Whether `shaky` fails.
#[derive(Debug, Default, Deserialize)]
pub struct ShakyConfig {
    /// Fail.
    #[serde(default)]
    pub fail: bool,
}

#[op]
fn seed() -> i64 {
    20
}

#[op(config = ShakyConfig)]
fn shaky(ctx: &OpContext, x: i64) -> Result<i64, BoxError> {
    let cfg: ShakyConfig = ctx.config()?;
    if cfg.fail {
        return Err("told to fail".into());
    }
    Ok(x + 1)
}

#[op]
fn after_shaky(x: i64) -> i64 {
    x * 2
}

#[op]
fn aside(x: i64) -> i64 {
    x - 1
}

job! {
    /// `seed` feeds `shaky` (fails when `ops.shaky.config.fail`) -> `after_shaky`, and
    /// `aside`: for re-execution from failure.
    pub fn fragile() {
        let s = seed();
        after_shaky(shaky(s));
        aside(s);
    }
}

/// How many mapping keys `emit_keys` emits.
#[derive(Debug, Deserialize)]
pub struct KeysConfig {
    /// Keys `k1` to `k<count>`.
    pub count: u64,
}

/// Which mapping key `halve` fails on.
#[derive(Debug, Default, Deserialize)]
pub struct HalveConfig {
    /// A key whose `halve` step fails (re-execution tests).
    #[serde(default)]
    pub fail: Option<String>,
    /// A marker file: when it exists, `fail` does not fail any more (the fix before a
    /// re-execution).
    #[serde(default)]
    pub fixed_when: Option<std::path::PathBuf>,
}

/// Emits `count` numbers, each under its own mapping key, `k<i>`.
#[op(out(numbers(dynamic)), config = KeysConfig)]
fn emit_keys(ctx: &OpContext) -> Result<dagster_dask::dynamic::Dynamic<u64>, BoxError> {
    let cfg: KeysConfig = ctx.config()?;
    Ok((1..=cfg.count).map(|i| (format!("k{i}"), i)).collect())
}

#[op]
fn triple(x: u64) -> u64 {
    3 * x
}

/// Halves; fails on the mapping key its config names, until it is fixed.
#[op(config = HalveConfig)]
fn halve(ctx: &OpContext, x: u64) -> Result<u64, BoxError> {
    let cfg: HalveConfig = ctx.config()?;
    let fixed = cfg.fixed_when.as_ref().is_some_and(|p| p.exists());
    if cfg.fail.as_deref() == ctx.mapping_key() && !fixed {
        return Err(format!("halve fails on purpose at {}", ctx.step_key()).into());
    }
    Ok(x * 3 / 2)
}

#[op]
fn add_up(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

job! {
    /// Dynamic fan-out: `emit_keys` emits `ops.emit_keys.config.count` numbers, each mapped
    /// through `triple` then `halve` (per key), collected by `add_up`; `listed` collects the
    /// numbers themselves.
    pub fn mapped() {
        let numbers = emit_keys();
        let tripled = numbers.map(triple);
        let halved = tripled.map(halve);
        add_up(halved.collect());
        add_up(numbers.collect()).alias("listed");
    }
}

/// A library an op calls, which logs with the `log` crate and with `tracing`, as libraries do.
pub mod chatty_library {
    /// What `traced_job` logs, in order, with `tests::chatty_library` at debug.
    pub const MESSAGES_AT_DEBUG: [&str; 4] = [
        "the op itself says something",
        "connecting for users",
        "fetched",
        "a detail the default filter drops",
    ];

    /// Pretends to fetch `table`: logs with both crates, returns its row count.
    pub fn fetch(table: &str) -> u64 {
        let span = tracing::info_span!("fetch", table);
        let _entered = span.enter();
        log::info!("connecting for {table}");
        tracing::info!(rows = 42_u64, "fetched");
        tracing::debug!("a detail the default filter drops");
        42
    }
}

#[op]
fn traced() -> u64 {
    tracing::warn!(stage = "start", "the op itself says something");
    chatty_library::fetch("users")
}

job! {
    /// One op that logs with `tracing` and calls a library that logs with `log` and `tracing`.
    pub fn traced_job() {
        traced();
    }
}

#[op]
fn factor() -> u64 {
    10
}

#[op]
fn times(x: u64, by: u64) -> u64 {
    x * by
}

job! {
    /// A map whose body takes another input (Dagster's `.map(lambda x: op(x, other))`), and
    /// one of two ops per key: `emit_keys` emits `ops.emit_keys.config.count` numbers.
    pub fn scaled() {
        let numbers = emit_keys();
        let by = factor();
        let scaled = numbers.map(|x| times(x, by));
        add_up(scaled.collect());
        let both = numbers.map(|x| {
            let t = times(x, by).alias("times_again");
            triple(t)
        });
        add_up(both.collect()).alias("both_total");
    }
}
