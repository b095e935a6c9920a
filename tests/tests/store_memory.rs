//! A large output streams into the object store: the process's peak memory stays within one
//! copy of the value and a bounded buffer. A test binary of its own, so that its peak is this
//! run's alone; Linux's `/proc` resets and reads the peak.
#![cfg(target_os = "linux")]

use dagster_dask::config::RunConfig;
use dagster_dask::exec::Run;
use tests::store::S3Server;

/// A line of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_128_mib_output_is_stored_and_loaded_without_a_second_copy_in_memory() {
    let s3 = S3Server::start();
    s3.create_bucket("runs");
    let job = tests::payload_pair();
    let value: u64 = 128 << 20;
    let yaml = format!(
        "resources:\n  io_manager: {{ config: {{ s3_bucket: runs }} }}\n  s3:\n    config: \
         {{ endpoint_url: '{}', use_ssl: false, region_name: us-east-1, aws_access_key_id: t, \
         aws_secret_access_key: t }}\nops: {{ payload: {{ config: {{ bytes: {value} }} }} }}\n",
        s3.endpoint
    );
    let config = RunConfig::from_yaml(&yaml, &job).unwrap();
    // The peak from here on: `5` resets it to what is resident now.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status("VmRSS");
    let result = Run::new(&job).config(config).execute().unwrap();
    assert!(result.success(), "{:?}", result.events());
    let peak = status("VmHWM");
    eprintln!(
        "peak RSS {} MiB (before the run {} MiB) for a {} MiB output",
        peak >> 20,
        before >> 20,
        value >> 20
    );
    // One copy of the value (stored by `payload`, then loaded by `measure`), at most four
    // 16 MiB parts in flight and one filling, and what was resident before; encoding or
    // loading through memory first would add another 128 MiB.
    let bound = before + value + ((5 * 16) << 20) + (16 << 20);
    assert!(
        peak < bound,
        "peak {} MiB >= {} MiB",
        peak >> 20,
        bound >> 20
    );
    assert_eq!(result.output::<u64>("measure").unwrap(), value);
}
