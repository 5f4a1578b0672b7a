//! Nothing here: the micro-benchmarks are in `benches/micro.rs` (`cargo bench -p
//! monogusa-micro-benches`).
