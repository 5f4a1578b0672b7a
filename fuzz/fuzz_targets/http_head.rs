//! Fuzz target: see `monogusa::fuzzing::http_head` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monogusa::fuzzing::http_head(data));
