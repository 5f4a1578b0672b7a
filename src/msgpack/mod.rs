//! msgpack, for the msgpack-rpc listener (`server::msgpack`): an incremental reader with
//! limits, and a writer, over the values the Python listener uses.

pub(crate) mod codec;
