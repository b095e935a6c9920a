//! Compile-time errors of `#[op]` and `job!`, at the user's tokens (trybuild UI tests).
//!
//! One file per error, by category: `tests/ui/op/` for `#[op]`, `tests/ui/job/` for `job!`.
//! Each `.stderr` is the compiler's message as a user sees it. After changing a message,
//! re-bless with `TRYBUILD=overwrite cargo test -p tests --test ui` and read the diff.
//! The messages are rustc's too, so they are checked on the workspace's pinned toolchain.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/op/*.rs");
    t.compile_fail("ui/job/*.rs");
    t.pass("ui/pass/*.rs");
}
