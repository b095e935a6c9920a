use dagster_dask::prelude::*;

#[op]
fn one() -> i64 {
    1
}

#[op]
fn inc(x: i64) -> i64 {
    x + 1
}

job! {
    fn twice() {
        let x = one();
        let a = inc(x).alias("step");
        inc(a).alias("step");
    }
}

job! {
    fn clash_with_auto_name() {
        let x = one().alias("inc");
        inc(x);
    }
}

job! {
    fn bad_alias() {
        one().alias("no spaces please");
    }
}

fn main() {}
