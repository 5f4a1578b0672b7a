//! What Python's `multiprocessing.managers` clients speak, sans IO: values
//! ([`value`](self::value)), a pickle reader that loads no code (`unpickle`) and a writer
//! (`pickle`), the authkey handshake in 3.11's and 3.12's forms (`handshake`), the serde
//! bridge to registered Rust functions (`bridge`), the methods of plain results (`methods`)
//! and the built-in shared objects as Python proxies see them (`shared`). The listener that
//! drives them over sockets is `server::python`.

pub(crate) mod handshake;
pub(crate) mod methods;
pub(crate) mod pickle;
pub(crate) mod shared;
pub(crate) mod unpickle;

pub use shared::PythonShared;
