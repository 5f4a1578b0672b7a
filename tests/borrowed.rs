//! Arguments decoded in place: `Str` / `Bytes` in registered functions, `&str`, `&[u8]` and
//! `Cow` in `#[service]` methods, over real sockets, through the native codec (borrowed
//! from the frame) and through msgpack-rpc (the serde boundary), with bad input refused.
#![allow(missing_docs)] // tests, not API

use std::borrow::Cow;
use std::io::{BufReader, Write};
use std::net::TcpStream;

use monogusa::{Address, Bytes, Client, Error, Manager, ManagerHandle, RemoteErrorKind, Str};
use serde_bytes::ByteBuf;

const KEY: &str = "borrowed-key";

/// Remembers what it was given, so the test can see every argument arrived whole.
#[monogusa::service]
pub trait Index {
    /// Stores `value` under `key`; says whether both arrived borrowed.
    fn put(&mut self, key: &str, value: &[u8]) -> usize;
    /// The value under `key`.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Says, for each of its arguments, whether it was lent by the frame.
    fn lent(&self, name: Cow<'_, str>, data: Cow<'_, [u8]>, n: u32) -> (bool, bool, String, u32);
}

#[derive(Default)]
struct MemoryIndex(std::collections::BTreeMap<String, Vec<u8>>);

impl Index for MemoryIndex {
    fn put(&mut self, key: &str, value: &[u8]) -> usize {
        self.0.insert(key.to_string(), value.to_vec());
        self.0.len()
    }
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }
    fn lent(&self, name: Cow<'_, str>, data: Cow<'_, [u8]>, n: u32) -> (bool, bool, String, u32) {
        (
            matches!(name, Cow::Borrowed(_)),
            matches!(data, Cow::Borrowed(_)),
            format!("{name}:{}", data.len()),
            n,
        )
    }
}

fn start(bind: &str) -> ManagerHandle {
    Manager::builder()
        .bind(bind)
        .authkey(KEY)
        .msgpack_listener("127.0.0.1:0")
        .register("greet", |name: Str, times: u32| {
            (name.is_borrowed(), name.repeat(times as usize))
        })
        .register("weigh", |label: String, data: Bytes, more: Bytes| {
            (
                data.is_borrowed() && more.is_borrowed(),
                format!("{label}:{}+{}", data.len(), more.len()),
            )
        })
        .serve("index", IndexServer::new(MemoryIndex::default()))
        .build()
        .unwrap()
        .start()
        .unwrap()
}

fn unix_bind() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = format!("unix:{}", dir.path().join("m.sock").display());
    (dir, path)
}

fn exercise(address: &Address) {
    let client = Client::connect(address, KEY).unwrap();
    let (lent, greeting): (bool, String) = client.call("greet", ("ab", 3u32)).unwrap();
    assert!(lent, "the native codec lends strings from the frame");
    assert_eq!(greeting, "ababab");
    // An owned String on the caller's side encodes the same as &str.
    let (_, greeting): (bool, String) = client.call("greet", ("é".to_string(), 2u32)).unwrap();
    assert_eq!(greeting, "éé");

    // Bytes from a slice, a Vec<u8> and a ByteBuf alike.
    let (lent, weighed): (bool, String) = client
        .call(
            "weigh",
            ("w", serde_bytes::Bytes::new(&[1, 2, 3]), vec![9u8; 1000]),
        )
        .unwrap();
    assert!(lent);
    assert_eq!(weighed, "w:3+1000");
    let (_, weighed): (bool, String) = client
        .call("weigh", ("x", ByteBuf::from(vec![0; 5]), Vec::<u8>::new()))
        .unwrap();
    assert_eq!(weighed, "x:5+0");

    let index = IndexClient::open(&client, "index").unwrap();
    assert_eq!(index.put("k", &[7, 8, 9]).unwrap(), 1);
    assert_eq!(index.put("long", &vec![3; 100_000]).unwrap(), 2);
    assert_eq!(index.get("k").unwrap(), Some(vec![7, 8, 9]));
    assert_eq!(index.get("long").unwrap().unwrap().len(), 100_000);
    assert_eq!(index.get("absent").unwrap(), None);
    let lent = index
        .lent(Cow::Borrowed("name"), Cow::Owned(vec![1, 2]), 4)
        .unwrap();
    assert_eq!(lent, (true, true, "name:2".to_string(), 4));
    // Pipelined, through the stub's sender.
    let pending: Vec<_> = (0..50)
        .map(|i| index.send().put(&format!("p{i}"), &[i as u8]).unwrap())
        .collect();
    for p in pending {
        p.wait().unwrap();
    }
    assert_eq!(index.get("p49").unwrap(), Some(vec![49]));
}

#[test]
fn borrowed_arguments_over_tcp() {
    let manager = start("127.0.0.1:0");
    exercise(manager.address());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Unix-domain sockets: Windows has named pipes instead (tests/pipes.rs)"
)]
fn borrowed_arguments_over_a_unix_socket() {
    let (_dir, bind) = unix_bind();
    let manager = start(&bind);
    exercise(manager.address());
}

/// A string argument that is not UTF-8 is refused as bad arguments, naming the function and
/// the types it expects; the connection and the manager serve on.
#[test]
fn invalid_utf8_in_a_borrowed_argument_is_refused() {
    let manager = start("127.0.0.1:0");
    let client = Client::connect(manager.address(), KEY).unwrap();
    let bytes = serde_bytes::Bytes::new(b"\xff\xfe");
    let refused = client.call::<(bool, String)>("greet", (bytes, 1u32));
    match refused {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), RemoteErrorKind::BadArguments, "{e}");
            assert!(e.message().contains("greet"), "{e}");
            assert!(e.message().contains("UTF-8"), "{e}");
        }
        other => panic!("expected BadArguments, got {other:?}"),
    }
    let index = IndexClient::open(&client, "index").unwrap();
    let refused = index.handle().call::<usize, _>("put", &(bytes, bytes));
    assert!(
        matches!(&refused, Err(Error::Remote(e)) if e.kind() == RemoteErrorKind::BadArguments),
        "{refused:?}"
    );
    // A truncated argument: the length claims more than the frame holds.
    let refused = client.call::<(bool, String)>("greet", (u64::MAX, 1u32));
    assert!(
        matches!(&refused, Err(Error::Remote(e)) if e.kind() == RemoteErrorKind::BadArguments),
        "{refused:?}"
    );
    let (_, ok): (bool, String) = client.call("greet", ("z", 2u32)).unwrap();
    assert_eq!(ok, "zz");
}

/// A minimal msgpack-rpc client: the same functions and methods called through the serde
/// boundary get their borrowed arguments too.
struct Msgpack {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    next: u32,
}

impl Msgpack {
    fn connect(address: &Address) -> Msgpack {
        let writer = TcpStream::connect(address.to_string()).unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        let mut client = Msgpack {
            writer,
            reader,
            next: 0,
        };
        let nonce: ByteBuf = client.call("monogusa.challenge", &()).unwrap();
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(b"monogusa msgpack proof");
        mac.update(&nonce);
        let proof = ByteBuf::from(mac.finalize().into_bytes().to_vec());
        client
            .call::<_, serde::de::IgnoredAny>("monogusa.prove", &(proof,))
            .unwrap();
        client
    }

    fn call<P: serde::Serialize, R: serde::de::DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<R, (String, String)> {
        self.next += 1;
        let bytes = rmp_serde::to_vec(&(0u8, self.next, method, params)).unwrap();
        self.writer.write_all(&bytes).unwrap();
        // The result is decoded only when there is no error (it is nil then).
        let (kind, id, error, result): (u8, u32, Option<(String, String)>, Option<R>) =
            rmp_serde::from_read(&mut self.reader).unwrap();
        assert_eq!((kind, id), (1, self.next));
        match error {
            Some(e) => Err(e),
            None => Ok(result.expect("a result")),
        }
    }
}

#[test]
fn borrowed_arguments_through_msgpack_rpc() {
    let manager = start("127.0.0.1:0");
    let mut rpc = Msgpack::connect(&manager.msgpack_addresses()[0]);
    let (_, greeting): (bool, String) = rpc.call("greet", &("yo", 2u32)).unwrap();
    assert_eq!(greeting, "yoyo");
    let (_, weighed): (bool, String) = rpc
        .call(
            "weigh",
            &("m", ByteBuf::from(vec![1, 2]), ByteBuf::from(vec![3])),
        )
        .unwrap();
    assert_eq!(weighed, "m:2+1");
    // A wrong type is refused, the connection still serves.
    let refused = rpc
        .call::<_, (bool, String)>("greet", &(5u8, 2u32))
        .unwrap_err();
    assert!(refused.1.contains("greet"), "{refused:?}");
    let (_, greeting): (bool, String) = rpc.call("greet", &("ok", 1u32)).unwrap();
    assert_eq!(greeting, "ok");
}
