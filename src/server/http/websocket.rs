//! `/logs/ws`: the log tail over a WebSocket (RFC 6455), as people tail aggregated logs
//! (`websocat ws://HOST/logs/ws?token=…`). One text frame per line; the server only
//! writes, and reads the client's frames just enough to answer a ping and honour a close.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::super::Shared;
use super::Response;
use super::request::Request;
use crate::base64;

/// The RFC's fixed GUID, appended to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The most bytes of a client frame we read (pings and closes are small).
const MAX_CLIENT_FRAME: usize = 4096;

/// The `Sec-WebSocket-Accept` value for a client's key.
pub(super) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::encode(&sha.finalize())
}

/// A server frame (never masked): FIN, `opcode`, `payload`.
pub(super) fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A client's frame, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClientFrame {
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
    /// How many bytes of the buffer it took.
    pub(crate) used: usize,
}

/// A client frame, if `buffer` holds a whole one; `Err` for one we refuse (unmasked, large).
pub(crate) fn client_frame(buffer: &[u8]) -> Option<Result<ClientFrame, ()>> {
    if buffer.len() < 2 {
        return None;
    }
    let opcode = buffer[0] & 0x0f;
    let masked = buffer[1] & 0x80 != 0;
    let (len, mut at) = match buffer[1] & 0x7f {
        126 if buffer.len() >= 4 => (u16::from_be_bytes([buffer[2], buffer[3]]) as usize, 4),
        127 => return Some(Err(())), // never this large from a tail's client
        126 => return None,
        n => (n as usize, 2),
    };
    if !masked || len > MAX_CLIENT_FRAME {
        return Some(Err(())); // clients must mask (RFC 6455 §5.1)
    }
    if buffer.len() < at + 4 + len {
        return None;
    }
    let mask = [buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]];
    at += 4;
    let payload = buffer[at..at + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Some(Ok(ClientFrame {
        opcode,
        payload,
        used: at + len,
    }))
}

/// Upgrades the connection and streams log lines (of `?worker=NAME`, or all) until the
/// client closes or the manager stops.
pub(super) fn serve(
    shared: &Arc<Shared>,
    request: &Request,
    stream: &mut &crate::transport::Stream,
) -> std::io::Result<()> {
    let upgrade = request
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = request.header("sec-websocket-key").filter(|_| upgrade) else {
        return Response::text(400, "a WebSocket upgrade is expected here\n").write(stream);
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    stream.write_all(head.as_bytes())?;
    let worker = request
        .query_param("worker")
        .filter(|w| !w.is_empty())
        .map(str::to_string);
    let mut after: Option<u64> = None;
    let mut incoming = Vec::new();
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    while !shared.stopping.load(SeqCst) {
        let page = super::pages::log_page(shared, after, worker.clone());
        for line in &page.lines {
            let text = format!(
                "{} {} | {}",
                super::pages::clock(line.time),
                line.source,
                line.text
            );
            stream.write_all(&frame(0x1, text.as_bytes()))?;
        }
        after = Some(page.next);
        // The client's frames: a ping is answered, a close ends the stream.
        if !super::read_some(stream, &mut incoming)? {
            return Ok(());
        }
        while let Some(parsed) = client_frame(&incoming) {
            let Ok(ClientFrame {
                opcode,
                payload,
                used,
            }) = parsed
            else {
                stream.write_all(&frame(0x8, &1002u16.to_be_bytes()))?; // protocol error
                return Ok(());
            };
            incoming.drain(..used);
            match opcode {
                0x8 => {
                    stream.write_all(&frame(0x8, &payload))?;
                    return Ok(());
                }
                0x9 => stream.write_all(&frame(0xA, &payload))?,
                _ => {}
            }
        }
    }
    stream.write_all(&frame(0x8, &1001u16.to_be_bytes())) // going away
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6455's own example handshake.
    #[test]
    fn the_accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_encode_their_lengths_and_client_frames_unmask() {
        assert_eq!(frame(0x1, b"hi"), [0x81, 2, b'h', b'i']);
        assert_eq!(&frame(0x1, &[0; 300])[..4], [0x81, 126, 1, 44]);
        let masked = [0x89, 0x82, 1, 2, 3, 4, b'o' ^ 1, b'k' ^ 2];
        assert_eq!(
            client_frame(&masked),
            Some(Ok(ClientFrame {
                opcode: 0x9,
                payload: b"ok".to_vec(),
                used: 8
            }))
        );
        assert_eq!(client_frame(&masked[..5]), None);
        assert_eq!(
            client_frame(&[0x81, 0x02, b'n', b'o']),
            Some(Err(())),
            "unmasked"
        );
    }
}
