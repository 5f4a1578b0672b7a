//! Sequential and pipelined calls through the msgpack-rpc listener, next to the native listener of the same manager.

use crate::*;

/// A msgpack-rpc client of our own for the harness (rmp-serde over a socket), authenticated.
pub(crate) struct MsgpackClient {
    pub(crate) writer: TcpStream,
    pub(crate) reader: BufReader<TcpStream>,
    pub(crate) next: u32,
}

pub(crate) type MsgpackReply = (u8, u32, Option<(String, String)>, serde::de::IgnoredAny);

impl MsgpackClient {
    pub(crate) fn connect(address: &str) -> MsgpackClient {
        let writer = TcpStream::connect(address).unwrap();
        writer.set_nodelay(true).unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        let mut client = MsgpackClient {
            writer,
            reader,
            next: 0,
        };
        client.send("monogusa.challenge", &Vec::<u8>::new());
        let (_, _, _, nonce): (u8, u32, Option<(String, String)>, ByteBuf) =
            rmp_serde::from_read(&mut client.reader).unwrap();
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(AUTHKEY.as_bytes()).unwrap();
        mac.update(b"monogusa msgpack proof");
        mac.update(&nonce);
        let proof = ByteBuf::from(mac.finalize().into_bytes().to_vec());
        client.send("monogusa.prove", &(proof,));
        client.receive();
        client
    }

    pub(crate) fn send<P: Serialize>(&mut self, method: &str, params: &P) {
        self.next += 1;
        let bytes = rmp_serde::to_vec(&(0u8, self.next, method, params)).unwrap();
        self.writer.write_all(&bytes).unwrap();
    }

    pub(crate) fn receive(&mut self) {
        let (kind, _, error, _): MsgpackReply = rmp_serde::from_read(&mut self.reader).unwrap();
        assert!(kind == 1 && error.is_none(), "{error:?}");
    }
}

/// Sequential calls and 64 in flight through the msgpack-rpc listener, next to the native
/// listener of the same manager.
pub(crate) fn msgpack_calls(plan: Plan) {
    let manager = Server::start("msgpack-manager", "127.0.0.1:0");
    let (native, msgpack) = manager.address.split_once(' ').unwrap();
    let client = Client::connect(native, AUTHKEY).unwrap();
    let arg = small_arg();
    let native_seq = rate(plan.span, 1, || {
        let _: String = client.call("echo", (&arg,)).unwrap();
    });
    let native_pipelined = rate(plan.span, 64, || {
        let pending: Vec<Pending<String>> = (0..64)
            .map(|_| client.send("echo", (&arg,)).unwrap())
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
    });
    let mut rpc = MsgpackClient::connect(msgpack);
    let params = (arg.clone(),);
    let seq = rate(plan.span, 1, || {
        rpc.send("echo", &params);
        rpc.receive();
    });
    let pipelined = rate(plan.span, 64, || {
        for _ in 0..64 {
            rpc.send("echo", &params);
        }
        for _ in 0..64 {
            rpc.receive();
        }
    });
    emit(row(
        "native sequential calls (same manager)",
        "tcp",
        "16 B",
        native_seq,
        "calls/s",
        None,
    ));
    emit(row(
        "msgpack-rpc sequential calls",
        "tcp",
        "16 B",
        seq,
        "calls/s",
        Some((native_seq, "native sequential calls (same manager)")),
    ));
    emit(row(
        "native calls, 64 in flight (same manager)",
        "tcp",
        "16 B",
        native_pipelined,
        "calls/s",
        None,
    ));
    emit(row(
        "msgpack-rpc calls, 64 in flight",
        "tcp",
        "16 B",
        pipelined,
        "calls/s",
        Some((
            native_pipelined,
            "native calls, 64 in flight (same manager)",
        )),
    ));
}
