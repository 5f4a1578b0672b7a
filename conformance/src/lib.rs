//! Nothing but a home for the backends' conformance suite (`tests/conformance.rs`), which
//! needs the optional `redis` and `sqs` features of `monogusa`.
