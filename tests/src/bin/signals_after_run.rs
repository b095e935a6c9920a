//! Runs a library run that cancels on interrupt, then sends itself the signal named by its
//! argument (`INT` or `TERM`): after the run, the signal must take its default action and
//! end the process before it prints `SURVIVED`.

use std::time::Duration;

use dagster_dask::exec::Run;

fn main() {
    let signal = std::env::args().nth(1).unwrap_or_else(|| "TERM".to_owned());
    let job = tests::chain(3);
    let result = Run::new(&job)
        .in_memory()
        .cancel_on_interrupt(true)
        .execute()
        .expect("the run starts");
    assert!(result.success());
    println!("run ended");
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(std::process::id().to_string())
        .status()
        .expect("kill runs");
    assert!(sent.success());
    std::thread::sleep(Duration::from_secs(5));
    println!("SURVIVED");
}
