//! A chain of 20 steps as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::chain(20))
}
