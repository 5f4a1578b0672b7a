//! The values of the foreign wire formats (Python's pickles, msgpack), sans IO:
//! `ForeignValue` (what either carries: ints of any width, floats, strings, bytes, sequences,
//! maps, and Python's exceptions and tokens), the serde bridge between them and Rust types
//! (`bridge`), and [`Dynamic`], the Rust type that holds any plain value. The Python listener
//! (`python`, `server::python`) and the msgpack-rpc one (`msgpack`, `server::msgpack`) both
//! speak through it.

pub(crate) mod bridge;
mod dynamic;
pub(crate) mod shaped;
pub(crate) mod value;

pub use dynamic::Dynamic;
