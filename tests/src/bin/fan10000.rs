//! A 10,000-step fan-out and its fan-in, as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::fan(10_000))
}
