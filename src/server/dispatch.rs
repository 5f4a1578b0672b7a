//! One request: decode its envelope, run what it asks for (a function, a method, an object
//! operation) under `catch_unwind`, and append its reply or typed error.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;

use crate::error::{RemoteError, RemoteErrorKind};
use crate::service::Caller;
use crate::wire::codec;
use crate::wire::frame;
use crate::wire::message::{NOTICE_ID, Op, RawCall, RequestHeader, ResponseHeader, Status};

use super::Shared;
use super::closing::Closing;
use super::objects::{DESCRIBE_PAGE, HeldRefs};
use super::pace::Target;
use super::registry::Function;
use super::replies::Replies;

/// What handling one request asks of the loop.
pub(super) enum Next {
    Continue,
    StopManager,
}

/// Handles one request frame, appending its response frame to `out`. An `Err` means the
/// envelope itself is unreadable: the connection cannot continue.
#[inline]
pub(super) fn handle<'s>(
    shared: &'s Shared,
    frame: &[u8],
    replies: &mut Replies<'_>,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
    last_function: &mut Option<&'s Function>,
) -> Result<Next, Closing> {
    // The common cases first: a call of a registered function, or of an object's method,
    // found by its name's bytes, so the name needs no UTF-8 check (see `Registry`); a
    // connection calling one function over and over finds it without hashing. An unknown
    // function goes on to the full decode, for its error.
    if let Some(call) = RawCall::peek(frame) {
        let reply = Reply {
            id: call.id,
            max: shared.limits.max_frame_len,
        };
        let args = &frame[call.args_at..];
        if let Some(object) = call.object {
            shared.stats.calls.fetch_add(1, Relaxed);
            call_method(
                shared, object, call.name, args, reply, replies, held, caller,
            )?;
            return Ok(Next::Continue);
        }
        let function = match *last_function {
            Some(last) if last.name().as_bytes() == call.name => Some(last),
            _ => shared.registry.get_by_bytes(call.name),
        };
        if let Some(function) = function {
            *last_function = Some(function);
            shared.stats.calls.fetch_add(1, Relaxed);
            call_function(function, args, reply, replies)?;
            return Ok(Next::Continue);
        }
    }
    let (header, used) = RequestHeader::decode(frame).map_err(|e| {
        Closing::Violation(RemoteError::new(
            RemoteErrorKind::MalformedRequest,
            format!("cannot decode the request envelope: {e}"),
        ))
    })?;
    if header.id == NOTICE_ID {
        return Err(Closing::Violation(RemoteError::new(
            RemoteErrorKind::MalformedRequest,
            "request id 0 is reserved",
        )));
    }
    let args = &frame[used..];
    let reply = Reply {
        id: header.id,
        max: shared.limits.max_frame_len,
    };
    let objects = &shared.objects;
    match header.op {
        Op::Call(name) => {
            shared.stats.calls.fetch_add(1, Relaxed);
            match shared.registry.get(name) {
                Some(function) => call_function(function, args, reply, replies)?,
                None => reply.with(&mut replies.out, name, |_| {
                    Err(unknown_function(shared, name))
                }),
            }
        }
        // One-way: run like a call, send nothing back (its caller does not wait).
        Op::Notify(name) => {
            shared.stats.calls.fetch_add(1, Relaxed);
            match shared.registry.get(name) {
                Some(function) => {
                    let target =
                        Target::Function(std::ptr::from_ref(function) as *const () as usize);
                    replies.run(target, |out| {
                        let start = out.len();
                        let result =
                            panic::catch_unwind(AssertUnwindSafe(|| function.call(args, out)))
                                .unwrap_or_else(|payload| Err(panicked(name, payload)));
                        out.truncate(start);
                        if let Err(e) = result {
                            log::warn!("notification `{name}` failed (nobody to tell): {e}");
                        }
                    })?;
                }
                None => log::warn!("notification for an unknown function `{name}` dropped"),
            }
        }
        Op::Method { object, method } => {
            shared.stats.calls.fetch_add(1, Relaxed);
            let method = method.as_bytes();
            call_method(shared, object, method, args, reply, replies, held, caller)?;
        }
        Op::Open { name, service } => {
            let out = &mut replies.out;
            reply.with(out, "open", |out| {
                codec::encode_result(&objects.open(name, service)?, out)
            });
        }
        Op::Create { type_id, service } => {
            let out = &mut replies.out;
            reply.with(out, type_id, |out| {
                codec::encode_result(&objects.create(type_id, service, args, held)?, out)
            });
        }
        Op::Retain { object, service } => {
            reply.with(&mut replies.out, "retain", |_| {
                objects.retain(object, service, held)
            });
        }
        Op::Release { object } => {
            objects.release(object, held);
            reply.with(&mut replies.out, "release", |_| Ok(()));
        }
        Op::OpenShared {
            kind,
            name,
            type_tag,
        } => {
            let out = &mut replies.out;
            reply.with(out, "open", |out| {
                codec::encode_result(&objects.open_shared(kind, name, type_tag, args)?, out)
            });
        }
        // A sign of life from a client waiting for a call; the keepalive saw it queued.
        Op::Ping => {}
        Op::Stats => {
            let out = &mut replies.out;
            let stats = shared.stats();
            reply.with(out, "stats", |out| codec::encode_result(&stats, out));
        }
        Op::Describe => {
            let out = &mut replies.out;
            reply.with(out, "describe", |out| {
                // Objects after an id, at most a page: no arguments means the first page.
                let (after, limit): (u64, u64) = if args.is_empty() {
                    (0, DESCRIBE_PAGE as u64)
                } else {
                    codec::decode_arguments(args, &"describe")?
                };
                let functions = shared
                    .registry
                    .names()
                    .into_iter()
                    .map(String::from)
                    .collect();
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                codec::encode_result(&objects.describe(functions, after, limit), out)
            });
        }
        Op::DeleteShared { name } => {
            let out = &mut replies.out;
            reply.with(out, "delete", |out| {
                codec::encode_result(&objects.delete_shared(name)?, out)
            });
        }
        Op::Shutdown if shared.allow_remote_shutdown => {
            reply.with(&mut replies.out, "shutdown", |_| Ok(()));
            log::info!("shutdown requested by a client");
            return Ok(Next::StopManager);
        }
        Op::Shutdown => {
            let error = RemoteError::new(
                RemoteErrorKind::NotPermitted,
                "this manager does not accept remote shutdown",
            );
            write_error(&mut replies.out, header.id, &error, reply.max);
        }
    }
    Ok(Next::Continue)
}

/// Where a reply goes: its request id and the frame limit.
struct Reply {
    id: u64,
    max: u32,
}

impl Reply {
    /// Appends the reply frame for a request: `run` encodes the result after a provisional
    /// `Ok` header; if it fails or panics, that partial reply is replaced by an error reply.
    fn with(
        &self,
        out: &mut Vec<u8>,
        what: &(impl std::fmt::Display + ?Sized),
        run: impl FnOnce(&mut Vec<u8>) -> Result<(), RemoteError>,
    ) {
        let start = frame::begin(out);
        encode_header(out, self.id, Status::Ok);
        let result = panic::catch_unwind(AssertUnwindSafe(|| run(out)))
            .unwrap_or_else(|payload| Err(panicked(what, payload)))
            .and_then(|()| {
                frame::end(out, start, self.max).map_err(|e| {
                    RemoteError::new(
                        RemoteErrorKind::BadReply,
                        format!("the result of `{what}`: {e}"),
                    )
                })
            });
        if let Err(error) = result {
            out.truncate(start);
            write_error(out, self.id, &error, self.max);
        }
    }
}

fn encode_header(out: &mut Vec<u8>, id: u64, status: Status) {
    ResponseHeader { id, status }.encode(out);
}

/// Appends a complete error response frame.
pub(super) fn write_error(out: &mut Vec<u8>, id: u64, error: &RemoteError, max: u32) {
    let start = frame::begin(out);
    encode_header(out, id, Status::Err);
    codec::encode_into(error, out).expect("a RemoteError always encodes");
    if frame::end(out, start, max).is_err() {
        // Only a huge message can overflow; send a short one rather than nothing.
        let short = RemoteError::new(error.kind(), "(message too long for the frame limit)");
        write_error(out, id, &short, max);
    }
}

/// A name not yet checked as UTF-8, shown as well as it can be (in error messages only).
struct Lossy<'a>(&'a [u8]);

impl std::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.0))
    }
}

/// Runs method `method` of object `object` and appends its reply.
#[inline]
#[allow(clippy::too_many_arguments)] // the request's parts and the connection's state
fn call_method(
    shared: &Shared,
    object: u64,
    method: &[u8],
    args: &[u8],
    reply: Reply,
    replies: &mut Replies<'_>,
    held: &mut HeldRefs,
    caller: &Caller<'_>,
) -> Result<(), Closing> {
    replies.run(Target::Object(object), |out| {
        reply.with(out, &Lossy(method), |out| {
            shared.objects.call(object, method, args, out, held, caller)
        })
    })
}

/// Runs a registered function and appends its reply.
#[inline]
fn call_function(
    function: &Function,
    args: &[u8],
    reply: Reply,
    replies: &mut Replies<'_>,
) -> Result<(), Closing> {
    let name = function.name();
    let target = Target::Function(std::ptr::from_ref(function) as *const () as usize);
    replies.run(target, |out| {
        reply.with(out, name, |out| {
            function
                .call(args, out)
                .map_err(|e| super::registry::name_the_function(e, name))
        })
    })
}

#[cold]
pub(super) fn panicked(
    name: &(impl std::fmt::Display + ?Sized),
    payload: Box<dyn std::any::Any + Send>,
) -> RemoteError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into());
    RemoteError::new(
        RemoteErrorKind::Panicked,
        format!("`{name}` panicked: {what}"),
    )
}

fn unknown_function(shared: &Shared, name: &str) -> RemoteError {
    const SHOWN: usize = 16;
    let names = shared.registry.names();
    let mut listed = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        listed.push_str(", ...");
    }
    RemoteError::new(
        RemoteErrorKind::UnknownFunction,
        format!("no function named `{name}` (registered: {listed})"),
    )
}
