use dagster_dask::prelude::*;

#[op]
fn one() -> u8 {
    1
}

job! {
    #[job(tags("dagster/max_runtime" = "an hour"))]
    fn slow() {
        one();
    }
}

fn main() {}
