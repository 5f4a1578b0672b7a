//! Randomized tests of every parser that reads bytes from a peer: frames, envelopes, the
//! handshake, and the codec. Each gets thousands of random and mutated inputs and must
//! neither panic nor accept what it should not. (The `cargo fuzz` harnesses these stand in
//! for need a nightly toolchain, which these machines do not have.)

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use crate::wire::auth::{self, AuthKey};
use crate::wire::codec;
use crate::wire::frame::{self, FrameReader};
use crate::wire::message::{Op, RequestHeader, ResponseHeader};

/// xorshift64*: deterministic, so a failure is reproducible from its seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// `base` with a few bytes flipped, inserted or removed.
    fn mutate(&mut self, base: &[u8]) -> Vec<u8> {
        let mut out = base.to_vec();
        for _ in 0..1 + self.below(3) {
            match self.below(3) {
                0 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] ^= 1 << self.below(8);
                }
                1 => {
                    let i = self.below(out.len() + 1);
                    out.insert(i, self.next() as u8);
                }
                _ if !out.is_empty() => {
                    let i = self.below(out.len());
                    out.remove(i);
                }
                _ => {}
            }
        }
        out
    }
}

#[test]
fn envelopes_never_panic_and_reencode_exactly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut valid = Vec::new();
    RequestHeader {
        id: 5,
        op: Op::Method {
            object: 9,
            method: "inc",
        },
    }
    .encode(&mut valid);
    for round in 0..50_000 {
        let input = if round % 2 == 0 {
            rng.bytes(48)
        } else {
            rng.mutate(&valid)
        };
        if let Ok((header, used)) = RequestHeader::decode(&input) {
            let mut again = Vec::new();
            header.encode(&mut again);
            assert_eq!(again, input[..used], "seed round {round}");
        }
        if let Ok((header, used)) = ResponseHeader::decode(&input) {
            let mut again = Vec::new();
            header.encode(&mut again);
            assert_eq!(again, input[..used]);
        }
    }
}

/// Feeds a byte string in random chunks.
struct Chunks<'a> {
    data: &'a [u8],
    rng: &'a mut Rng,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (1 + self.rng.below(64)).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn frame_reader_cuts_random_streams_or_refuses_them() {
    let mut rng = Rng(42);
    for _ in 0..3_000 {
        // Half honest frames (which must come back intact), half garbage.
        let honest = rng.below(2) == 0;
        let mut data = Vec::new();
        let mut sent = Vec::new();
        if honest {
            for _ in 0..rng.below(8) {
                let payload = rng.bytes(300);
                let at = frame::begin(&mut data);
                data.extend_from_slice(&payload);
                frame::end(&mut data, at, 1024).unwrap();
                sent.push(payload);
            }
        } else {
            data = rng.bytes(600);
        }
        let mut reader = FrameReader::new(1024);
        let mut source = Chunks {
            data: &data,
            rng: &mut rng,
        };
        let mut got = Vec::new();
        'read: loop {
            loop {
                match reader.next_frame() {
                    Ok(Some(f)) => got.push(f.to_vec()),
                    Ok(None) => break,
                    Err(_) => {
                        assert!(!honest, "an honest stream was refused");
                        break 'read;
                    }
                }
            }
            if reader.fill(&mut source).unwrap() == 0 {
                break;
            }
        }
        if honest {
            assert_eq!(got, sent);
        }
    }
}

/// A peer that sends `input` and records what it is told.
struct Scripted {
    input: Vec<u8>,
    at: usize,
    output: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.input.len() - self.at);
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "script ended"));
        }
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn handshake_refuses_random_and_mutated_clients() {
    let key = AuthKey::new(b"secret").unwrap();
    let mut rng = Rng(7);
    let banner = crate::wire::protocol::banner();
    let mut hello = vec![banner.len() as u8];
    hello.extend_from_slice(banner.as_bytes());
    hello.extend_from_slice(&[3; auth::NONCE_LEN]);
    // A client without the key cannot know the right proof, whatever else it sends.
    hello.extend_from_slice(&[0; 32]);
    for round in 0..5_000 {
        let input = if round % 2 == 0 {
            rng.bytes(120)
        } else {
            rng.mutate(&hello)
        };
        let mut peer = Scripted {
            input,
            at: 0,
            output: Vec::new(),
        };
        assert!(
            auth::server_handshake(&mut peer, &key, || Ok(())).is_err(),
            "round {round} got in"
        );
    }
}

#[test]
fn codec_never_panics_on_random_input() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    enum Shape {
        A { name: String, tags: Vec<String> },
        B(Option<Box<Shape>>, u32),
        C,
    }
    let mut rng = Rng(99);
    for _ in 0..20_000 {
        let input = rng.bytes(64);
        let _ = codec::decode_exact::<(String, i64)>(&input);
        let _ = codec::decode_exact::<Vec<String>>(&input);
        let _ = codec::decode_exact::<BTreeMap<String, Vec<u8>>>(&input);
        let _ = codec::decode_exact::<Shape>(&input);
        let _ = codec::decode_exact::<crate::RemoteError>(&input);
    }
}

/// The Python listener's pickle reader: random bytes and mutations of real requests and of
/// what our writer emits never panic, and whatever it accepts our writer writes back readably.
#[cfg(feature = "python")]
#[test]
fn pickle_reader_never_panics_and_round_trips_what_it_accepts() {
    use crate::python::pickle::pickle;
    use crate::python::unpickle::unpickle;
    use crate::values::value::ForeignValue;
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let mut seeds: Vec<Vec<u8>> = vec![
        // Python 3.11's `create('get', 'a')` request, as captured from it.
        b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00(N\x8c\x06create\x94\x8c\x03get\x94\x8c\x01a\x94\x86\x94}\x94t\x94.".to_vec(),
        b"(lp0\nI1\naF1.5\naS'x'\np1\nag1\na.".to_vec(),
    ];
    let mut ours = Vec::new();
    pickle(
        &ForeignValue::Tuple(vec![
            ForeignValue::Str("#RETURN".into()),
            ForeignValue::Dict(vec![(
                ForeignValue::Int(1),
                ForeignValue::List(vec![ForeignValue::Complex(1.0, 2.0)]),
            )]),
            ForeignValue::Exception("KeyError".into(), vec![ForeignValue::Str("k".into())]),
        ]),
        &mut ours,
    );
    seeds.push(ours);
    for round in 0..20_000 {
        let input = if round % 4 == 0 {
            rng.bytes(64)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            rng.mutate(seed)
        };
        if let Ok(value) = unpickle(&input, 64) {
            // Compared as bytes: a NaN is not equal to itself.
            let mut again = Vec::new();
            pickle(&value, &mut again);
            let reread = unpickle(&again, 64).expect("our own pickle reads back");
            let mut twice = Vec::new();
            pickle(&reread, &mut twice);
            assert_eq!(again, twice, "{input:?}");
        }
    }
}

/// The msgpack listener's scanner finds the end the parser finds, on random bytes and on
/// mutated messages split at random points (the checks of `fuzzing::msgpack`).
#[cfg(feature = "msgpack")]
#[test]
fn the_msgpack_scanner_agrees_with_the_parser() {
    use crate::msgpack::codec::write;
    use crate::values::value::ForeignValue;
    let mut rng = Rng(0x51ca_77e2_0bad_cafe);
    let message = ForeignValue::List(vec![
        ForeignValue::Int(0),
        ForeignValue::Int(7),
        ForeignValue::Str("counter.add".into()),
        ForeignValue::List(vec![
            ForeignValue::Str("hits".into()),
            ForeignValue::Int(-70_000),
            ForeignValue::Dict(vec![(
                ForeignValue::Bytes(vec![1, 2]),
                ForeignValue::Float(0.5),
            )]),
            ForeignValue::None,
        ]),
    ]);
    let mut base = Vec::new();
    write(&message, &mut base);
    for _ in 0..20_000 {
        let data = if rng.below(2) == 0 {
            rng.bytes(64)
        } else {
            rng.mutate(&base)
        };
        crate::fuzzing::msgpack(&data);
    }
    crate::fuzzing::msgpack(&base);
}

/// The dashboard's head parser and WebSocket frames, and the Python handshake, on random and
/// mutated input (the checks of the `http_head`, `websocket` and `python_handshake` fuzz
/// targets).
#[cfg(all(feature = "http", feature = "python"))]
#[test]
fn dashboard_and_python_handshake_parsers_hold() {
    let mut rng = Rng(0x0dd_ba11_5eed_f00d);
    let head = b"GET /api/state?token=abc&x=1 HTTP/1.1\r\nHost: h\r\nCookie: a=b; monogusa_token=t\r\n\r\n";
    let frame = [
        0x81u8,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    let challenge = crate::python::handshake::challenge(&[3u8; 40]);
    for _ in 0..20_000 {
        let (a, b, c) = if rng.below(2) == 0 {
            (rng.bytes(128), rng.bytes(32), rng.bytes(80))
        } else {
            (rng.mutate(head), rng.mutate(&frame), rng.mutate(&challenge))
        };
        crate::fuzzing::http_head(&a);
        crate::fuzzing::websocket(&b);
        crate::fuzzing::python_handshake(&c);
        crate::fuzzing::python_request(&c);
    }
    crate::fuzzing::http_head(head);
    crate::fuzzing::websocket(&frame);
}
