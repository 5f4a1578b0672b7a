//! The manager's side of the handshake as a state machine: bytes in, bytes out, no I/O. It
//! always knows how many bytes it needs next ([`ServerHandshake::wants`]), so a driver reads
//! exactly those and never reads past the handshake into the requests that follow it.

use super::{
    ACCEPT, AuthKey, BUSY, CLIENT_LABEL, MISMATCH, NONCE_LEN, Nonce, PROVEN, Refusal, SERVER_LABEL,
    TAG_LEN,
};
use crate::wire::protocol;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the banner's length byte.
    BannerLength,
    /// Waiting for the bytes of the protocol's name (at most the banner's length): a peer
    /// speaking another protocol entirely is answered at once, not at the deadline.
    ProtocolName {
        len: usize,
    },
    /// Waiting for the rest of the banner.
    BannerRest {
        len: usize,
    },
    /// Waiting for the client's nonce.
    ClientNonce,
    /// Waiting for the client's proof.
    Proof,
    /// The client proved the key; the caller admits it ([`ServerHandshake::admit`]) or
    /// refuses it ([`ServerHandshake::refuse_busy`]).
    Proven,
    Done,
    Failed,
}

/// The manager's side of one handshake.
///
/// Invariant: in `ProtocolName` and `BannerRest`, `theirs` holds the banner bytes received so
/// far; in `ClientNonce` and `Proof`, `pending` holds the bytes of that field received so far.
pub(crate) struct ServerHandshake {
    key: AuthKey,
    banner: &'static str,
    state: State,
    /// The banner received so far.
    theirs: Vec<u8>,
    /// The fixed-size field (nonce, proof) received so far.
    pending: Vec<u8>,
    client_nonce: Nonce,
    server_nonce: Nonce,
    /// Bytes to send, taken by [`ServerHandshake::take_output`].
    output: Vec<u8>,
}

impl ServerHandshake {
    /// A handshake that will answer with `server_nonce` (fresh from the OS in real use).
    pub(crate) fn new(key: &AuthKey, server_nonce: Nonce) -> Self {
        ServerHandshake {
            key: key.clone(),
            banner: protocol::BANNER,
            state: State::BannerLength,
            theirs: Vec::new(),
            pending: Vec::new(),
            client_nonce: [0; NONCE_LEN],
            server_nonce,
            output: Vec::new(),
        }
    }

    /// How many bytes the next step needs (0 when none: proven, done or failed).
    pub(crate) fn wants(&self) -> usize {
        match self.state {
            State::BannerLength => 1,
            State::ProtocolName { len } => protocol::NAME.len().min(len) - self.theirs.len(),
            State::BannerRest { len } => len - self.theirs.len(),
            State::ClientNonce => NONCE_LEN - self.pending.len(),
            State::Proof => TAG_LEN - self.pending.len(),
            State::Proven | State::Done | State::Failed => 0,
        }
    }

    /// Whether the client proved the key and waits for the caller's decision.
    pub(crate) fn is_proven(&self) -> bool {
        self.state == State::Proven
    }

    /// Whether the handshake completed: both sides proved the key.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The bytes to send now.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Takes up to [`ServerHandshake::wants`] bytes of `input` (fewer is fine: the rest can
    /// come later) and returns how many it took. An error ends the handshake, after any output
    /// (a MISMATCH answer) is sent. A wrong proof is [`Refusal::WrongKey`] with nothing to
    /// send: the caller answers it with [`super::reject`], when it likes.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<usize, Refusal> {
        let n = input.len().min(self.wants());
        if n == 0 {
            return Ok(0);
        }
        let bytes = &input[..n];
        match self.state {
            State::BannerLength => {
                let len = usize::from(bytes[0]);
                self.state = State::ProtocolName { len };
                if len == 0 {
                    return self.mismatch();
                }
            }
            State::ProtocolName { len } => {
                self.theirs.extend_from_slice(bytes);
                let have = self.theirs.len();
                if self.theirs[..] != protocol::NAME.as_bytes()[..have] {
                    return self.mismatch();
                }
                if have == protocol::NAME.len().min(len) {
                    self.state = State::BannerRest { len };
                    if have == len {
                        self.banner_complete()?;
                    }
                }
            }
            State::BannerRest { len } => {
                self.theirs.extend_from_slice(bytes);
                if self.theirs.len() == len {
                    self.banner_complete()?;
                }
            }
            State::ClientNonce => {
                self.pending.extend_from_slice(bytes);
                if self.pending.len() == NONCE_LEN {
                    self.client_nonce.copy_from_slice(&self.pending);
                    self.pending.clear();
                    self.output.push(ACCEPT);
                    self.output.extend_from_slice(&self.server_nonce);
                    self.state = State::Proof;
                }
            }
            State::Proof => {
                self.pending.extend_from_slice(bytes);
                if self.pending.len() == TAG_LEN {
                    let proven = self.key.verify(
                        CLIENT_LABEL,
                        &self.client_nonce,
                        &self.server_nonce,
                        self.banner.as_bytes(),
                        &self.pending,
                    );
                    self.pending.clear();
                    if !proven {
                        self.state = State::Failed;
                        return Err(Refusal::WrongKey);
                    }
                    self.state = State::Proven;
                }
            }
            State::Proven | State::Done | State::Failed => {}
        }
        Ok(n)
    }

    /// Admits a proven client: the manager's own proof goes out and the handshake is done.
    pub(crate) fn admit(&mut self) {
        debug_assert!(self.is_proven());
        self.output.push(PROVEN);
        self.output.extend_from_slice(&self.key.proof(
            SERVER_LABEL,
            &self.client_nonce,
            &self.server_nonce,
            self.banner.as_bytes(),
        ));
        self.state = State::Done;
    }

    /// Refuses a proven client for lack of room: it is told why.
    pub(crate) fn refuse_busy(&mut self, why: &str) -> Refusal {
        super::push_short_text(&mut self.output, BUSY, why);
        self.state = State::Failed;
        Refusal::Busy(why.to_string())
    }

    fn banner_complete(&mut self) -> Result<(), Refusal> {
        if self.theirs != self.banner.as_bytes() {
            return self.mismatch().map(|_| ());
        }
        self.state = State::ClientNonce;
        Ok(())
    }

    /// The peer speaks something else: it is told what we speak, then the handshake fails.
    fn mismatch(&mut self) -> Result<usize, Refusal> {
        super::push_short_text(&mut self.output, MISMATCH, self.banner);
        self.state = State::Failed;
        Err(Refusal::Mismatch(
            String::from_utf8_lossy(&self.theirs).into_owned(),
        ))
    }
}
