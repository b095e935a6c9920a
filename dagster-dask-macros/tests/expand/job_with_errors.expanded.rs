#[must_use]
fn broken() -> ::dagster_dask::graph::Job {
    #[allow(unused_mut)]
    let mut __dd_builder = ::dagster_dask::graph::JobBuilder::new("broken");
    let __dd_job = &mut __dd_builder;
    /// The resources this job provides, as types: checked against each op's needs.
    #[allow(dead_code)]
    struct __DdResources;
    ::dagster_dask::__private::finish(__dd_builder)
}
::core::compile_error! {
    "`b` is not a handle defined above: bind it first with `let b = op(...);` (a step can only use the outputs of steps before it, so jobs have no cycles)"
}
