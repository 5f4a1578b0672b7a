//! The built-in shared objects: one atomic counter add, one queue put and get.

use crate::*;

/// The built-in shared objects: one atomic counter add, one queue put and get.
pub(crate) fn store_operations(plan: Plan) {
    for transport in [Transport::Tcp, Transport::Unix] {
        let t = transport.name();
        let raw = Server::start("raw-server", &transport.bind("rawst"));
        let manager = Server::start("manager", &transport.bind("store"));
        let mut raw_stream = RawStream::connect(&raw.address);
        let raw_rt = rate(plan.span, 1, || raw_stream.ping_pong(16, 1));
        let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
        let counter = client.counter("bench-counter").unwrap();
        let adds = rate(plan.span, 1, || {
            counter.add(1).unwrap();
        });
        emit(row(
            "shared Counter.add",
            t,
            "8 B",
            adds,
            "calls/s",
            Some((raw_rt, "raw ping-pong")),
        ));
        let queue = client.queue::<u64>("bench-queue", 0).unwrap();
        let put_get = rate(plan.span, 2, || {
            queue.put(&7).unwrap();
            queue.get().unwrap();
        });
        emit(row(
            "shared Queue put + get",
            t,
            "8 B",
            put_get,
            "calls/s",
            Some((raw_rt, "raw ping-pong")),
        ));
    }
}
