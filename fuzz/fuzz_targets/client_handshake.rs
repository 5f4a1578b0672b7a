//! Fuzz target: see `monogusa::fuzzing::client_handshake` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monogusa::fuzzing::client_handshake(data));
