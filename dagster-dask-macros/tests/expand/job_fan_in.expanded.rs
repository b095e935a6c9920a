#[must_use]
fn fan_job() -> ::dagster_dask::graph::Job {
    #[allow(unused_mut)]
    let mut __dd_job = ::dagster_dask::graph::JobBuilder::new("fan");
    /// The resources this job provides, as types: checked against each op's needs.
    #[allow(dead_code)]
    struct __DdResources;
    __dd_job.tag("owner", "me");
    let x = {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <source as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <source as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job.add(&__dd_op, ())
    };
    let a = {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <part as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <part as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job
            .add_as(
                "first",
                &__dd_op,
                (::dagster_dask::__private::edge_at::<_, _, _, 0usize>(&__dd_op, x),),
            )
    };
    let __dd_step1 = {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <part as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <part as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job
            .add(
                &__dd_op,
                (::dagster_dask::__private::edge_at::<_, _, _, 0usize>(&__dd_op, x),),
            )
    };
    let __dd_step2 = {
        ::dagster_dask::__private::provided::<
            __DdResources,
            <part as ::dagster_dask::op::OpDefinition>::Resources,
        >();
        let __dd_op = <part as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job
            .add(
                &__dd_op,
                (::dagster_dask::__private::edge_at::<_, _, _, 0usize>(&__dd_op, x),),
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
                (
                    ::dagster_dask::__private::edge_at::<
                        _,
                        _,
                        _,
                        0usize,
                    >(&__dd_op, [a, __dd_step1, __dd_step2]),
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
            .add_as(
                "just_one",
                &__dd_op,
                (
                    ::dagster_dask::__private::edge_at::<
                        _,
                        _,
                        _,
                        0usize,
                    >(&__dd_op, ::std::vec![a]),
                ),
            )
    };
    ::dagster_dask::__private::finish(__dd_job)
}
