#[must_use]
fn numbers() -> ::dagster_dask::graph::Job {
    #[allow(unused_mut)]
    let mut __dd_job = ::dagster_dask::graph::JobBuilder::new("numbers");
    /// The resources this job provides, as types: checked against each op's needs.
    #[allow(dead_code)]
    struct __DdResources;
    let __dd_step1 = {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <source as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <source as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job.add(&__dd_op, ())
    };
    let (evens, _) = {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <split as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <split as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job
            .add(
                &__dd_op,
                (
                    ::dagster_dask::__private::edge_at::<
                        _,
                        _,
                        _,
                        0usize,
                    >(&__dd_op, __dd_step1),
                ),
            )
    };
    {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <total as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <total as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job
            .add(
                &__dd_op,
                (::dagster_dask::__private::edge_at::<_, _, _, 0usize>(&__dd_op, evens),),
            )
    };
    ::dagster_dask::__private::finish(__dd_job)
}
