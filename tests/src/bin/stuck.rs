//! The `stuck` test job as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::stuck())
}
