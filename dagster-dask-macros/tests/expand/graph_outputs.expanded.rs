/// The graph `prepare`: use it in `job!` (or another graph) like an op, or add `prepare::definition()` with `JobBuilder::add_graph`. Cleans, then counts.
#[allow(non_camel_case_types, dead_code)]
pub struct prepare {}
impl prepare {
    /// The graph's definition.
    #[must_use]
    pub fn definition() -> ::dagster_dask::graph::GraphDef<
        (<Vec<i64> as ::dagster_dask::__private::IsValue>::Type,),
        (::dagster_dask::graph::Output<Vec<i64>>, ::dagster_dask::graph::Output<usize>),
    > {
        ::dagster_dask::graph::GraphDef::new(
                "prepare",
                ["raw"],
                |
                    __dd_job: &mut ::dagster_dask::graph::JobBuilder,
                    (
                        raw,
                    ): (
                        ::dagster_dask::graph::GraphInput<
                            <Vec<i64> as ::dagster_dask::__private::IsValue>::Type,
                        >,
                    ),
                | -> (
                    ::dagster_dask::graph::Output<Vec<i64>>,
                    ::dagster_dask::graph::Output<usize>,
                ) {
                    let cleaned = {
                        type __DdNode = clean;
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
                                >(raw),
                            ),
                        )
                    };
                    let __dd_step1 = {
                        type __DdNode = count;
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
                                >(cleaned),
                            ),
                        )
                    };
                    (cleaned, __dd_step1)
                },
            )
            .tag("team", "data")
            .retry_policy(::dagster_dask::op::RetryPolicy::new(1))
    }
}
impl ::dagster_dask::graph::Node for prepare {
    type Inputs = (<Vec<i64> as ::dagster_dask::__private::IsValue>::Type,);
    type Handles = (
        ::dagster_dask::graph::Output<Vec<i64>>,
        ::dagster_dask::graph::Output<usize>,
    );
    type Resources = (
        <clean as ::dagster_dask::graph::Node>::Resources,
        <count as ::dagster_dask::graph::Node>::Resources,
    );
    fn add_to(
        job: &mut ::dagster_dask::graph::JobBuilder,
        alias: ::core::option::Option<&str>,
        inputs: ::std::vec::Vec<::dagster_dask::graph::Wiring>,
    ) -> Self::Handles {
        Self::definition().add_to(job, alias, inputs)
    }
}
