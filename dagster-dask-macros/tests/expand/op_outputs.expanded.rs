fn split(xs: Vec<u64>) -> Result<(Vec<u64>, Option<Vec<u64>>), SplitError> {
    todo!()
}
/// The op `split`, defined by the function [`split()`]: add it to a job with `job!`, or with `JobBuilder::add(&<split as OpDefinition>::definition(), ...)`.
#[allow(non_camel_case_types, dead_code)]
struct split {}
impl ::dagster_dask::op::OpDefinition for split {
    type Inputs = (<Vec<u64> as ::dagster_dask::__private::IsValue>::Type,);
    type Output = ::dagster_dask::op::Named<
        (
            ::dagster_dask::op::Out<
                <Vec<u64> as ::dagster_dask::__private::IsValue>::Type,
            >,
            ::dagster_dask::op::OptionalOut<
                <Vec<u64> as ::dagster_dask::__private::IsValue>::Type,
            >,
        ),
    >;
    type Resources = ();
    const NAME: &'static str = "split";
    fn definition() -> ::dagster_dask::op::OpDef<Self::Inputs, Self::Output> {
        ::dagster_dask::op::OpDef::try_multi(
            Self::NAME,
            ["xs"],
            (::dagster_dask::op::out("evens"), ::dagster_dask::op::optional_out("odds")),
            move |_: &::dagster_dask::op::OpContext, (__dd_in0,): Self::Inputs| split(
                __dd_in0,
            ),
        )
    }
}
