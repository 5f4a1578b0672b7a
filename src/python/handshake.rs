//! Python's authkey handshake, the manager's side: we challenge the
//! client, then answer its challenge, each in the form its version speaks.
//!
//! We challenge in 3.12's form (`{sha256}` and 40 random bytes); a 3.11 client answers that
//! with a bare 16-byte HMAC-MD5 over the whole message, a 3.12+ client with `{sha256}` and
//! HMAC-SHA256, and we accept both (as Python 3.12's own server does). A client's challenge
//! of 20 bytes (3.11) is answered with a bare HMAC-MD5, a prefixed one in its own digest.

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::Sha256;

/// Python's handshake messages are read with a 256-byte limit.
pub(crate) const MAX_HANDSHAKE_FRAME: usize = 256;

pub(crate) const CHALLENGE: &[u8] = b"#CHALLENGE#";
pub(crate) const WELCOME: &[u8] = b"#WELCOME#";
pub(crate) const FAILURE: &[u8] = b"#FAILURE#";

/// The shortest challenge Python accepts (3.11's 20 random bytes).
const LEGACY_LEN: usize = 20;

/// Our challenge: `#CHALLENGE#{sha256}` and 40 random bytes.
pub(crate) fn challenge(random: &[u8; 40]) -> Vec<u8> {
    let mut frame = CHALLENGE.to_vec();
    frame.extend_from_slice(b"{sha256}");
    frame.extend_from_slice(random);
    frame
}

fn hmac_md5(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Md5>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// A digest name in braces at the start of `message`, as Python 3.12 writes it.
fn digest_prefix(message: &[u8]) -> Option<(&str, &[u8])> {
    let rest = message.strip_prefix(b"{")?;
    let end = rest.iter().take(10).position(|&b| b == b'}')?;
    let name = std::str::from_utf8(&rest[..end]).ok()?;
    Some((name, &rest[end + 1..]))
}

/// Whether `response` proves `key` for our `message` (the challenge without `#CHALLENGE#`).
/// Constant-time comparisons.
pub(crate) fn verify(key: &[u8], message: &[u8], response: &[u8]) -> bool {
    let (expected, given) = if response.len() == 16 {
        (hmac_md5(key, message), response)
    } else {
        match digest_prefix(response) {
            Some(("sha256", mac)) => (hmac_sha256(key, message), mac),
            Some(("md5", mac)) => (hmac_md5(key, message), mac),
            _ => return false,
        }
    };
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Our answer to a client's challenge frame, or why it is not one.
pub(crate) fn answer(key: &[u8], frame: &[u8]) -> Result<Vec<u8>, &'static str> {
    let message = frame
        .strip_prefix(CHALLENGE)
        .ok_or("the client's challenge does not start with #CHALLENGE#")?;
    if message.len() < LEGACY_LEN {
        return Err("the client's challenge is too short");
    }
    // 20 bytes is 3.11's challenge whatever they hold (random bytes may look like "{x}").
    if message.len() == LEGACY_LEN {
        return Ok(hmac_md5(key, message));
    }
    match digest_prefix(message) {
        Some(("sha256", _)) => {
            let mut out = b"{sha256}".to_vec();
            out.extend(hmac_sha256(key, message));
            Ok(out)
        }
        Some(("md5", _)) => {
            let mut out = b"{md5}".to_vec();
            out.extend(hmac_md5(key, message));
            Ok(out)
        }
        Some(_) => Err("the client asks for a digest this manager does not offer"),
        // 3.11: a bare MD5 over the 20 bytes.
        None => Ok(hmac_md5(key, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_proof_are_checked_and_answered() {
        let key = b"password";
        let ours = challenge(&[7; 40]);
        let message = &ours[CHALLENGE.len()..];
        // A 3.11 client: bare MD5 over the whole message.
        assert!(verify(key, message, &hmac_md5(key, message)));
        // A 3.12 client: {sha256} + HMAC-SHA256.
        let mut modern = b"{sha256}".to_vec();
        modern.extend(hmac_sha256(key, message));
        assert!(verify(key, message, &modern));
        assert!(!verify(b"wrong", message, &modern));
        assert!(!verify(
            key,
            message,
            b"{sha1}0123456789012345678901234567890123"
        ));
        // Their challenges.
        let legacy = [CHALLENGE, &[1u8; 20][..]].concat();
        assert_eq!(answer(key, &legacy).unwrap(), hmac_md5(key, &[1; 20]));
        // Random bytes that happen to look like a digest prefix are still 3.11's challenge.
        let lookalike = [CHALLENGE, b"{sha1}", &[3u8; 14][..]].concat();
        assert_eq!(
            answer(key, &lookalike).unwrap(),
            hmac_md5(key, &lookalike[11..])
        );
        let modern = [CHALLENGE, b"{sha256}", &[2u8; 40][..]].concat();
        let reply = answer(key, &modern).unwrap();
        assert!(reply.starts_with(b"{sha256}"));
        assert!(answer(key, b"#CHALLENGE#short").is_err());
        assert!(answer(key, b"hello").is_err());
    }
}
