//! The `mapped` test job (dynamic outputs) as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::mapped())
}
