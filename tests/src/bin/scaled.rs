//! The `scaled` test job (map bodies with other inputs) as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::scaled())
}
