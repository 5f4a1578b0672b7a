//! Misuse of `#[service]` is a compile error pointing at the offending item. Each case is a
//! file in tests/ui with the expected compiler output beside it (regenerate with
//! `TRYBUILD=overwrite cargo test -p monogusa-macros --test macro_errors` after checking the
//! new output).
//!
//! Grouped by whose words they pin: `ui/misuse` holds the macro's own messages; `ui/rustc`
//! the cases reported by rustc's trait-bound errors (non-serde types), whose wording changes
//! with the compiler: a compiler update touches only those.
#![allow(missing_docs)] // tests, not API

#[test]
fn misuse_is_a_compile_error_with_a_span() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/misuse/*.rs");
    cases.compile_fail("tests/ui/rustc/*.rs");
}
