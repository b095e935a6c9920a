async fn fetch(url: String) -> std::io::Result<Vec<u8>> {
    todo!()
}
/// The op `fetch`, defined by the function [`fetch()`]: add it to a job with `job!`, or with `JobBuilder::add(&<fetch as OpDefinition>::definition(), ...)`.
#[allow(non_camel_case_types, dead_code)]
struct fetch {}
impl ::dagster_dask::op::OpDefinition for fetch {
    type Inputs = (<String as ::dagster_dask::__private::IsValue>::Type,);
    type Output = <<std::io::Result<
        Vec<u8>,
    > as ::dagster_dask::op::OpResult>::Output as ::dagster_dask::__private::IsValue>::Type;
    type Resources = ();
    const NAME: &'static str = "fetch";
    fn definition() -> ::dagster_dask::op::OpDef<Self::Inputs, Self::Output> {
        ::dagster_dask::op::OpDef::try_new(
                Self::NAME,
                ["url"],
                move |_: &::dagster_dask::op::OpContext, (__dd_in0,): Self::Inputs| ::dagster_dask::__private::block_on(
                    fetch(__dd_in0),
                ),
            )
            .retry_policy(::dagster_dask::op::RetryPolicy::new(2))
    }
}
