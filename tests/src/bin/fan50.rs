//! A 50-way fan-out and fan-in as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::fan(50))
}
