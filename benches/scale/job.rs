//! The job binary of the scale benchmark (`benches/scale/run.sh`): one binary, many shapes.
//!
//! The shape comes from the binary's own file name, `scale-<shape>[-<n>]`, because Dask
//! workers run the same file in step mode and must build the same job: the benchmark copies
//! this binary once per shape (`scale-fan-1000`, `scale-chain-20`, ...). Shapes: `single`,
//! `chain-N`, `fan-N` (fan-out N and a fan-in), `payload` (10 MiB through a chain of 3), `gpu`
//! (one op that asks for `GPU: 1`), `failing` (an op that fails and one downstream of it).

use std::process::ExitCode;

use dagster_dask::prelude::*;

const PAYLOAD_BYTES: usize = 10 << 20;

fn job_for(shape: &str) -> Result<Job, String> {
    let sized = |prefix: &str| -> Option<Result<usize, String>> {
        shape.strip_prefix(prefix).map(|n| {
            n.parse()
                .map_err(|_| format!("`{shape}`: `{n}` is not a number of steps"))
        })
    };
    if let Some(n) = sized("chain-") {
        return Ok(tests::chain(n?));
    }
    if let Some(n) = sized("fan-") {
        return Ok(tests::fan(n?));
    }
    let mut job = JobBuilder::new(shape);
    match shape {
        "single" => {
            job.add(&OpDef::new("one", [], |_ctx, (): ()| 1_u64), ());
        }
        "payload" => {
            let make = OpDef::new("make", [], |_ctx, (): ()| vec![7_u8; PAYLOAD_BYTES]);
            let pass = OpDef::new("pass", ["bytes"], |_ctx, (b,): (Vec<u8>,)| b);
            let measure = OpDef::new("measure", ["bytes"], |_ctx, (b,): (Vec<u8>,)| {
                b.len() as u64
            });
            let m = job.add(&make, ());
            let p = job.add(&pass, m);
            job.add(&measure, p);
        }
        "gpu" => {
            let train = OpDef::new("train", [], |_ctx, (): ()| 2_u64).resource("GPU", 1.0);
            job.add(&train, ());
        }
        "failing" => {
            let boom = OpDef::try_new("boom", [], |_ctx, (): ()| {
                Err::<u64, _>(std::io::Error::other("boom, as planned"))
            });
            let after = OpDef::new("after", ["x"], |_ctx, (x,): (u64,)| x);
            let b = job.add(&boom, ());
            job.add(&after, b);
        }
        other => return Err(format!("unknown shape `{other}`")),
    }
    job.build().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let exe = std::env::args().next().unwrap_or_default();
    let name = std::path::Path::new(&exe)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(shape) = name.strip_prefix("scale-") else {
        eprintln!("this binary is copied to `scale-<shape>` by benches/scale/run.sh; run that");
        return ExitCode::from(2);
    };
    match job_for(shape) {
        Ok(job) => dagster_dask::main(job),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
