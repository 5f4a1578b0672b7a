//! The handshake: both sides prove they hold the authkey before any frame is trusted.
//!
//! ```text
//! client → manager   hello:   [banner length: u8][banner][client nonce: 32]
//! manager → client   ACCEPT   [0x00][manager nonce: 32]
//!                   or MISMATCH [0x01][banner length: u8][manager's banner]  (then close)
//!                   or BUSY     [0x02][message length: u8][message]          (then close)
//! client → manager   proof:   HMAC(key, "monogusa client proof" ‖ cn ‖ mn ‖ banner)
//! manager → client   PROVEN   [0x00][HMAC(key, "monogusa server proof" ‖ cn ‖ mn ‖ banner)]
//!                   or REJECTED [0x03]                                        (then close)
//!                   or BUSY     [0x02][message length: u8][message]          (then close)
//! ```
//!
//! The client proves itself first, so a stranger who merely connects learns nothing it could
//! use to guess a weak key offline. The direction labels stop a proof from being reflected
//! back as the other side's; the two fresh nonces stop a recorded proof from being replayed;
//! the banner (protocol version and codec) is bound into both proofs so neither side can be
//! talked into a different one. Tags are compared in constant time.
//!
//! Each side is a state machine without I/O (`client.rs`, `server.rs`: bytes in, bytes out,
//! as rustls does it), so fuzzers and tests drive them directly; the functions here are the
//! thin blocking drivers the manager and client use.

mod client;
mod server;

use std::io::{self, Read, Write};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::is_timeout;
use crate::error::{Error, Result};

pub(crate) use client::ClientHandshake;
pub(crate) use server::ServerHandshake;

/// Length of each side's random nonce, and of an HMAC-SHA256 tag.
pub(crate) const NONCE_LEN: usize = 32;
const TAG_LEN: usize = 32;

const ACCEPT: u8 = 0x00;
const MISMATCH: u8 = 0x01;
const BUSY: u8 = 0x02;
const REJECTED: u8 = 0x03;
const PROVEN: u8 = 0x00;

const CLIENT_LABEL: &[u8] = b"monogusa client proof";
const SERVER_LABEL: &[u8] = b"monogusa server proof";

/// An authkey, ready to compute proofs. Cloning it is cheap and never exposes the key.
#[derive(Clone)]
pub(crate) struct AuthKey {
    mac: Hmac<Sha256>,
}

impl AuthKey {
    /// Refuses an empty key: it would let anyone in while looking protected.
    pub(crate) fn new(key: &[u8]) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::Config("the authkey must not be empty".into()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|e| Error::Config(format!("unusable authkey: {e}")))?;
        Ok(AuthKey { mac })
    }

    fn proof_mac(
        &self,
        label: &[u8],
        client: &Nonce,
        server: &Nonce,
        banner: &[u8],
    ) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.update(client);
        mac.update(server);
        mac.update(banner);
        mac
    }

    fn proof(&self, label: &[u8], client: &Nonce, server: &Nonce, banner: &[u8]) -> [u8; TAG_LEN] {
        self.proof_mac(label, client, server, banner)
            .finalize()
            .into_bytes()
            .into()
    }

    fn verify(
        &self,
        label: &[u8],
        client: &Nonce,
        server: &Nonce,
        banner: &[u8],
        tag: &[u8],
    ) -> bool {
        // `verify_slice` compares in constant time.
        self.proof_mac(label, client, server, banner)
            .verify_slice(tag)
            .is_ok()
    }
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

pub(crate) type Nonce = [u8; NONCE_LEN];

fn fresh_nonce() -> io::Result<Nonce> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(format!("no OS randomness: {e}")))?;
    Ok(nonce)
}

/// Maps a read or write failure mid-handshake to a clear error.
fn broken(e: io::Error) -> Error {
    match e.kind() {
        _ if is_timeout(&e) => Error::Timeout(crate::error::Phase::Handshake),
        io::ErrorKind::UnexpectedEof => {
            Error::Handshake("the peer closed the connection during the handshake".into())
        }
        _ => Error::Handshake(format!("connection failed during the handshake: {e}")),
    }
}

/// Runs the client's side over a blocking stream. On success both sides have proven the key.
pub(crate) fn client_handshake<S: Read + Write>(stream: &mut S, key: &AuthKey) -> Result<()> {
    let machine = client_handshake_to_proof(stream, key)?;
    finish_client_handshake(stream, machine)
}

/// Runs the client's side as far as its proof: the returned machine's output is the proof,
/// not yet sent. The caller sends it together with its first request, then calls
/// [`finish_client_handshake`] before reading any reply. (The manager reads exactly the
/// handshake's bytes and runs nothing before the proof checks; on a wrong key it closes
/// without reading the request.)
pub(crate) fn client_handshake_to_proof<S: Read + Write>(
    stream: &mut S,
    key: &AuthKey,
) -> Result<ClientHandshake> {
    let mut machine = ClientHandshake::new(key, fresh_nonce()?);
    drive_client(stream, &mut machine, true)?;
    Ok(machine)
}

/// Sends what the machine has to send (nothing, if its proof went out with a request), then
/// reads the manager's verdict: on success both sides have proven the key, and the stream is
/// at the manager's first frame.
pub(crate) fn finish_client_handshake<S: Read + Write>(
    stream: &mut S,
    mut machine: ClientHandshake,
) -> Result<()> {
    drive_client(stream, &mut machine, false)
}

/// Feeds the client machine from `stream` and writes its output, until it is done, or (with
/// `stop_at_proof`) until its proof is ready, left unsent.
fn drive_client<S: Read + Write>(
    stream: &mut S,
    machine: &mut ClientHandshake,
    stop_at_proof: bool,
) -> Result<()> {
    let mut buf = [0u8; 64];
    loop {
        if stop_at_proof && machine.awaits_verdict() {
            return Ok(());
        }
        let output = machine.take_output();
        if !output.is_empty() {
            stream.write_all(&output).map_err(broken)?;
        }
        if machine.is_done() {
            return Ok(());
        }
        let wanted = machine.wants().min(buf.len());
        let got = match stream.read(&mut buf[..wanted]) {
            Ok(0) if machine.awaits_verdict() => {
                // A manager of this protocol always answers; silence then close means it
                // gave up on our key.
                return Err(Error::Authentication(
                    "the manager closed the connection without accepting the authkey".into(),
                ));
            }
            Ok(0) => return Err(broken(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if machine.awaits_verdict() && e.kind() == io::ErrorKind::ConnectionReset => {
                // A manager that refused the key may close with a request of ours unread.
                return Err(Error::Authentication(format!(
                    "the manager reset the connection without accepting the authkey ({e})"
                )));
            }
            Err(e) => return Err(broken(e)),
        };
        let mut fed = 0;
        while fed < got {
            fed += machine.feed(&buf[fed..got])?;
        }
    }
}

/// Appends `[tag][length][text]`, the text cut to 255 bytes.
fn push_short_text(out: &mut Vec<u8>, tag: u8, text: &str) {
    let text = &text.as_bytes()[..text.len().min(255)];
    out.push(tag);
    out.push(text.len() as u8);
    out.extend_from_slice(text);
}

/// Why the manager's side of a handshake failed, for its log and statistics.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The peer sent a banner of another protocol, version or codec (or garbage).
    Mismatch(String),
    /// The peer's proof was wrong: it does not hold the key. The caller answers with
    /// [`reject`] (after a delay, if it likes).
    WrongKey,
    /// The peer proved the key, but was not admitted: it was told so.
    Busy(String),
    /// The peer stalled, closed, or the socket failed.
    Broken(Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Mismatch(theirs) => {
                write!(f, "peer is not a compatible client (it sent {theirs:?})")
            }
            Refusal::WrongKey => f.write_str("peer presented a wrong authkey"),
            Refusal::Busy(why) => write!(f, "peer not admitted: {why}"),
            Refusal::Broken(e) => write!(f, "{e}"),
        }
    }
}

/// Runs the manager's side over a blocking stream; the caller bounds it in time. Once the
/// peer has proven the key, `admit` decides whether it may stay (`Err` is the reason it may
/// not, sent as BUSY). The stream is read exactly as far as the handshake goes.
pub(crate) fn server_handshake<S: Read + Write>(
    stream: &mut S,
    key: &AuthKey,
    admit: impl FnOnce() -> std::result::Result<(), String>,
) -> std::result::Result<(), Refusal> {
    let broken = |e| Refusal::Broken(broken(e));
    let mut machine = ServerHandshake::new(key, fresh_nonce().map_err(broken)?);
    let mut buf = [0u8; 64];
    let mut admit = Some(admit);
    loop {
        if machine.is_proven() {
            match (admit.take().expect("proven once"))() {
                Ok(()) => machine.admit(),
                Err(why) => {
                    let refusal = machine.refuse_busy(&why);
                    let _ = stream.write_all(&machine.take_output());
                    return Err(refusal);
                }
            }
        }
        let output = machine.take_output();
        if !output.is_empty() {
            stream.write_all(&output).map_err(broken)?;
        }
        let wanted = machine.wants().min(buf.len());
        if wanted == 0 {
            return Ok(()); // admitted: done
        }
        stream.read_exact(&mut buf[..wanted]).map_err(broken)?;
        let mut fed = 0;
        while fed < wanted {
            match machine.feed(&buf[fed..wanted]) {
                Ok(n) => fed += n,
                Err(refusal) => {
                    // A mismatch is answered with our banner; a garbage sender learns nothing new.
                    let _ = stream.write_all(&machine.take_output());
                    return Err(refusal);
                }
            }
        }
    }
}

/// Tells a peer whose proof was wrong that it was rejected.
pub(crate) fn reject<S: Write>(stream: &mut S) -> io::Result<()> {
    stream.write_all(&[REJECTED])
}

/// The BUSY answer's bytes: the manager has no room (see the protocol's handshake).
pub(crate) fn busy(message: &str) -> Vec<u8> {
    let mut reply = Vec::new();
    push_short_text(&mut reply, BUSY, message);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    /// Two connected ends over loopback TCP (every system has it).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        (a, b)
    }

    fn run(client_key: &[u8], server_key: &[u8]) -> (Result<()>, std::result::Result<(), Refusal>) {
        let (mut a, mut b) = pair();
        let server_key = AuthKey::new(server_key).unwrap();
        let server = thread::spawn(move || {
            let r = server_handshake(&mut b, &server_key, || Ok(()));
            if let Err(Refusal::WrongKey) = r {
                reject(&mut b).unwrap();
            }
            drop(b);
            r
        });
        let client = client_handshake(&mut a, &AuthKey::new(client_key).unwrap());
        (client, server.join().unwrap())
    }

    #[test]
    fn same_key_succeeds_both_ways() {
        let (c, s) = run(b"secret", b"secret");
        c.unwrap();
        s.unwrap();
    }

    #[test]
    fn wrong_key_fails_both_ways() {
        let (c, s) = run(b"wrong", b"secret");
        assert!(matches!(c, Err(Error::Authentication(_))), "{c:?}");
        assert!(matches!(s, Err(Refusal::WrongKey)), "{s:?}");
    }

    /// A proven client the manager has no room for is told so, as a refusal.
    #[test]
    fn a_proven_client_can_still_be_refused() {
        let (mut a, mut b) = pair();
        let key = AuthKey::new(b"k").unwrap();
        let server_key = key.clone();
        let server =
            thread::spawn(move || server_handshake(&mut b, &server_key, || Err("full up".into())));
        let c = client_handshake(&mut a, &key);
        assert!(
            matches!(c, Err(Error::Refused(ref m)) if m == "full up"),
            "{c:?}"
        );
        assert!(matches!(server.join().unwrap(), Err(Refusal::Busy(_))));
    }

    #[test]
    fn empty_key_is_refused() {
        assert!(matches!(AuthKey::new(b""), Err(Error::Config(_))));
    }

    /// The two machines talk to each other in memory, fed in every chunk size.
    #[test]
    fn the_machines_agree_in_memory_in_any_chunking() {
        for chunk in [1, 2, 3, 7, 64] {
            for (client_key, server_key, ok) in [(b"k1", b"k1", true), (b"k2", b"k1", false)] {
                let mut client =
                    ClientHandshake::new(&AuthKey::new(client_key).unwrap(), [1; NONCE_LEN]);
                let mut server =
                    ServerHandshake::new(&AuthKey::new(server_key).unwrap(), [2; NONCE_LEN]);
                let mut outcome = None;
                for _ in 0..1000 {
                    let to_server = client.take_output();
                    for piece in to_server.chunks(chunk) {
                        let mut at = 0;
                        while at < piece.len() {
                            match server.feed(&piece[at..]) {
                                Ok(0) => break,
                                Ok(n) => at += n,
                                Err(r) => {
                                    outcome = Some(Err(format!("{r}")));
                                    break;
                                }
                            }
                        }
                    }
                    if server.is_proven() {
                        server.admit();
                    }
                    if outcome.is_some() {
                        break;
                    }
                    let to_client = server.take_output();
                    for piece in to_client.chunks(chunk) {
                        let mut at = 0;
                        while at < piece.len() {
                            at += client.feed(&piece[at..]).unwrap();
                        }
                    }
                    if client.is_done() && server.is_done() {
                        outcome = Some(Ok(()));
                        break;
                    }
                }
                let outcome = outcome.expect("the handshake ends");
                assert_eq!(outcome.is_ok(), ok, "chunk {chunk}: {outcome:?}");
            }
        }
    }

    /// The manager wants exactly the handshake's bytes, never more.
    #[test]
    fn the_server_never_asks_past_the_handshake() {
        let key = AuthKey::new(b"k").unwrap();
        let mut client = ClientHandshake::new(&key, [1; NONCE_LEN]);
        let mut server = ServerHandshake::new(&key, [2; NONCE_LEN]);
        let hello = client.take_output();
        let mut wanted = 0;
        let mut fed = 0;
        while fed < hello.len() {
            wanted += server.wants();
            fed += server.feed(&hello[fed..]).unwrap();
        }
        assert_eq!(wanted, hello.len());
        let accept = server.take_output();
        let mut at = 0;
        while at < accept.len() {
            at += client.feed(&accept[at..]).unwrap();
        }
        let proof = client.take_output();
        assert_eq!(server.wants(), proof.len());
        assert_eq!(server.feed(&proof).unwrap(), proof.len());
        assert!(server.is_proven());
        assert_eq!(server.wants(), 0);
    }

    #[test]
    fn proofs_depend_on_label_nonces_and_banner() {
        let key = AuthKey::new(b"k").unwrap();
        let (a, b) = ([1; NONCE_LEN], [2; NONCE_LEN]);
        let base = key.proof(CLIENT_LABEL, &a, &b, b"x");
        assert_ne!(base, key.proof(SERVER_LABEL, &a, &b, b"x"));
        assert_ne!(base, key.proof(CLIENT_LABEL, &b, &a, b"x"));
        assert_ne!(base, key.proof(CLIENT_LABEL, &a, &b, b"y"));
        assert!(key.verify(CLIENT_LABEL, &a, &b, b"x", &base));
        assert!(!key.verify(CLIENT_LABEL, &a, &b, b"x", &base[..31]));
    }

    /// An impostor that accepts any proof but cannot compute its own is caught by the client.
    #[test]
    fn client_detects_impostor_manager() {
        let (mut a, mut b) = pair();
        let impostor = thread::spawn(move || {
            let mut hello = [0u8; 1 + 29 + NONCE_LEN];
            b.read_exact(&mut hello).unwrap();
            let mut accept = vec![ACCEPT];
            accept.extend_from_slice(&[9; NONCE_LEN]);
            b.write_all(&accept).unwrap();
            let mut proof = [0; TAG_LEN];
            b.read_exact(&mut proof).unwrap();
            let mut proven = vec![PROVEN];
            proven.extend_from_slice(&[0; TAG_LEN]);
            b.write_all(&proven).unwrap();
        });
        let r = client_handshake(&mut a, &AuthKey::new(b"k").unwrap());
        impostor.join().unwrap();
        assert!(
            matches!(r, Err(Error::Authentication(ref m)) if m.contains("could not prove")),
            "{r:?}"
        );
    }
}
