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

use std::io::{self, Read, Write};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::codec;
use crate::error::{Error, Result};
use crate::transport::is_timeout;

/// The protocol's name and version; peers must agree on it byte for byte.
const PROTOCOL: &str = "monogusa/1";

/// The part of the banner every version shares.
const PROTOCOL_NAME: &str = "monogusa/";

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

/// The banner each side sends: protocol version and codec, e.g. `monogusa/1 bincode2-fixint-le`.
pub(crate) fn banner() -> String {
    format!("{PROTOCOL} {}", codec::NAME)
}

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

type Nonce = [u8; NONCE_LEN];

fn fresh_nonce() -> io::Result<Nonce> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(format!("no OS randomness: {e}")))?;
    Ok(nonce)
}

/// Maps a read or write failure mid-handshake to a clear error.
fn broken(e: io::Error) -> Error {
    match e.kind() {
        _ if is_timeout(&e) => {
            Error::Handshake("the peer did not complete the handshake in time".into())
        }
        io::ErrorKind::UnexpectedEof => {
            Error::Handshake("the peer closed the connection during the handshake".into())
        }
        _ => Error::Handshake(format!("connection failed during the handshake: {e}")),
    }
}

/// Runs the client's side. On success both sides have proven the key.
pub(crate) fn client_handshake<S: Read + Write>(stream: &mut S, key: &AuthKey) -> Result<()> {
    let banner = banner();
    let client_nonce = fresh_nonce()?;
    let mut hello = Vec::with_capacity(1 + banner.len() + NONCE_LEN);
    hello.push(banner.len() as u8);
    hello.extend_from_slice(banner.as_bytes());
    hello.extend_from_slice(&client_nonce);
    stream.write_all(&hello).map_err(broken)?;

    let mut status = [0u8; 1];
    stream.read_exact(&mut status).map_err(broken)?;
    match status[0] {
        ACCEPT => {}
        MISMATCH => {
            let theirs = read_short_text(stream)?;
            return Err(Error::Incompatible(format!(
                "the manager speaks {theirs:?}, this client {banner:?}"
            )));
        }
        BUSY => return Err(Error::Refused(read_short_text(stream)?)),
        other => {
            return Err(Error::Incompatible(format!(
                "the peer is not a monogusa manager (it sent byte {other:#04x})"
            )));
        }
    }
    let mut server_nonce = [0; NONCE_LEN];
    stream.read_exact(&mut server_nonce).map_err(broken)?;

    let proof = key.proof(
        CLIENT_LABEL,
        &client_nonce,
        &server_nonce,
        banner.as_bytes(),
    );
    stream.write_all(&proof).map_err(broken)?;

    let mut verdict = [0u8; 1 + TAG_LEN];
    stream
        .read_exact(&mut verdict[..1])
        .map_err(|e| match e.kind() {
            // A manager of this protocol always answers; silence then close means it gave up.
            io::ErrorKind::UnexpectedEof => Error::Authentication(
                "the manager closed the connection without accepting the authkey".into(),
            ),
            _ => broken(e),
        })?;
    match verdict[0] {
        PROVEN => {}
        // The key was right, but the manager has no room for another connection.
        BUSY => return Err(Error::Refused(read_short_text(stream)?)),
        REJECTED => {
            return Err(Error::Authentication(
                "the manager rejected the authkey".into(),
            ));
        }
        other => {
            return Err(Error::Incompatible(format!(
                "unexpected verdict byte {other:#04x} from the manager"
            )));
        }
    }
    stream.read_exact(&mut verdict[1..]).map_err(broken)?;
    if !key.verify(
        SERVER_LABEL,
        &client_nonce,
        &server_nonce,
        banner.as_bytes(),
        &verdict[1..],
    ) {
        return Err(Error::Authentication(
            "the manager could not prove it holds the authkey".into(),
        ));
    }
    Ok(())
}

fn read_short_text<S: Read>(stream: &mut S) -> Result<String> {
    let mut len = [0u8; 1];
    stream.read_exact(&mut len).map_err(broken)?;
    let mut text = vec![0; len[0] as usize];
    stream.read_exact(&mut text).map_err(broken)?;
    Ok(String::from_utf8_lossy(&text).into_owned())
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

/// Runs the manager's side. The caller bounds it in time. Once the peer has proven the key,
/// `admit` decides whether it may stay (`Err` is the reason it may not, sent as BUSY).
pub(crate) fn server_handshake<S: Read + Write>(
    stream: &mut S,
    key: &AuthKey,
    admit: impl FnOnce() -> std::result::Result<(), String>,
) -> std::result::Result<(), Refusal> {
    let banner = banner();
    let broken = |e| Refusal::Broken(broken(e));

    let mut len = [0u8; 1];
    stream.read_exact(&mut len).map_err(broken)?;
    let mut theirs = vec![0; len[0] as usize];
    // Read the protocol name first: a peer speaking something else entirely (HTTP, say) is
    // answered at once instead of waiting for bytes it never meant to send.
    let name_len = PROTOCOL_NAME.len().min(theirs.len());
    stream.read_exact(&mut theirs[..name_len]).map_err(broken)?;
    if theirs[..name_len] == PROTOCOL_NAME.as_bytes()[..name_len] {
        stream.read_exact(&mut theirs[name_len..]).map_err(broken)?;
    } else {
        theirs.truncate(name_len);
    }
    if theirs != banner.as_bytes() {
        // Tell a client of another version what we speak; a garbage sender learns nothing new.
        let mut reply = vec![MISMATCH, banner.len() as u8];
        reply.extend_from_slice(banner.as_bytes());
        let _ = stream.write_all(&reply);
        return Err(Refusal::Mismatch(
            String::from_utf8_lossy(&theirs).into_owned(),
        ));
    }
    let mut client_nonce = [0; NONCE_LEN];
    stream.read_exact(&mut client_nonce).map_err(broken)?;

    let server_nonce = fresh_nonce().map_err(broken)?;
    let mut accept = [0u8; 1 + NONCE_LEN];
    accept[0] = ACCEPT;
    accept[1..].copy_from_slice(&server_nonce);
    stream.write_all(&accept).map_err(broken)?;

    let mut proof = [0u8; TAG_LEN];
    stream.read_exact(&mut proof).map_err(broken)?;
    if !key.verify(
        CLIENT_LABEL,
        &client_nonce,
        &server_nonce,
        banner.as_bytes(),
        &proof,
    ) {
        return Err(Refusal::WrongKey);
    }
    if let Err(why) = admit() {
        let _ = refuse_busy(stream, &why);
        return Err(Refusal::Busy(why));
    }
    let mut proven = [0u8; 1 + TAG_LEN];
    proven[0] = PROVEN;
    proven[1..].copy_from_slice(&key.proof(
        SERVER_LABEL,
        &client_nonce,
        &server_nonce,
        banner.as_bytes(),
    ));
    stream.write_all(&proven).map_err(broken)?;
    Ok(())
}

/// Tells a peer whose proof was wrong that it was rejected.
pub(crate) fn reject<S: Write>(stream: &mut S) -> io::Result<()> {
    stream.write_all(&[REJECTED])
}

/// Tells a connecting client that the manager will not take it, then lets it go.
pub(crate) fn refuse_busy<S: Write>(stream: &mut S, message: &str) -> io::Result<()> {
    let message = &message.as_bytes()[..message.len().min(255)];
    let mut reply = vec![BUSY, message.len() as u8];
    reply.extend_from_slice(message);
    stream.write_all(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::thread;

    fn run(client_key: &[u8], server_key: &[u8]) -> (Result<()>, std::result::Result<(), Refusal>) {
        let (mut a, mut b) = UnixStream::pair().unwrap();
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
        let (mut a, mut b) = UnixStream::pair().unwrap();
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

    #[test]
    fn banner_names_the_codec() {
        assert_eq!(banner(), "monogusa/1 bincode2-fixint-le");
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
        let (mut a, mut b) = UnixStream::pair().unwrap();
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
