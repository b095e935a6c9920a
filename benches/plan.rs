//! Building, validating and planning large graphs.
//!
//! `chain_10000`: 10,000 steps, each reading the previous one (deepest possible graph).
//! `fan_10000`: 100 sources, 9,800 middle steps each reading two sources, 100 fan-ins of 98.
//! Baseline in the same run: `plan_json_10000`, serializing the resulting plan once, a
//! lower bound for any work proportional to the plan.

use criterion::{Criterion, criterion_group, criterion_main};
use dagster_dask::prelude::*;

fn fan(n: usize) -> Job {
    let source = OpDef::new("source", [], |_ctx, (): ()| 1_u64);
    let add = OpDef::new("add", ["a", "b"], |_ctx, (a, b): (u64, u64)| a + b);
    let total = OpDef::new("total", ["xs"], |_ctx, (xs,): (Vec<u64>,)| {
        xs.iter().sum::<u64>()
    });
    let mut job = JobBuilder::new("fan");
    let sources: Vec<_> = (0..100).map(|_| job.add(&source, ())).collect();
    let middle: Vec<_> = (0..n - 200)
        .map(|i| job.add(&add, (sources[i % 100], sources[(i * 7 + 3) % 100])))
        .collect();
    for group in middle.chunks(middle.len().div_ceil(100)) {
        job.add(&total, group.to_vec());
    }
    job.build().unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("build_validate_plan");
    g.sample_size(20);
    g.bench_function("chain_10000", |b| b.iter(|| tests::chain(10_000)));
    g.bench_function("fan_10000", |b| b.iter(|| fan(10_000)));
    let job = tests::chain(10_000);
    g.bench_function("plan_json_10000", |b| b.iter(|| job.plan().to_json().len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
