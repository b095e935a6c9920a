//! The `numbers_split` test job (multiple and optional outputs) as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::numbers_split())
}
