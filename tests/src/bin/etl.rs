//! The `etl` example as a test job binary (the Dask tests run it on the test cluster).

#[path = "../../../examples/etl.rs"]
#[allow(unreachable_pub)]
mod etl;

fn main() -> std::process::ExitCode {
    etl::main()
}
