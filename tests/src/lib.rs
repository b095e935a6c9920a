//! Jobs shared by the integration tests and the job binaries in `src/bin/`, which the tests
//! run as real processes (CLI and step mode).

pub mod dask;

use std::time::Duration;

use dagster_dask::prelude::*;
use serde::{Deserialize, Serialize};

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

/// `numbers` fans out to `scale` (config), `square` and `negate`, which fan in to `total`,
/// then `describe`: 6 steps, result `Summary { count: 3, total: .. }`.
pub fn diamond() -> Job {
    let numbers = OpDef::new("numbers", [], |ctx: &OpContext, (): ()| {
        ctx.log().info("making numbers");
        vec![1_i64, 2, 3, 4]
    });
    let scale = OpDef::try_new("scale", ["xs"], |ctx: &OpContext, (xs,): (Vec<i64>,)| {
        let cfg: ScaleConfig = ctx.config()?;
        Ok::<_, BoxError>(xs.iter().map(|x| x * cfg.factor).sum::<i64>())
    })
    .config::<ScaleConfig>();
    let square = OpDef::new("square", ["xs"], |_ctx, (xs,): (Vec<i64>,)| {
        xs.iter().map(|x| x * x).sum::<i64>()
    });
    let negate = OpDef::new("negate", ["xs"], |_ctx, (xs,): (Vec<i64>,)| {
        -xs.iter().sum::<i64>()
    });
    let total = OpDef::new(
        "total",
        ["parts"],
        |ctx: &OpContext, (parts,): (Vec<i64>,)| {
            ctx.log().info(format!("fan-in of {} parts", parts.len()));
            Summary {
                count: parts.len(),
                total: parts.iter().sum(),
                label: "scale+square+negate".to_owned(),
            }
        },
    );
    let describe = OpDef::new("describe", ["summary"], |_ctx, (s,): (Summary,)| {
        format!("{} parts, total {}", s.count, s.total)
    });

    let mut job = JobBuilder::new("diamond");
    let xs = job.add(&numbers, ());
    let a = job.add(&scale, xs);
    let b = job.add(&square, xs);
    let c = job.add(&negate, xs);
    let t = job.add(&total, vec![a, b, c]);
    job.add(&describe, t);
    job.build().expect("diamond is valid")
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

/// `start` feeds `boom` (always fails) -> `after_boom` -> `end`, and `side` (succeeds).
pub fn failing() -> Job {
    let start = OpDef::new("start", [], |_ctx, (): ()| 1_i64);
    let boom = OpDef::try_new("boom", ["x"], |_ctx, (_x,): (i64,)| {
        Err::<i64, _>(Boom {
            source: std::io::Error::other("disk on fire"),
        })
    });
    let after = OpDef::new("after_boom", ["x"], |_ctx, (x,): (i64,)| {
        // Never runs: if it did, this marker would show up in the events.
        println!("AFTER-BOOM-RAN");
        x + 1
    });
    let end = OpDef::new("end", ["x"], |_ctx, (x,): (i64,)| x);
    let side = OpDef::new("side", ["x"], |_ctx, (x,): (i64,)| x * 10);

    let mut job = JobBuilder::new("failing");
    let s = job.add(&start, ());
    let b = job.add(&boom, s);
    let a = job.add(&after, b);
    job.add(&end, a);
    job.add(&side, s);
    job.build().expect("failing is valid")
}

/// `flaky` fails on its first two attempts and succeeds on the third (2 retries allowed,
/// 20 ms base delay, exponential backoff); `after_flaky` doubles its output.
pub fn flaky() -> Job {
    let flaky = OpDef::try_new("flaky", [], |ctx: &OpContext, (): ()| {
        if ctx.attempt() < 3 {
            Err(format!("transient failure on attempt {}", ctx.attempt()))
        } else {
            Ok(ctx.attempt() as i64)
        }
    })
    .retry_policy(
        RetryPolicy::new(2)
            .with_delay(Duration::from_millis(20))
            .with_backoff(Backoff::Exponential),
    );
    let after = OpDef::new("after_flaky", ["x"], |_ctx, (x,): (i64,)| x * 2);
    let mut job = JobBuilder::new("flaky");
    let f = job.add(&flaky, ());
    job.add(&after, f);
    job.build().expect("flaky is valid")
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

/// `source` fans out to `n` GPU-free `part_i` steps, which fan in to `sum`: the result is
/// `n * (n + 1) / 2`.
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

/// `prepare` feeds three GPU-tagged `train_i` steps and an untagged `cpu_side`; `report`
/// collects the trainings (126). Where each step ran shows in its events' `worker`.
pub fn gpu() -> Job {
    let prepare = OpDef::new("prepare", [], |_ctx, (): ()| {
        // A plain print, outside the event protocol: it reaches the driver as a line.
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        println!("prepare runs {exe}");
        21_u32
    });
    let train = OpDef::new("train", ["x"], |ctx: &OpContext, (x,): (u32,)| {
        ctx.log().info("training on the GPU");
        x * 2
    })
    .resource("GPU", 1.0);
    let cpu = OpDef::new("cpu_side", ["x"], |_ctx, (x,): (u32,)| x + 1);
    let report = OpDef::new("report", ["xs"], |_ctx, (xs,): (Vec<u32>,)| {
        xs.iter().sum::<u32>()
    });
    let mut job = JobBuilder::new("gpu");
    let p = job.add(&prepare, ());
    let trained: Vec<_> = (1..=3)
        .map(|i| job.add_as(&format!("train_{i}"), &train, p))
        .collect();
    job.add(&cpu, p);
    job.add(&report, trained);
    job.build().expect("gpu is valid")
}

/// `nap` logs, then sleeps for `ops.nap.config.seconds`, writing its process id to
/// `ops.nap.config.pid_file` first (tests check the process is gone after a cancel);
/// `after_nap` follows it.
pub fn sleepy() -> Job {
    #[derive(Deserialize)]
    struct NapConfig {
        seconds: f64,
        #[serde(default)]
        pid_file: Option<String>,
    }
    let nap = OpDef::try_new("nap", [], |ctx: &OpContext, (): ()| {
        let cfg: NapConfig = ctx.config()?;
        if let Some(path) = &cfg.pid_file {
            std::fs::write(path, std::process::id().to_string())?;
        }
        ctx.log().info("nap started");
        std::thread::sleep(Duration::from_secs_f64(cfg.seconds));
        ctx.log().info("nap over");
        Ok::<_, BoxError>(cfg.seconds)
    })
    .config::<NapConfig>();
    let after = OpDef::new("after_nap", ["s"], |_ctx, (s,): (f64,)| s * 2.0);
    let mut job = JobBuilder::new("sleepy");
    let n = job.add(&nap, ());
    job.add(&after, n);
    job.build().expect("sleepy is valid")
}
