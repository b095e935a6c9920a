#[must_use]
fn numbers() -> ::dagster_dask::graph::Job {
    #[allow(unused_mut)]
    let mut __dd_builder = ::dagster_dask::graph::JobBuilder::new("numbers");
    let __dd_job = &mut __dd_builder;
    /// The resources this job provides, as types: checked against each op's needs.
    #[allow(dead_code)]
    struct __DdResources;
    let __dd_step1 = {
        type __DdNode = source;
        ::dagster_dask::__private::provided::<
            __DdResources,
            <__DdNode as ::dagster_dask::graph::Node>::Resources,
        >();
        ::dagster_dask::graph::add_node::<
            __DdNode,
            _,
        >(__dd_job, ::core::option::Option::None, ())
    };
    let (evens, _) = {
        type __DdNode = split;
        ::dagster_dask::__private::provided::<
            __DdResources,
            <__DdNode as ::dagster_dask::graph::Node>::Resources,
        >();
        ::dagster_dask::graph::add_node::<
            __DdNode,
            _,
        >(
            __dd_job,
            ::core::option::Option::None,
            (::dagster_dask::__private::edge_at::<__DdNode, _, 0usize>(__dd_step1),),
        )
    };
    {
        type __DdNode = total;
        ::dagster_dask::__private::provided::<
            __DdResources,
            <__DdNode as ::dagster_dask::graph::Node>::Resources,
        >();
        ::dagster_dask::graph::add_node::<
            __DdNode,
            _,
        >(
            __dd_job,
            ::core::option::Option::None,
            (::dagster_dask::__private::edge_at::<__DdNode, _, 0usize>(evens),),
        )
    };
    ::dagster_dask::__private::finish(__dd_builder)
}
