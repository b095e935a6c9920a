//! Expansion snapshots: each case feeds tokens to an expander and compares the
//! pretty-printed output with `tests/expand/<case>.expanded.rs`. To accept a change after
//! reading its diff, re-bless with `DAGSTER_DASK_BLESS=1 cargo test -p dagster-dask-macros`.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

fn check(case: &str, expanded: TokenStream) {
    let file: syn::File = syn::parse2(expanded.clone()).unwrap_or_else(|e| {
        panic!("{case}: the expansion does not parse as items: {e}\n{expanded}")
    });
    let pretty = prettyplease::unparse(&file);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expand")
        .join(format!("{case}.expanded.rs"));
    if std::env::var_os("DAGSTER_DASK_BLESS").is_some() {
        std::fs::write(&path, &pretty).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run with DAGSTER_DASK_BLESS=1 to write it, then read it\n{pretty}",
            path.display()
        )
    });
    assert!(
        expected == pretty,
        "expansion of `{case}` changed; if intended, re-bless with DAGSTER_DASK_BLESS=1\n\
         --- expected ({})\n{expected}\n--- actual\n{pretty}",
        path.display()
    );
}

#[test]
fn op_plain() {
    check(
        "op_plain",
        crate::op::expand(
            quote!(),
            quote! {
                /// Greets someone.
                fn hello(name: String) -> String {
                    format!("Hello, {name}!")
                }
            },
        ),
    );
}

#[test]
fn op_every_option() {
    check(
        "op_every_option",
        crate::op::expand(
            quote!(
                name = "train_model",
                description = "Trains.",
                tags(
                    team = "ml",
                    "dagster/priority" = "3",
                    resource_requirements(GPU = 1, MEMORY = 10e9)
                ),
                retry_policy(
                    max_retries = 3,
                    delay_ms = 250,
                    backoff = exponential,
                    jitter = plus_minus
                ),
                config = TrainConfig
            ),
            quote! {
                pub fn train(ctx: &OpContext, rows: Vec<f64>, labels: Vec<u8>) -> Result<Model, TrainError> {
                    todo!()
                }
            },
        ),
    );
}

#[test]
fn op_async_with_retries() {
    check(
        "op_async_with_retries",
        crate::op::expand(
            quote!(retries = 2),
            quote! {
                async fn fetch(url: String) -> std::io::Result<Vec<u8>> {
                    todo!()
                }
            },
        ),
    );
}

#[test]
fn op_with_named_and_optional_outputs() {
    check(
        "op_outputs",
        crate::op::expand(
            quote!(out(evens, odds(optional))),
            quote! {
                fn split(xs: Vec<u64>) -> Result<(Vec<u64>, Option<Vec<u64>>), SplitError> {
                    todo!()
                }
            },
        ),
    );
}

#[test]
fn job_with_several_outputs() {
    check(
        "job_outputs",
        crate::job::expand(quote! {
            fn numbers() {
                let (evens, _) = split(source());
                total(evens);
            }
        }),
    );
}

#[test]
fn op_with_errors_keeps_the_function() {
    check(
        "op_with_errors",
        crate::op::expand(
            quote!(nmae = "x"),
            quote! {
                fn generic<T>(x: T) -> T { x }
            },
        ),
    );
}

#[test]
fn job_hello() {
    check(
        "job_hello",
        crate::job::expand(quote! {
            /// Says hello.
            pub fn hello_job() {
                let name = get_name();
                hello(name);
            }
        }),
    );
}

#[test]
fn job_fan_in_nested_and_aliases() {
    check(
        "job_fan_in",
        crate::job::expand(quote! {
            #[job(name = "fan", tags(owner = "me"))]
            fn fan_job() {
                let x = source();
                let a = part(x).alias("first");
                total([a, part(x), part(x)]);
                total(vec![a]).alias("just_one");
            }
        }),
    );
}

#[test]
fn job_with_errors_is_an_empty_job() {
    check(
        "job_with_errors",
        crate::job::expand(quote! {
            fn broken() {
                let a = inc(b);
            }
        }),
    );
}

#[test]
fn graph_with_two_outputs() {
    check(
        "graph_outputs",
        crate::graph::expand(quote! {
            /// Cleans, then counts.
            #[graph(tags(team = "data"), retries = 1)]
            pub fn prepare(raw: Vec<i64>) -> (Vec<i64>, usize) {
                let cleaned = clean(raw);
                (cleaned, count(cleaned))
            }
        }),
    );
}
