//! One authenticated connection used by one call at a time, and the decoding of replies.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, RemoteError, Result};
use crate::transport::{Address, Stream, is_timeout};
use crate::wire::auth::{self, AuthKey};
use crate::wire::codec;
use crate::wire::frame::FrameReader;
use crate::wire::message::{NOTICE_ID, Op, ResponseHeader, Status, encode_request, is_heartbeat};

use super::{Keepalive, Options};

/// A socket timeout is adjusted to the call's remaining time only when they differ by more
/// than this; the common case (a reply within one read) then costs no extra syscall.
const TIMEOUT_SLACK: Duration = Duration::from_millis(1);

/// The shortest timeout a socket is given; zero would mean "no timeout" to the OS.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The request buffer is given back after a request larger than this.
const SHRINK_OUT_ABOVE: usize = 1 << 20;

/// Whether a connection is in a known state after a call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// Every byte sent was answered: the next call can use it.
    Reusable,
    /// A reply may still be on its way, or the stream broke: close it.
    Broken,
}

/// One authenticated connection, used by one call at a time. Boxed: a connection moves in and
/// out of the pool on every call, and a move of the whole state was a `memcpy` (about 170
/// instructions per call, callgrind), a move of the box is one word.
pub(crate) struct Connection(Box<Link>);

impl std::ops::Deref for Connection {
    type Target = Link;

    fn deref(&self) -> &Link {
        &self.0
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Link {
        &mut self.0
    }
}

/// What a [`Connection`] holds.
pub(crate) struct Link {
    stream: Stream,
    reader: FrameReader,
    out: Vec<u8>,
    /// Ids start at 1: 0 is the manager's notice id.
    next_id: u64,
    /// The read timeout currently set on the socket, to skip redundant syscalls.
    socket_timeout: Option<Duration>,
    /// The write timeout currently set on the socket.
    write_timeout: Option<Duration>,
    /// How deeply nested a reply may be.
    max_depth: u32,
    keepalive: Option<Keepalive>,
    /// A reused buffer for pings.
    ping: Vec<u8>,
    /// A handshake whose proof goes out with the first request (see
    /// [`ClientBuilder::prove_with_first_call`](super::ClientBuilder::prove_with_first_call)).
    unproven: Option<Box<Unproven>>,
}

/// The end of a handshake still to come: the proof to send ahead of the first request, and
/// the verdict to read before its reply.
struct Unproven {
    machine: auth::ClientHandshake,
    proof: Vec<u8>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects and runs the handshake; with `defer_proof`, only as far as the proof, which
    /// then travels with the first request (one round trip fewer).
    pub(crate) fn open(
        address: &Address,
        key: &AuthKey,
        options: &Options,
        defer_proof: bool,
    ) -> Result<Connection> {
        Link::open(address, key, options, defer_proof).map(|link| Connection(Box::new(link)))
    }

    /// The socket and its read buffer, for a pipeline to take over (the handshake finished
    /// first, if its proof was waiting for a request).
    pub(crate) fn into_parts(mut self) -> Result<(Stream, FrameReader)> {
        self.prove()?;
        let link = *self.0;
        // The pipeline sets its own read timeouts and writes without one: nothing of the
        // handshake's (or of earlier calls') may stay on the socket.
        link.stream.set_timeouts(None)?;
        Ok((link.stream, link.reader))
    }
}

impl Link {
    fn open(
        address: &Address,
        key: &AuthKey,
        options: &Options,
        defer_proof: bool,
    ) -> Result<Link> {
        let stream = Stream::connect(address, options.connect_timeout).map_err(|e| {
            if crate::transport::is_timeout(&e) {
                log::debug!("{e}");
                Error::Timeout(crate::error::Phase::Connect)
            } else {
                Error::Io(e)
            }
        })?;
        // One deadline for the whole handshake: a manager that stopped (SIGSTOP, a frozen
        // host) after accepting must not hold us for a socket timeout per read.
        let unproven = {
            let mut timed = crate::transport::Deadline::start(&stream, options.handshake_timeout)?;
            if defer_proof {
                let mut machine = auth::client_handshake_to_proof(&mut timed, key)?;
                let proof = machine.take_output();
                Some(Box::new(Unproven {
                    machine,
                    proof,
                    handshake_timeout: options.handshake_timeout,
                }))
            } else {
                auth::client_handshake(&mut timed, key)?;
                None
            }
        };
        // What a call without a timeout wants (see `call`), set now, so the first call needs
        // no syscall for it.
        let read_timeout = options.keepalive.map(|k| k.interval);
        stream.set_read_timeout(read_timeout)?;
        stream.set_write_timeout(None)?;
        Ok(Link {
            stream,
            reader: FrameReader::new(options.max_frame_len),
            out: Vec::with_capacity(4096),
            next_id: NOTICE_ID + 1,
            socket_timeout: read_timeout,
            write_timeout: None,
            max_depth: options.max_decode_depth,
            keepalive: options.keepalive,
            ping: Vec::new(),
            unproven,
        })
    }

    /// Finishes a handshake whose proof is still unsent: sends it, reads the verdict.
    fn prove(&mut self) -> Result<()> {
        let Some(unproven) = self.unproven.take() else {
            return Ok(());
        };
        let Unproven {
            machine,
            proof,
            handshake_timeout,
        } = *unproven;
        self.set_write_timeout(Some(handshake_timeout))?;
        self.stream.write_all(&proof).map_err(Error::Io)?;
        self.read_verdict(machine, handshake_timeout)
    }

    /// Reads the manager's verdict on a proof already sent, within the handshake timeout.
    fn read_verdict(&mut self, machine: auth::ClientHandshake, timeout: Duration) -> Result<()> {
        self.set_socket_timeout(Some(timeout))?;
        auth::finish_client_handshake(&mut self.stream, machine)
    }

    /// Sends one request and waits for its reply.
    pub(crate) fn call<R: DeserializeOwned, A: Serialize>(
        &mut self,
        op: Op<'_>,
        args: &A,
        timeout: Option<Duration>,
        max_frame_len: u32,
    ) -> (Result<R>, Health) {
        let id = self.next_id;
        self.next_id += 1;
        let function: &str = match &op {
            Op::Call(name) | Op::Notify(name) | Op::Method { method: name, .. } => name,
            Op::Create { type_id, .. } => type_id,
            Op::Open { .. } | Op::OpenShared { .. } => "open",
            Op::Retain { .. } => "retain",
            Op::Release { .. } => "release",
            Op::Describe => "describe",
            Op::Stats => "stats",
            Op::Shutdown => "shutdown",
            Op::DeleteShared { .. } => "delete",
            Op::Ping => "ping",
        };
        let trailing = Trailing::of(&op);
        self.out.clear();
        if let Some(unproven) = &self.unproven {
            // The proof and the first request leave in one write.
            self.out.extend_from_slice(&unproven.proof);
        }
        if let Err(e) = encode_request(&mut self.out, id, op, args, max_frame_len) {
            // Nothing was sent: the connection is as good as before.
            return (Err(e), Health::Reusable);
        }

        let timeout = timeout.map(|t| t.max(MIN_TIMEOUT));
        let deadline = timeout.map(|t| Instant::now() + t);
        // The socket wakes us at least every keepalive interval, to send a ping and to notice
        // a manager that has fallen silent. Set only when it changes: no syscall per call.
        let tick = match (timeout, self.keepalive) {
            (Some(t), Some(k)) => Some(t.min(k.interval)),
            (t, None) => t,
            (None, Some(k)) => Some(k.interval),
        };
        if let Err(e) = self
            .set_socket_timeout(tick)
            .and_then(|()| self.set_write_timeout(timeout))
        {
            return (Err(Error::Io(e)), Health::Broken);
        }
        if let Err(e) = self.stream.write_all(&self.out) {
            return (Err(in_flight_failure(e)), Health::Broken);
        }
        if let Some(unproven) = self.unproven.take() {
            // The verdict comes before the reply: a manager that refused our key never read
            // the request, let alone ran it.
            let Unproven {
                machine,
                handshake_timeout,
                ..
            } = *unproven;
            if let Err(e) = self
                .read_verdict(machine, handshake_timeout)
                .and_then(|()| self.set_socket_timeout(tick).map_err(Error::Io))
            {
                return (Err(e), Health::Broken);
            }
        }
        if self.out.capacity() > SHRINK_OUT_ABOVE {
            // A large request is sent: an idle pooled connection should not keep its memory.
            self.out = Vec::with_capacity(4096);
        }
        // Since when nothing has arrived; read from the clock only once a read times out.
        let mut silent_since: Option<Instant> = None;
        loop {
            match self.reader.next_frame() {
                Ok(Some(reply)) if is_heartbeat(reply) => {
                    // The manager says the call runs long; answer that we still wait.
                    silent_since = None;
                    if let Err(e) = self.send_ping() {
                        return (Err(in_flight_failure(e)), Health::Broken);
                    }
                    continue;
                }
                Ok(Some(reply)) => {
                    return decode_reply(reply, id, function, self.max_depth, trailing);
                }
                Ok(None) => {}
                Err(e) => return (Err(e), Health::Broken),
            }
            if let Some(deadline) = deadline {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return (
                        Err(Error::Timeout(crate::error::Phase::Call)),
                        Health::Broken,
                    );
                }
                let set = self.socket_timeout.unwrap_or(Duration::MAX);
                if set > remaining + TIMEOUT_SLACK
                    && let Err(e) = self.set_socket_timeout(Some(remaining.max(MIN_TIMEOUT)))
                {
                    return (Err(Error::Io(e)), Health::Broken);
                }
            }
            match self.reader.fill(&mut self.stream) {
                Ok(0) => {
                    let eof = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the manager closed the connection",
                    );
                    return (Err(Error::ConnectionLost(eof)), Health::Broken);
                }
                Ok(_) => silent_since = None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    if deadline
                        .is_some_and(|d| d.saturating_duration_since(Instant::now()) < MIN_TIMEOUT)
                    {
                        return (
                            Err(Error::Timeout(crate::error::Phase::Call)),
                            Health::Broken,
                        );
                    }
                    let Some(keepalive) = self.keepalive else {
                        continue; // woken early for the deadline's sake
                    };
                    let waited = self.socket_timeout.unwrap_or(keepalive.interval);
                    let since = *silent_since.get_or_insert_with(|| Instant::now() - waited);
                    if since.elapsed() >= keepalive.timeout {
                        return (Err(silent_manager(keepalive.timeout)), Health::Broken);
                    }
                    // Still waiting: tell the manager we are here.
                    if let Err(e) = self.send_ping() {
                        return (Err(in_flight_failure(e)), Health::Broken);
                    }
                }
                Err(e) => return (Err(in_flight_failure(e)), Health::Broken),
            }
        }
    }

    /// Sends a one-way request (never answered): done once it is written.
    pub(crate) fn notify<A: Serialize>(
        &mut self,
        function: &str,
        args: &A,
        timeout: Option<Duration>,
        max_frame_len: u32,
    ) -> (Result<()>, Health) {
        if let Err(e) = self.prove() {
            return (Err(e), Health::Broken);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.out.clear();
        if let Err(e) = encode_request(&mut self.out, id, Op::Notify(function), args, max_frame_len)
        {
            return (Err(e), Health::Reusable);
        }
        if let Err(e) = self.set_write_timeout(timeout.map(|t| t.max(MIN_TIMEOUT))) {
            return (Err(Error::Io(e)), Health::Broken);
        }
        match self.stream.write_all(&self.out) {
            Ok(()) => (Ok(()), Health::Reusable),
            Err(e) => (Err(in_flight_failure(e)), Health::Broken),
        }
    }

    /// Tells the manager this client still waits for its call (never answered).
    fn send_ping(&mut self) -> io::Result<()> {
        self.ping.clear();
        let ping_id = self.next_id;
        self.next_id += 1;
        encode_request(&mut self.ping, ping_id, Op::Ping, &(), u32::MAX).expect("a ping is tiny");
        self.stream.write_all(&self.ping)
    }

    /// How deeply nested a reply on this connection may be.
    pub(crate) fn max_depth(&self) -> u32 {
        self.max_depth
    }

    /// The keepalive this connection's calls use.
    pub(crate) fn keepalive(&self) -> Option<Keepalive> {
        self.keepalive
    }

    /// Sets the read timeout, if it differs from the one set.
    fn set_socket_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.socket_timeout != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.socket_timeout = timeout;
        }
        Ok(())
    }

    /// Sets the write timeout (the call's own, not the keepalive's), if it differs.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.write_timeout != timeout {
            self.stream.set_write_timeout(timeout)?;
            self.write_timeout = timeout;
        }
        Ok(())
    }
}

/// The error for a manager that sent nothing, not even a heartbeat, for `silence`.
pub(crate) fn silent_manager(silence: Duration) -> Error {
    Error::ConnectionLost(io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "no reply and no keepalive from the manager for {} ms: it is gone or unreachable",
            silence.as_millis()
        ),
    ))
}

/// A socket error once a request may have left: a timeout, or a lost connection.
pub(crate) fn in_flight_failure(e: io::Error) -> Error {
    if is_timeout(&e) {
        Error::Timeout(crate::error::Phase::Call)
    } else {
        Error::ConnectionLost(e)
    }
}

/// What a reply may carry after the value the client knows.
///
/// The rule for evolving the wire: the manager's own top-level reply structs (`Stats`,
/// `Description`) may gain fields, appended at their end only; older clients read the fields
/// they know and ignore the rest. Nested structs and every other reply are decoded exactly
/// (trailing bytes mean the peer encoded something else); changing those needs a new protocol
/// version in the banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trailing {
    /// Trailing bytes are an error.
    Refused,
    /// Fields appended by a newer manager are ignored.
    Ignored,
}

impl Trailing {
    /// The rule for the reply to `op`.
    pub(crate) fn of(op: &Op<'_>) -> Trailing {
        match op {
            Op::Stats | Op::Describe => Trailing::Ignored,
            _ => Trailing::Refused,
        }
    }
}

/// Reads the reply to request `id`.
pub(crate) fn decode_reply<R: DeserializeOwned>(
    reply: &[u8],
    id: u64,
    function: &str,
    max_depth: u32,
    trailing: Trailing,
) -> (Result<R>, Health) {
    let (header, used) = match ResponseHeader::decode(reply) {
        Ok(decoded) => decoded,
        Err(e) => {
            let e = Error::Protocol(format!("unreadable reply envelope: {e}"));
            return (Err(e), Health::Broken);
        }
    };
    if header.id != id && header.id != NOTICE_ID {
        let e = Error::Protocol(format!(
            "reply to request {} while waiting for {id}",
            header.id
        ));
        return (Err(e), Health::Broken);
    }
    decode_body(&header, &reply[used..], function, max_depth, trailing)
}

/// Reads the body of a reply whose header is already decoded: the result, the remote error,
/// or the notice of a manager closing the connection.
pub(crate) fn decode_body<R: DeserializeOwned>(
    header: &ResponseHeader,
    body: &[u8],
    function: &str,
    max_depth: u32,
    trailing: Trailing,
) -> (Result<R>, Health) {
    if header.id == NOTICE_ID {
        // The manager is closing this connection and says why.
        let result = match codec::decode_exact::<RemoteError>(body) {
            Ok(notice) => Err(Error::Remote(notice)),
            Err(e) => Err(Error::Protocol(format!(
                "unreadable notice from the manager: {e}"
            ))),
        };
        return (result, Health::Broken);
    }
    let result = match header.status {
        Status::Ok => match trailing {
            Trailing::Refused => codec::decode_exact_at_depth::<R>(body, max_depth),
            Trailing::Ignored => {
                codec::decode_prefix_at_depth::<R>(body, max_depth).map(|(v, _)| v)
            }
        }
        .map_err(|e| {
            Error::Codec(format!(
                "the reply of `{function}` is not a {}: {e}",
                std::any::type_name::<R>()
            ))
        }),
        Status::Err => match codec::decode_exact::<RemoteError>(body) {
            Ok(remote) => Err(Error::Remote(remote)),
            Err(e) => Err(Error::Codec(format!("unreadable error reply: {e}"))),
        },
    };
    (result, Health::Reusable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_header() -> ResponseHeader {
        ResponseHeader {
            id: 1,
            status: Status::Ok,
        }
    }

    /// An older client reads the `Stats` of a newer manager, which appended two fields.
    #[test]
    fn replies_that_may_grow_tolerate_appended_fields() {
        let stats = crate::Stats {
            calls: 42,
            ..crate::Stats::default()
        };
        let mut newer = Vec::new();
        codec::encode_into(&stats, &mut newer).unwrap();
        newer.extend_from_slice(&7u64.to_le_bytes());
        newer.extend_from_slice(&9u64.to_le_bytes());
        let trailing = Trailing::of(&Op::Stats);
        let (read, health) =
            decode_body::<crate::Stats>(&ok_header(), &newer, "stats", 128, trailing);
        assert_eq!(read.unwrap(), stats);
        assert_eq!(health, Health::Reusable);
        assert_eq!(Trailing::of(&Op::Describe), Trailing::Ignored);
        // Every other reply is exact: trailing bytes mean the peer sent something else.
        let (exact, _) = decode_body::<crate::Stats>(
            &ok_header(),
            &newer,
            "f",
            128,
            Trailing::of(&Op::Call("f")),
        );
        assert!(matches!(exact, Err(Error::Codec(_))), "{exact:?}");
    }
}
