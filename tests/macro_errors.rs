//! Misuse of `#[service]` is a compile error pointing at the offending item. Each case is a
//! file in tests/ui with the expected compiler output beside it (regenerate with
//! `TRYBUILD=overwrite cargo test --test macro_errors` after checking the new output).
#![allow(missing_docs)] // tests, not API

#[test]
fn misuse_is_a_compile_error_with_a_span() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
