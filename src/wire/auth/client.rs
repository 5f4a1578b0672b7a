//! The client's side of the handshake as a state machine: bytes in, bytes out, no I/O. Like
//! the manager's side, it always knows how many bytes it needs next.

use super::{
    ACCEPT, AuthKey, BUSY, CLIENT_LABEL, MISMATCH, NONCE_LEN, Nonce, PROVEN, REJECTED,
    SERVER_LABEL, TAG_LEN,
};
use crate::error::Error;
use crate::wire::protocol;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the manager's first status byte.
    Status,
    /// Waiting for the length of a short text (the manager's banner, or why it is busy).
    TextLength(Text),
    /// Waiting for the text itself.
    Text(Text, usize),
    /// Waiting for the manager's nonce.
    ServerNonce,
    /// Waiting for the manager's verdict on our proof.
    Verdict,
    /// Waiting for the manager's own proof.
    ServerProof,
    Done,
    Failed,
}

/// What a short text from the manager means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// Its banner: it speaks another version.
    Mismatch,
    /// Why it will not take us.
    Busy,
}

/// The client's side of one handshake. The hello goes out at once ([`take_output`]).
///
/// Invariant: `pending` holds the bytes of the field being received.
///
/// [`take_output`]: ClientHandshake::take_output
pub(crate) struct ClientHandshake {
    key: AuthKey,
    banner: &'static str,
    state: State,
    client_nonce: Nonce,
    server_nonce: Nonce,
    pending: Vec<u8>,
    output: Vec<u8>,
}

impl ClientHandshake {
    /// A handshake that sends `client_nonce` (fresh from the OS in real use).
    pub(crate) fn new(key: &AuthKey, client_nonce: Nonce) -> Self {
        let banner = protocol::BANNER;
        let mut output = Vec::with_capacity(1 + banner.len() + NONCE_LEN);
        output.push(banner.len() as u8);
        output.extend_from_slice(banner.as_bytes());
        output.extend_from_slice(&client_nonce);
        ClientHandshake {
            key: key.clone(),
            banner,
            state: State::Status,
            client_nonce,
            server_nonce: [0; NONCE_LEN],
            pending: Vec::new(),
            output,
        }
    }

    /// How many bytes the next step needs (0 once done or failed).
    pub(crate) fn wants(&self) -> usize {
        match self.state {
            State::Status | State::TextLength(_) | State::Verdict => 1,
            State::Text(_, len) => len - self.pending.len(),
            State::ServerNonce => NONCE_LEN - self.pending.len(),
            State::ServerProof => TAG_LEN - self.pending.len(),
            State::Done | State::Failed => 0,
        }
    }

    /// Whether both sides have proven the key.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the manager gave its verdict: after this, a closed connection means it
    /// refused us without saying so, before it, the handshake broke.
    pub(crate) fn awaits_verdict(&self) -> bool {
        self.state == State::Verdict
    }

    /// The bytes to send now.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Takes up to [`ClientHandshake::wants`] bytes of `input`, returning how many it took.
    /// An error ends the handshake.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<usize, Error> {
        let n = input.len().min(self.wants());
        if n == 0 {
            return Ok(0);
        }
        let bytes = &input[..n];
        match self.state {
            State::Status => match bytes[0] {
                ACCEPT => self.state = State::ServerNonce,
                MISMATCH => self.state = State::TextLength(Text::Mismatch),
                BUSY => self.state = State::TextLength(Text::Busy),
                other => {
                    return self.fail(Error::Incompatible(format!(
                        "the peer is not a monogusa manager (it sent byte {other:#04x})"
                    )));
                }
            },
            State::TextLength(text) => {
                let len = usize::from(bytes[0]);
                self.state = State::Text(text, len);
                if len == 0 {
                    return self.text_complete(text).map(|()| n);
                }
            }
            State::Text(text, len) => {
                self.pending.extend_from_slice(bytes);
                if self.pending.len() == len {
                    self.text_complete(text)?;
                }
            }
            State::ServerNonce => {
                self.pending.extend_from_slice(bytes);
                if self.pending.len() == NONCE_LEN {
                    self.server_nonce.copy_from_slice(&self.pending);
                    self.pending.clear();
                    let proof = self.key.proof(
                        CLIENT_LABEL,
                        &self.client_nonce,
                        &self.server_nonce,
                        self.banner.as_bytes(),
                    );
                    self.output.extend_from_slice(&proof);
                    self.state = State::Verdict;
                }
            }
            State::Verdict => match bytes[0] {
                PROVEN => self.state = State::ServerProof,
                // The key was right, but the manager has no room for another connection.
                BUSY => self.state = State::TextLength(Text::Busy),
                REJECTED => {
                    return self.fail(Error::Authentication(
                        "the manager rejected the authkey".into(),
                    ));
                }
                other => {
                    return self.fail(Error::Incompatible(format!(
                        "unexpected verdict byte {other:#04x} from the manager"
                    )));
                }
            },
            State::ServerProof => {
                self.pending.extend_from_slice(bytes);
                if self.pending.len() == TAG_LEN {
                    let proven = self.key.verify(
                        SERVER_LABEL,
                        &self.client_nonce,
                        &self.server_nonce,
                        self.banner.as_bytes(),
                        &self.pending,
                    );
                    self.pending.clear();
                    if !proven {
                        return self.fail(Error::Authentication(
                            "the manager could not prove it holds the authkey".into(),
                        ));
                    }
                    self.state = State::Done;
                }
            }
            State::Done | State::Failed => {}
        }
        Ok(n)
    }

    fn text_complete(&mut self, text: Text) -> Result<(), Error> {
        let said = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let error = match text {
            Text::Mismatch => Error::Incompatible(format!(
                "the manager speaks {said:?}, this client {:?}",
                self.banner
            )),
            Text::Busy => Error::Refused(said),
        };
        self.fail(error).map(|_| ())
    }

    fn fail(&mut self, error: Error) -> Result<usize, Error> {
        self.state = State::Failed;
        Err(error)
    }
}
