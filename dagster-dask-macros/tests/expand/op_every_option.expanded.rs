pub fn train(
    ctx: &OpContext,
    rows: Vec<f64>,
    labels: Vec<u8>,
) -> Result<Model, TrainError> {
    todo!()
}
/// The op `train_model`, defined by the function [`train()`]: add it to a job with `job!`, or with `JobBuilder::add(&<train as OpDefinition>::definition(), ...)`.
#[allow(non_camel_case_types, dead_code)]
pub struct train {}
impl ::dagster_dask::op::OpDefinition for train {
    type Inputs = (
        <Vec<f64> as ::dagster_dask::__private::IsValue>::Type,
        <Vec<u8> as ::dagster_dask::__private::IsValue>::Type,
    );
    type Output = <<Result<
        Model,
        TrainError,
    > as ::dagster_dask::op::OpResult>::Output as ::dagster_dask::__private::IsValue>::Type;
    type Resources = ();
    const NAME: &'static str = "train_model";
    fn definition() -> ::dagster_dask::op::OpDef<Self::Inputs, Self::Output> {
        ::dagster_dask::op::OpDef::try_new(
                Self::NAME,
                ["rows", "labels"],
                move |
                    __dd_ctx: &::dagster_dask::op::OpContext,
                    (__dd_in0, __dd_in1): Self::Inputs|
                train(__dd_ctx, __dd_in0, __dd_in1),
            )
            .description("Trains.")
            .tag("team", "ml")
            .tag("dagster/priority", "3")
            .resource("GPU", 1f64)
            .resource("MEMORY", 10000000000f64)
            .retry_policy(
                ::dagster_dask::op::RetryPolicy::new(3)
                    .with_delay(::core::time::Duration::from_millis(250))
                    .with_backoff(::dagster_dask::op::Backoff::Exponential)
                    .with_jitter(::dagster_dask::op::Jitter::PlusMinus),
            )
            .config::<TrainConfig>()
    }
}
