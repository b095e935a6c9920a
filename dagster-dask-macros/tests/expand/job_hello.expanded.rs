/// Says hello.
#[must_use]
pub fn hello_job() -> ::dagster_dask::graph::Job {
    #[allow(unused_mut)]
    let mut __dd_job = ::dagster_dask::graph::JobBuilder::new("hello_job");
    /// The resources this job provides, as types: checked against each op's needs.
    #[allow(dead_code)]
    struct __DdResources;
    __dd_job.description("Says hello.");
    let name = {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <get_name as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <get_name as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job.add(&__dd_op, ())
    };
    {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <hello as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <hello as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job
            .add(
                &__dd_op,
                (::dagster_dask::__private::edge_at::<_, _, _, 0usize>(&__dd_op, name),),
            )
    };
    ::dagster_dask::__private::finish(__dd_job)
}
