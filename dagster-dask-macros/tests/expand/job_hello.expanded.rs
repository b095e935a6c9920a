/// Says hello.
#[must_use]
pub fn hello_job() -> ::dagster_dask::graph::Job {
    #[allow(unused_mut)]
    let mut __dd_builder = ::dagster_dask::graph::JobBuilder::new("hello_job");
    let __dd_job = &mut __dd_builder;
    /// The resources this job provides, as types: checked against each op's needs.
    #[allow(dead_code)]
    struct __DdResources;
    __dd_job.description("Says hello.");
    let name = {
        type __DdNode = get_name;
        ::dagster_dask::__private::provided::<
            __DdResources,
            <__DdNode as ::dagster_dask::graph::Node>::Resources,
        >();
        ::dagster_dask::graph::add_node::<
            __DdNode,
            _,
        >(__dd_job, ::core::option::Option::None, ())
    };
    {
        type __DdNode = hello;
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
            (::dagster_dask::__private::edge_at::<__DdNode, _, 0usize>(name),),
        )
    };
    ::dagster_dask::__private::finish(__dd_builder)
}
