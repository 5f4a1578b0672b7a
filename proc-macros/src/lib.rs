//! Procedural macros for [monogusa](https://crates.io/crates/monogusa).
//!
//! This crate is reserved for the `#[service]` attribute, which turns a trait into a typed
//! client stub and a server-side dispatcher. It exports nothing yet: until it lands, functions
//! are registered with `Manager::builder().register(..)` and called with `Client::call`.
