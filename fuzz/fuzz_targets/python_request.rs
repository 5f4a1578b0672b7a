//! Fuzz target: see `monogusa::fuzzing::python_request` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monogusa::fuzzing::python_request(data));
