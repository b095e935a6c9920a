#[must_use]
fn fan_job() -> ::dagster_dask::graph::Job {
    #[allow(unused_mut)]
    let mut __dd_builder = ::dagster_dask::graph::JobBuilder::new("fan");
    let __dd_job = &mut __dd_builder;
    /// The resources this job provides, as types: checked against each op's needs.
    #[allow(dead_code)]
    struct __DdResources;
    __dd_job.tag("owner", "me");
    let x = {
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
    let a = {
        type __DdNode = part;
        ::dagster_dask::__private::provided::<
            __DdResources,
            <__DdNode as ::dagster_dask::graph::Node>::Resources,
        >();
        ::dagster_dask::graph::add_node::<
            __DdNode,
            _,
        >(
            __dd_job,
            ::core::option::Option::Some("first"),
            (::dagster_dask::__private::edge_at::<__DdNode, _, 0usize>(x),),
        )
    };
    let __dd_step1 = {
        type __DdNode = part;
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
            (::dagster_dask::__private::edge_at::<__DdNode, _, 0usize>(x),),
        )
    };
    let __dd_step2 = {
        type __DdNode = part;
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
            (::dagster_dask::__private::edge_at::<__DdNode, _, 0usize>(x),),
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
            (
                ::dagster_dask::__private::edge_at::<
                    __DdNode,
                    _,
                    0usize,
                >([a, __dd_step1, __dd_step2]),
            ),
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
            ::core::option::Option::Some("just_one"),
            (::dagster_dask::__private::edge_at::<__DdNode, _, 0usize>(::std::vec![a]),),
        )
    };
    ::dagster_dask::__private::finish(__dd_builder)
}
