//! Four independent half-second steps after a common upstream, as a job binary.

fn main() -> std::process::ExitCode {
    dagster_dask::main(tests::spread(4))
}
