//! Fuzz target: see `monogusa::fuzzing::websocket` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monogusa::fuzzing::websocket(data));
