/// Greets someone.
fn hello(name: String) -> String {
    format!("Hello, {name}!")
}
/// The op `hello`, defined by the function [`hello()`]: add it to a job with `job!`, or with `JobBuilder::add(&<hello as OpDefinition>::definition(), ...)`.
#[allow(non_camel_case_types, dead_code)]
struct hello {}
impl ::dagster_dask::op::OpDefinition for hello {
    type Inputs = (<String as ::dagster_dask::__private::IsValue>::Type,);
    type Output = <String as ::dagster_dask::__private::IsValue>::Type;
    type Resources = ();
    const NAME: &'static str = "hello";
    fn definition() -> ::dagster_dask::op::OpDef<Self::Inputs, Self::Output> {
        ::dagster_dask::op::OpDef::new(
                Self::NAME,
                ["name"],
                move |_: &::dagster_dask::op::OpContext, (__dd_in0,): Self::Inputs| hello(
                    __dd_in0,
                ),
            )
            .description("Greets someone.")
    }
}
