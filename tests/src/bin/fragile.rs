//! The `fragile` test job (re-execution from failure) as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::fragile())
}
