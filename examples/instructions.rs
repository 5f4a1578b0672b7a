//! A fixed workload for counting instructions per call with callgrind, which, unlike time, is
//! stable from run to run. A manager and a client in one process, over a Unix socket:
//!
//! ```text
//! cargo build --release --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/instructions sequential 20000
//! ```
//!
//! Modes: `sequential` (one `String` echo at a time), `large` and `large-pipelined` (a 4 KiB
//! `ByteBuf` echo, one at a time or 64 in flight), `length` and `borrowed` (a string's
//! length, taking an owned `String` or a borrowed `Str`), `pipelined` (64 in flight), `batched` (batches of 64), `batched-borrowed` (batches of 64
//! of `length_str`: nothing allocated per call on either side), `counter`
//! (shared `Counter.add`), `tasks` (push, take and ack of one task at a time), `redis-tasks`
//! (the same on the Redis at `MONOGUSA_REDIS_URL`, built with `--features redis`, to count
//! redis-server's side under callgrind), `connect` (connect, handshake, one call, close), `connect-lazy`
//! (the same with the proof sent along with the call); `threads`, `counter-threads` and
//! `pipelined-threads` run eight threads at once (pooled calls, one shared counter, one shared
//! pipeline), for counting futex calls with `strace -f -c -e trace=futex`; `msgpack` (one
//! `echo` at a time through the msgpack-rpc listener, from a plain msgpack client). Run each with two
//! counts and divide the difference of the totals by the difference of the counts: that
//! removes the start-up cost.

use monogusa::{Client, Manager};

fn main() -> monogusa::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("sequential");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("monogusa-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let address = format!("unix:{}", dir.join("m.sock").display());
    let msgpack_address = format!("unix:{}", dir.join("rpc.sock").display());
    let manager = Manager::builder()
        .authkey("instructions-key")
        .bind(address.as_str())
        .msgpack_listener(msgpack_address.as_str())
        .register("echo", |s: String| s)
        .register("echo_bytes", |b: serde_bytes::ByteBuf| monogusa::Reply(b))
        .register("length", |s: String| s.len())
        .register("length_str", |s: monogusa::Str| s.len())
        .build()?
        .start()?;
    let client = Client::connect(manager.address(), "instructions-key")?;
    let text = "0123456789abcdef".to_string();
    match mode {
        "msgpack" => msgpack_echo(&dir.join("rpc.sock"), n, &text)?,
        "sequential" => {
            for _ in 0..n {
                let _: String = client.call("echo", (&text,))?;
            }
        }
        "large" => {
            let blob = serde_bytes::ByteBuf::from(vec![0x5a; 4096]);
            for _ in 0..n {
                let _: serde_bytes::ByteBuf = client.call("echo_bytes", (&blob,))?;
            }
        }
        "large-pipelined" => {
            let blob = serde_bytes::ByteBuf::from(vec![0x5a; 4096]);
            let mut pending = std::collections::VecDeque::new();
            for _ in 0..n {
                pending.push_back(client.send::<serde_bytes::ByteBuf>("echo_bytes", (&blob,))?);
                if pending.len() == 64 {
                    pending.pop_front().expect("64 in flight").wait()?;
                }
            }
            for p in pending {
                p.wait()?;
            }
        }
        "length" => {
            for _ in 0..n {
                let _: usize = client.call("length", (&text,))?;
            }
        }
        "borrowed" => {
            for _ in 0..n {
                let _: usize = client.call("length_str", (&text,))?;
            }
        }
        "batched" => batches_of_64::<String>(&client, "echo", &text, n)?,
        "batched-borrowed" => batches_of_64::<usize>(&client, "length_str", &text, n)?,
        "pipelined" => {
            let mut pending = std::collections::VecDeque::new();
            for _ in 0..n {
                pending.push_back(client.send::<String>("echo", (&text,))?);
                if pending.len() == 64 {
                    pending.pop_front().expect("64 in flight").wait()?;
                }
            }
            for p in pending {
                p.wait()?;
            }
        }
        "tasks" => {
            // One task at a time: push, take, ack (the finished record kept, as by default).
            push_take_ack(&client.tasks::<u64>("t")?, n)?;
        }
        "redis-tasks" => {
            // The same push, take and ack on Redis (`MONOGUSA_REDIS_URL`, built with
            // `--features redis`): run redis-server under callgrind to count its side.
            let url = std::env::var("MONOGUSA_REDIS_URL").expect("MONOGUSA_REDIS_URL");
            push_take_ack(&monogusa::connect(&url)?.tasks::<u64>("t")?, n)?;
        }
        "counter" => {
            let counter = client.counter("c")?;
            for _ in 0..n {
                counter.add(1)?;
            }
        }
        "connect" => {
            for _ in 0..n {
                let c = Client::connect(manager.address(), "instructions-key")?;
                let _: String = c.call("echo", (&text,))?;
            }
        }
        "connect-lazy" => {
            for _ in 0..n {
                let c = Client::builder(manager.address(), "instructions-key")
                    .prove_with_first_call(true)
                    .connect()?;
                let _: String = c.call("echo", (&text,))?;
            }
        }
        // Eight threads at once, for lock contention (count futex calls with `strace -f -c`):
        // calls through the shared pool, adds to one shared counter, one shared pipeline.
        "threads" | "counter-threads" | "pipelined-threads" => {
            let counter = client.counter("c")?;
            std::thread::scope(|scope| {
                for _ in 0..8 {
                    scope.spawn(|| -> monogusa::Result<()> {
                        for _ in 0..n / 8 {
                            match mode {
                                "threads" => {
                                    let _: String = client.call("echo", (&text,))?;
                                }
                                "counter-threads" => {
                                    counter.add(1)?;
                                }
                                _ => {
                                    client.send::<String>("echo", (&text,))?.wait()?;
                                }
                            }
                        }
                        Ok(())
                    });
                }
            });
        }
        other => panic!("unknown mode {other}"),
    }
    drop(client);
    manager.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `n` calls of `function`, sent in batches of 64 and each batch waited for.
fn batches_of_64<R: serde::de::DeserializeOwned>(
    client: &Client,
    function: &str,
    text: &str,
    n: usize,
) -> monogusa::Result<()> {
    let mut pending = Vec::with_capacity(64);
    for chunk in 0..n.div_ceil(64) {
        let mut batch = client.batch()?;
        for _ in 0..64.min(n - chunk * 64) {
            pending.push(batch.call::<R>(function, (text,))?);
        }
        batch.send()?;
        for p in pending.drain(..) {
            p.wait()?;
        }
    }
    Ok(())
}

/// `msgpack`: one `echo` at a time through the msgpack-rpc listener, from a plain msgpack
/// client on its Unix socket (rmp-serde), after the challenge and proof.
fn msgpack_echo(path: &std::path::Path, n: usize, text: &str) -> monogusa::Result<()> {
    use hmac::{Hmac, KeyInit, Mac};
    use serde_bytes::ByteBuf;
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    let bad = |e: String| monogusa::Error::Io(std::io::Error::other(e));
    rmp_serde::encode::write(&mut stream, &(0u8, 0u64, "monogusa.challenge", ()))
        .map_err(|e| bad(e.to_string()))?;
    let (_, _, _, nonce): (u8, u64, Option<String>, ByteBuf) =
        rmp_serde::from_read(&mut stream).map_err(|e| bad(e.to_string()))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"instructions-key").expect("any key");
    mac.update(b"monogusa msgpack proof");
    mac.update(&nonce);
    let proof = ByteBuf::from(mac.finalize().into_bytes().to_vec());
    rmp_serde::encode::write(&mut stream, &(0u8, 1u64, "monogusa.prove", (proof,)))
        .map_err(|e| bad(e.to_string()))?;
    let _: (u8, u64, Option<String>, bool) =
        rmp_serde::from_read(&mut stream).map_err(|e| bad(e.to_string()))?;
    for i in 0..n as u64 {
        rmp_serde::encode::write(&mut stream, &(0u8, i + 2, "echo", (text,)))
            .map_err(|e| bad(e.to_string()))?;
        let _: (u8, u64, Option<String>, String) =
            rmp_serde::from_read(&mut stream).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// `n` tasks, one at a time: push, take, ack.
fn push_take_ack(jobs: &monogusa::TaskQueue<u64>, n: usize) -> monogusa::Result<()> {
    for i in 0..n as u64 {
        jobs.push(&i)?;
        let task = jobs
            .take(std::time::Duration::from_secs(5))?
            .expect("just pushed");
        task.ack()?;
    }
    Ok(())
}
