use dagster_dask::prelude::*;

#[op]
fn one() -> i64 {
    1
}

job! {
    #[job(nmae = "x")]
    fn loops(n: usize) {
        let x = one();
        for _ in 0..3 {
            one();
        }
        let y = 1 + 2;
    }
}

fn main() {
    // The job still exists (with an empty graph), so code using it type-checks.
    let _job: dagster_dask::graph::Job = loops();
}
