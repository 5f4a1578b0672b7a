//! The Windows system calls monogusa needs, each behind a safe function, so that the library
//! itself keeps `unsafe_code = "forbid"`:
//!
//! - `pipe`: named pipes with overlapped I/O, which is what gives a pipe what a socket has
//!   and a plain pipe handle lacks: read and write timeouts, a shutdown another thread can
//!   call, and a look at queued bytes that never blocks.
//! - `console`: Ctrl-C, Ctrl-Break and console close, delivered to any number of watchers.
//! - `socket`: queued bytes and readiness of a TCP socket without blocking (Winsock has no
//!   per-call `MSG_DONTWAIT`).
//!
//! On other systems the crate is empty.

#[cfg(windows)]
pub mod console;
#[cfg(windows)]
mod handle;
#[cfg(windows)]
pub mod pipe;
#[cfg(windows)]
mod security;
#[cfg(windows)]
pub mod socket;
