//! The `traced_job` test job (tracing and log capture) as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::traced_job())
}
