//! Guides that go with the API reference.

#[doc = include_str!("../docs/type_errors.md")]
pub mod type_errors {}
