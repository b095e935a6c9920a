//! Hello, dagster-dask: one name fans out to three greetings, which fan in to one line.
//!
//! ```text
//! cargo run --example hello                 # run it (embedded executor, local storage)
//! cargo run --example hello -- graph        # the graph as text (also: --format mermaid|dot)
//! cargo run --example hello -- --help       # the job binary's command line
//! ```

use std::process::ExitCode;

use dagster_dask::prelude::*;

fn hello_job() -> Job {
    let get_name = OpDef::new("get_name", [], |_ctx, (): ()| "Dask".to_owned())
        .description("The name to greet.");
    let greeting = |op: &'static str, template: &'static str| {
        OpDef::new(op, ["name"], move |ctx: &OpContext, (name,): (String,)| {
            let line = template.replace("{name}", &name);
            ctx.log().info(format!("{op} says: {line}"));
            line
        })
    };
    let english = greeting("english", "Hello, {name}!");
    let french = greeting("french", "Bonjour, {name} !");
    let german = greeting("german", "Hallo, {name}!");
    let together = OpDef::new("together", ["greetings"], |_ctx, (all,): (Vec<String>,)| {
        all.join(" | ")
    })
    .description("Fan-in: every greeting, in one line.");

    let mut job = JobBuilder::new("hello");
    let name = job.add(&get_name, ());
    let greetings = vec![
        job.add(&english, name),
        job.add(&french, name),
        job.add(&german, name),
    ];
    job.add(&together, greetings);
    job.build().expect("the hello graph is valid")
}

fn main() -> ExitCode {
    dagster_dask::main(hello_job())
}
