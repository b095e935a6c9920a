use dagster_dask::prelude::*;

#[derive(serde::Deserialize)]
struct Cfg {
    factor: i64,
}

#[op(config = Cfg)]
fn scaled(ctx: &OpContext) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    Ok(ctx.config::<Cfg>()?.factor * 2)
}

#[op]
async fn later(x: i64) -> i64 {
    x + 1
}

#[op]
fn parse(s: String) -> std::io::Result<i64> {
    s.parse().map_err(std::io::Error::other)
}

job! {
    fn mixed() {
        let x = scaled();
        later(x);
    }
}

fn main() {
    assert_eq!(later::NAME, "later");
    assert_eq!(mixed().plan().steps.len(), 2);
    let _ = parse("1".to_owned());
}
