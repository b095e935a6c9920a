//! Hello, dagster-dask: one name fans out to three greetings, which fan in to one line.
//!
//! ```text
//! cargo run --example hello                 # run it (embedded executor, local storage)
//! cargo run --example hello -- graph        # the graph as text (also: --format mermaid|dot)
//! cargo run --example hello -- --help       # the job binary's command line
//! ```

use std::process::ExitCode;

use dagster_dask::prelude::*;

/// The name to greet.
#[op]
fn get_name() -> String {
    "Dask".to_owned()
}

#[op]
fn english(ctx: &OpContext, name: String) -> String {
    greet(ctx, "Hello, {name}!", &name)
}

#[op]
fn french(ctx: &OpContext, name: String) -> String {
    greet(ctx, "Bonjour, {name} !", &name)
}

#[op]
fn german(ctx: &OpContext, name: String) -> String {
    greet(ctx, "Hallo, {name}!", &name)
}

fn greet(ctx: &OpContext, template: &str, name: &str) -> String {
    let line = template.replace("{name}", name);
    ctx.log().info(format!("{} says: {line}", ctx.step_key()));
    line
}

/// Fan-in: every greeting, in one line.
#[op]
fn together(greetings: Vec<String>) -> String {
    greetings.join(" | ")
}

job! {
    /// Greets in three languages at once.
    fn hello() {
        let name = get_name();
        together([english(name), french(name), german(name)]);
    }
}

fn main() -> ExitCode {
    dagster_dask::main(hello())
}
