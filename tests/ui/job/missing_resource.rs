use dagster_dask::op::BoxError;
use dagster_dask::prelude::*;

struct Warehouse;

impl Resource for Warehouse {
    type Config = ();
    fn build(_: (), _: &ResourceContext) -> Result<Self, BoxError> {
        Ok(Warehouse)
    }
}

#[op]
fn load(_warehouse: &Warehouse) -> u32 {
    1
}

job! {
    fn no_resources() {
        load();
    }
}

job! {
    #[job(resources(io_manager = Warehouse))]
    fn reserved() {
        load();
    }
}

graph! {
    // A graph needs what its ops need: checked where the graph is used.
    fn loading() -> u32 {
        load()
    }
}

job! {
    fn graph_without_resources() {
        loading();
    }
}

fn main() {}
