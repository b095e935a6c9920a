use dagster_dask::prelude::*;

#[op]
fn get_name() -> String {
    "dask".to_owned()
}

fn not_an_op(name: String) -> String {
    name
}

job! {
    fn broken() {
        let name = get_name();
        greet(name);
    }
}

job! {
    fn plain_function() {
        let name = get_name();
        not_an_op(name);
    }
}

fn main() {}
