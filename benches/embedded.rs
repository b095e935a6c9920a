//! Per-step overhead of the embedded executor on a chain of 1,000 trivial ops.
//!
//! Baseline in the same run (`direct_1000`): the same 1,000 op bodies called one after the
//! other with each value encoded and decoded, as steps must, but with no executor, events or
//! IO manager. Per-step overhead = (executor time - baseline) / 1,000.
//!
//! * `in_process_memory_1000`: sequential, outputs in memory (the executor's own cost).
//! * `multithread_memory_1000`: the thread pool (every step crosses threads twice).
//! * `in_process_local_fs_1000`: sequential, outputs on local disk with atomic writes and the
//!   event log written as JSON lines: what `cargo run` does by default.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dagster_dask::codec;
use dagster_dask::config::{ExecutionConfig, RunConfig};
use dagster_dask::prelude::*;

const N: usize = 1_000;

fn config(execution: ExecutionConfig) -> RunConfig {
    let mut c = RunConfig::default();
    c.execution = execution;
    c
}

fn bench(c: &mut Criterion) {
    let job = tests::chain(N);
    let mut g = c.benchmark_group("embedded_chain");
    g.sample_size(20);

    g.bench_function("direct_1000", |b| {
        b.iter(|| {
            let mut bytes = codec::encode(&0_u64).unwrap();
            for _ in 1..N {
                let x: u64 = codec::decode(&bytes).unwrap();
                bytes = codec::encode(&black_box(x + 1)).unwrap();
            }
            bytes
        })
    });
    g.bench_function("in_process_memory_1000", |b| {
        b.iter(|| {
            let r = Run::new(&job)
                .config(config(ExecutionConfig::InProcess))
                .in_memory()
                .execute()
                .unwrap();
            assert!(r.success());
        })
    });
    g.bench_function("multithread_memory_1000", |b| {
        b.iter(|| {
            let exec = ExecutionConfig::Multithread {
                max_concurrent: Some(2),
            };
            let r = Run::new(&job)
                .config(config(exec))
                .in_memory()
                .execute()
                .unwrap();
            assert!(r.success());
        })
    });
    let dir = std::env::temp_dir().join(format!("dagster-dask-bench-{}", std::process::id()));
    let io: std::sync::Arc<dyn dagster_dask::io::IoManager> =
        std::sync::Arc::new(dagster_dask::io::ObjectStoreIoManager::local(&dir).unwrap());
    g.bench_function("in_process_local_fs_1000", |b| {
        b.iter(|| {
            let r = Run::new(&job)
                .config(config(ExecutionConfig::InProcess))
                .io_manager(std::sync::Arc::clone(&io))
                .execute()
                .unwrap();
            assert!(r.success());
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
