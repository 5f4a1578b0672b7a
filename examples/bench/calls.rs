//! Calls: sequential, pipelined and batched, allocation-free, from several processes, and a fresh connection per call, each next to its raw-socket baseline.

use crate::*;

pub(crate) fn small_arg() -> String {
    "0123456789abcdef".to_string()
}

pub(crate) fn large_arg() -> ByteBuf {
    ByteBuf::from(vec![0x5a; 4096])
}

/// Sequential and pipelined calls against their raw baselines.
pub(crate) fn calls<T: Serialize + serde::de::DeserializeOwned>(
    plan: Plan,
    transport: Transport,
    size: Size,
    function: &str,
    arg: T,
) {
    let t = transport.name();
    let s = size.label();
    let raw = Server::start("raw-server", &transport.bind("raw"));
    let manager = Server::start("manager", &transport.bind("mgr"));
    let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();

    let mut raw_stream = RawStream::connect(&raw.address);
    let raw_rt = rate(plan.span, 1, || raw_stream.ping_pong(size.bytes(), 1));
    emit(row("raw ping-pong", t, s, raw_rt, "round trips/s", None));

    let seq = rate(plan.span, 1, || {
        let _: T = client.call(function, (&arg,)).unwrap();
    });
    emit(row(
        "sequential calls",
        t,
        s,
        seq,
        "calls/s",
        Some((raw_rt, "raw ping-pong")),
    ));

    for depth in [1usize, 16, 64, 256] {
        let raw_depth = rate(plan.span, depth, || {
            raw_stream.ping_pong(size.bytes(), depth)
        });
        let ours = pipelined_rate::<T>(plan, &client, depth, function, &arg);
        emit(row(
            &format!("raw pipelined echo, {depth} in flight"),
            t,
            s,
            raw_depth,
            "msgs/s",
            None,
        ));
        emit(row(
            &format!("pipelined calls, {depth} in flight"),
            t,
            s,
            ours,
            "calls/s",
            Some((raw_depth, "raw pipelined echo, same depth")),
        ));
        if depth > 1 {
            let batched = batched_rate::<T>(plan, &client, depth, function, &arg);
            emit(row(
                &format!("batched calls (client.batch()), {depth} in flight"),
                t,
                s,
                batched,
                "calls/s",
                Some((raw_depth, "raw pipelined echo, same depth")),
            ));
        }
    }
}

/// Calls per second with `depth` sent one `send` at a time, then waited for.
pub(crate) fn pipelined_rate<R: serde::de::DeserializeOwned>(
    plan: Plan,
    client: &Client,
    depth: usize,
    function: &str,
    arg: &impl Serialize,
) -> f64 {
    rate(plan.span, depth, || {
        let pending: Vec<Pending<R>> = (0..depth)
            .map(|_| client.send(function, (arg,)).unwrap())
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
    })
}

/// Calls per second with `depth` sent in one `client.batch()`, then waited for.
pub(crate) fn batched_rate<R: serde::de::DeserializeOwned>(
    plan: Plan,
    client: &Client,
    depth: usize,
    function: &str,
    arg: &impl Serialize,
) -> f64 {
    let mut pending: Vec<Pending<R>> = Vec::with_capacity(depth);
    rate(plan.span, depth, || {
        let mut batch = client.batch().unwrap();
        for _ in 0..depth {
            pending.push(batch.call(function, (arg,)).unwrap());
        }
        batch.send().unwrap();
        for p in pending.drain(..) {
            p.wait().unwrap();
        }
    })
}

/// Calls that allocate nothing per call on either side: the 16-byte argument borrowed in the
/// manager (`Str`), an integer reply (its length). What an owned `String` echo spends on its
/// two allocations and copies is the difference to the rows above.
pub(crate) fn allocation_free_calls(plan: Plan, transport: Transport) {
    let t = transport.name();
    let s = Size::Small.label();
    let raw = Server::start("raw-server", &transport.bind("raw"));
    let manager = Server::start("manager", &transport.bind("mgr"));
    let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
    let mut raw_stream = RawStream::connect(&raw.address);
    let arg = small_arg();
    for depth in [64usize, 256] {
        let raw_depth = rate(plan.span, depth, || {
            raw_stream.ping_pong(Size::Small.bytes(), depth)
        });
        let pipelined = pipelined_rate::<usize>(plan, &client, depth, "length", &arg);
        let batched = batched_rate::<usize>(plan, &client, depth, "length", &arg);
        let base = Some((raw_depth, "raw pipelined echo, same depth"));
        emit(row(
            &format!("pipelined calls, borrowed argument, integer reply, {depth} in flight"),
            t,
            s,
            pipelined,
            "calls/s",
            base,
        ));
        emit(row(
            &format!("batched calls, borrowed argument, integer reply, {depth} in flight"),
            t,
            s,
            batched,
            "calls/s",
            base,
        ));
    }
}

/// Aggregate calls/s from several client processes at once.
pub(crate) fn aggregate(plan: Plan, transport: Transport) {
    let t = transport.name();
    let manager = Server::start("manager", &transport.bind("agg"));
    let counts: &[usize] = if plan.quick {
        &[1, 2]
    } else {
        &[1, 2, 4, 8, 64]
    };
    let mut single = None;
    for &n in counts {
        let seconds = plan.span.as_secs_f64().max(0.05);
        // Each caller connects, says "ready", and starts when told, so all run together.
        let total = run_together(n, |_| {
            vec![
                "caller".to_string(),
                manager.address.clone(),
                seconds.to_string(),
                "16".to_string(),
            ]
        });
        let base = *single.get_or_insert(total);
        emit(row(
            &format!("aggregate, {n} client processes"),
            t,
            "16 B",
            total,
            "calls/s",
            Some((base, "1 client process")),
        ));
    }
}

pub(crate) fn caller_role(address: &str, seconds: &str, _size: u32) {
    let client = Client::connect(address, AUTHKEY).unwrap();
    let arg = small_arg();
    let _: String = client.call("echo", (&arg,)).unwrap();
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let span = Duration::from_secs_f64(seconds.parse().unwrap());
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < span {
        for _ in 0..16 {
            let _: String = client.call("echo", (&arg,)).unwrap();
        }
        n += 16;
    }
    println!("{}", n as f64 / started.elapsed().as_secs_f64());
}

/// A fresh connection, handshake, one call and close, against raw connect + round trip + close.
pub(crate) fn connect_and_call(plan: Plan, transport: Transport) {
    let t = transport.name();
    let raw = Server::start("raw-server", &transport.bind("rawc"));
    let manager = Server::start("manager", &transport.bind("mgrc"));
    let raw_rate = rate(plan.span, 1, || {
        let mut stream = RawStream::connect(&raw.address);
        stream.ping_pong(16, 1);
    });
    let arg = small_arg();
    let ours = rate(plan.span, 1, || {
        let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
        let _: String = client.call("echo", (&arg,)).unwrap();
    });
    let lazy = rate(plan.span, 1, || {
        let client = Client::builder(manager.address.as_str(), AUTHKEY)
            .prove_with_first_call(true)
            .connect()
            .unwrap();
        let _: String = client.call("echo", (&arg,)).unwrap();
    });
    emit(row(
        "raw connect + round trip + close",
        t,
        "16 B",
        raw_rate,
        "per s",
        None,
    ));
    emit(row(
        "connect + handshake + call + close",
        t,
        "16 B",
        ours,
        "per s",
        Some((raw_rate, "raw connect + round trip + close")),
    ));
    emit(row(
        "connect + handshake + call + close, proof sent with the call",
        t,
        "16 B",
        lazy,
        "per s",
        Some((raw_rate, "raw connect + round trip + close")),
    ));
}
