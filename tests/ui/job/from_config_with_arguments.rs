use dagster_dask::prelude::*;

#[op]
fn upper(word: String) -> String {
    word.to_uppercase()
}

job! {
    fn shout() {
        upper(from_config!("hi"));
    }
}

fn main() {}
