#[must_use]
fn numbers() -> ::dagster_dask::graph::Job {
    #[allow(unused_mut)]
    let mut __dd_job = ::dagster_dask::graph::JobBuilder::new("numbers");
    let __dd_step1 = {
        let __dd_op = <source as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job.add(&__dd_op, ())
    };
    let (evens, _) = {
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
        let __dd_op = <total as ::dagster_dask::op::OpDefinition>::definition();
        __dd_job
            .add(
                &__dd_op,
                (::dagster_dask::__private::edge_at::<_, _, _, 0usize>(&__dd_op, evens),),
            )
    };
    ::dagster_dask::__private::finish(__dd_job)
}
