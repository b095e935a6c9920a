use dagster_dask::prelude::*;

#[op]
fn hello(name: String, ctx: &OpContext) -> String {
    ctx.log().info("hi");
    name
}

fn main() {}
