//! Procedural macros for `dagster-dask`.
//!
//! This crate declares only the proc macros; a crate defining proc macros must not contain any
//! other public items. Use them through the `dagster_dask` crate. `#[op]` and `job!` arrive
//! with the DSL; until then the macro-free API in `dagster_dask::op` and `dagster_dask::graph`
//! is the way to define ops and jobs.
