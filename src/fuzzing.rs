//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`; not an API). Each
//! takes arbitrary bytes, drives one peer-facing parser with them and checks what must hold
//! for any input: no panic, and round trips where the input is valid.

use std::collections::BTreeMap;

use crate::wire::auth::{AuthKey, ClientHandshake, NONCE_LEN, ServerHandshake};
use crate::wire::codec;
use crate::wire::frame::{self, FrameReader};
use crate::wire::message::{RequestHeader, ResponseHeader};

/// The frame reader: the first byte picks a chunk size; the rest is cut into frames, which
/// must re-frame to the same bytes.
pub fn frames(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut reader = FrameReader::new(1 << 16);
    let mut reframed = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let end = (at + chunk).min(stream.len());
        let mut piece = &stream[at..end];
        while !piece.is_empty() {
            match reader.feed(piece) {
                Ok(n) => piece = &piece[n..],
                Err(_) => return, // an oversize prefix: refused, as it must be
            }
            loop {
                match reader.next_frame() {
                    Ok(Some(payload)) => {
                        let start = frame::begin(&mut reframed);
                        reframed.extend_from_slice(payload);
                        frame::end(&mut reframed, start, u32::MAX).expect("small");
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
        at = end;
    }
    assert_eq!(
        reframed[..],
        stream[..reframed.len()],
        "frames re-encode exactly"
    );
}

/// The manager's handshake fed arbitrary bytes in arbitrary pieces (the first byte picks the
/// piece size): it must never admit a peer that has not proven the key.
pub fn server_handshake(data: &[u8]) {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let key = AuthKey::new(b"fuzzing key").expect("non-empty");
    let mut server = ServerHandshake::new(&key, [5; NONCE_LEN]);
    let chunk = usize::from(chunk).max(1);
    for piece in input.chunks(chunk) {
        let mut at = 0;
        while at < piece.len() {
            match server.feed(&piece[at..]) {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(_) => return,
            }
        }
        let _ = server.take_output();
        assert!(!server.is_proven(), "a peer without the key was proven");
    }
}

/// The client's handshake fed an arbitrary manager's answers: it must never call the
/// manager proven. A correct manager, driven in memory, must always succeed.
pub fn client_handshake(data: &[u8]) {
    let key = AuthKey::new(b"fuzzing key").expect("non-empty");
    let mut client = ClientHandshake::new(&key, [6; NONCE_LEN]);
    let _ = client.take_output();
    let mut at = 0;
    while at < data.len() {
        match client.feed(&data[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(_) => break,
        }
        let _ = client.take_output();
    }
    assert!(!client.is_done(), "an impostor manager was accepted");
    // And the honest pair, with nonces from the input, always agrees.
    let mut nonces = [0u8; 2 * NONCE_LEN];
    for (slot, byte) in nonces.iter_mut().zip(data) {
        *slot = *byte;
    }
    let mut client = ClientHandshake::new(&key, nonces[..NONCE_LEN].try_into().expect("32"));
    let mut server = ServerHandshake::new(&key, nonces[NONCE_LEN..].try_into().expect("32"));
    for _ in 0..4 {
        let to_server = client.take_output();
        let mut at = 0;
        while at < to_server.len() {
            at += server.feed(&to_server[at..]).expect("an honest client");
        }
        if server.is_proven() {
            server.admit();
        }
        let to_client = server.take_output();
        let mut at = 0;
        while at < to_client.len() {
            at += client.feed(&to_client[at..]).expect("an honest manager");
        }
    }
    assert!(client.is_done() && server.is_done());
}

/// The envelopes: whatever decodes re-encodes to the same bytes.
pub fn envelopes(data: &[u8]) {
    if let Ok((header, used)) = RequestHeader::decode(data) {
        let mut again = Vec::new();
        header.encode(&mut again);
        assert_eq!(again[..], data[..used]);
    }
    if let Ok((header, used)) = ResponseHeader::decode(data) {
        let mut again = Vec::new();
        header.encode(&mut again);
        assert_eq!(again[..], data[..used]);
    }
}

/// The codec: arbitrary bytes decoded as several shapes never panic or over-allocate, and
/// what decodes re-encodes to the same bytes.
pub fn codec(data: &[u8]) {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    enum Shape {
        A { name: String, tags: Vec<String> },
        B(Option<Box<Shape>>, u32),
        C,
    }
    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
        if let Ok(value) = codec::decode_exact::<T>(data) {
            let mut again = Vec::new();
            codec::encode_into(&value, &mut again).expect("a decoded value encodes");
            assert_eq!(again, data, "{}", std::any::type_name::<T>());
        }
    }
    round_trip::<(String, i64)>(data);
    round_trip::<Vec<String>>(data);
    // Maps decode but need not re-encode identically (duplicate or unordered keys collapse).
    let _ = codec::decode_exact::<BTreeMap<String, Vec<u8>>>(data);
    round_trip::<Shape>(data);
    round_trip::<crate::RemoteError>(data);
}

/// The msgpack reader: arbitrary bytes never panic or over-allocate; what it reads, the
/// writer writes back to a value that reads the same (compared as bytes, for NaN's sake).
#[cfg(feature = "msgpack")]
pub fn msgpack(data: &[u8]) {
    use crate::msgpack::codec::{ReadError, Scanner, read, write};
    // The listener's scanner, fed the bytes in two pieces, finds the end the parser finds.
    let parsed = read(data, 64, 1 << 20);
    let mut scanner = Scanner::default();
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let early = scanner.scan(&data[..split], 64, 1 << 20);
    let scanned = match early {
        Ok(Some(end)) => Ok(Some(end)),
        Ok(None) => scanner.scan(data, 64, 1 << 20),
        Err(e) => Err(e),
    };
    match &parsed {
        Ok((_, used)) => assert_eq!(scanned, Ok(Some(*used)), "the scanner disagrees"),
        Err(ReadError::Incomplete) => assert!(
            !matches!(scanned, Ok(Some(_))),
            "the scanner saw a whole value where the parser wants more"
        ),
        Err(ReadError::Invalid(_)) => {}
    }
    if let Ok((value, used)) = parsed {
        assert!(used <= data.len());
        let mut again = Vec::new();
        write(&value, &mut again);
        let (reread, n) = read(&again, 64, 1 << 20).expect("our own msgpack reads back");
        assert_eq!(n, again.len());
        let mut twice = Vec::new();
        write(&reread, &mut twice);
        assert_eq!(again, twice);
    }
}

/// The Python listener's pickle reader: arbitrary bytes never panic or load anything; what
/// it reads, the writer writes back readably.
#[cfg(feature = "python")]
pub fn pickle(data: &[u8]) {
    use crate::python::{pickle::pickle, unpickle::unpickle};
    if let Ok(value) = unpickle(data, 64) {
        let mut again = Vec::new();
        pickle(&value, &mut again);
        let reread = unpickle(&again, 64).expect("our own pickle reads back");
        let mut twice = Vec::new();
        pickle(&reread, &mut twice);
        assert_eq!(again, twice);
    }
}

/// The dashboard's HTTP head parser: any bytes give a request, "more", or a refusal; a
/// request's head is within the input, and the same head parses the same with more after it.
#[cfg(feature = "http")]
pub fn http_head(data: &[u8]) {
    use crate::server::http_request::parse;
    if let Ok(Some((request, used))) = parse(data) {
        assert!(used <= data.len());
        let mut longer = data[..used].to_vec();
        longer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let (again, used_again) = parse(&longer).expect("parsed once").expect("whole");
        assert_eq!(used_again, used);
        assert_eq!(again.path, request.path);
    }
}

/// The dashboard's WebSocket client frames: any bytes give a frame within the input, "more",
/// or a refusal; a frame re-masked parses back the same.
#[cfg(feature = "http")]
pub fn websocket(data: &[u8]) {
    use crate::server::http_websocket::client_frame;
    if let Some(Ok(frame)) = client_frame(data) {
        assert!(frame.used <= data.len());
        let mut again = vec![0x80 | frame.opcode];
        let len = frame.payload.len();
        if len < 126 {
            again.push(0x80 | len as u8);
        } else {
            again.push(0x80 | 126);
            again.extend_from_slice(&(len as u16).to_be_bytes());
        }
        let mask = [1u8, 2, 3, 4];
        again.extend_from_slice(&mask);
        again.extend(
            frame
                .payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4]),
        );
        let reread = client_frame(&again).expect("whole").expect("valid");
        assert_eq!(reread.payload, frame.payload);
        assert_eq!(reread.used, again.len());
    }
}

/// The Python listener's handshake: any client response is verified without panicking (and
/// never accepted, since it was made without the key), and any challenge is answered or
/// refused.
#[cfg(feature = "python")]
pub fn python_handshake(data: &[u8]) {
    use crate::python::handshake::{answer, challenge, verify};
    let ours = challenge(&[7u8; 40]);
    let message = &ours[crate::python::handshake::CHALLENGE.len()..];
    // Made without the key, no response proves it.
    assert!(!verify(b"the key", message, data));
    let _ = answer(b"the key", data);
}

/// The Python listener's request reader: any frame is a request `(ident, method, args,
/// kwds)` or a refusal, never a panic; what our own pickler writes for a request reads back.
#[cfg(feature = "python")]
pub fn python_request(data: &[u8]) {
    use crate::python::pickle::pickle;
    use crate::values::value::ForeignValue;
    if crate::server::python_request(data).is_ok() {
        return;
    }
    // Refused bytes say nothing more; a request made from them as a string must read.
    let method = String::from_utf8_lossy(&data[..data.len().min(32)]).into_owned();
    let mut frame = Vec::new();
    pickle(
        &ForeignValue::Tuple(vec![
            ForeignValue::None,
            ForeignValue::Str(method.clone()),
            ForeignValue::Tuple(vec![ForeignValue::Bytes(data.to_vec())]),
            ForeignValue::Dict(Vec::new()),
        ]),
        &mut frame,
    );
    assert_eq!(crate::server::python_request(&frame), Ok(method));
}

#[cfg(test)]
mod tests {
    /// The entry points themselves, on a few inputs (the fuzzer gives them millions).
    #[test]
    fn the_fuzz_entry_points_hold_on_simple_inputs() {
        for input in [&b""[..], b"\x03", b"\x01\x00\x00\x00\x02ab", &[0xff; 200]] {
            super::frames(input);
            super::server_handshake(input);
            super::client_handshake(input);
            super::envelopes(input);
            super::codec(input);
            #[cfg(feature = "msgpack")]
            super::msgpack(input);
            #[cfg(feature = "python")]
            super::pickle(input);
        }
    }
}
