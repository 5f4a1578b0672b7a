//! The benchmark harness: every figure next to a raw-socket baseline measured in the same run.
//!
//! ```text
//! cargo run --release --features redis --example bench  # the full table (a few minutes)
//! cargo run --release --example bench -- --quick    # seconds; what CI runs
//! cargo run --release --example bench -- --json     # machine-readable rows
//! cargo run --release --example bench -- --no-python
//! cargo run --release --example bench -- --only calls  # the sections whose name holds "calls"
//! ```
//!
//! The whole suite runs twice: pinned to one CPU (`taskset -c 0`, all processes: these VMs
//! alternate between fast and slow phases, and pinning makes runs comparable) and unpinned.
//! Servers and clients are separate processes (this program re-run in a role). Payloads: a
//! 16-byte `String` and a 4 KiB `serde_bytes::ByteBuf`, echoed back; the raw baselines echo
//! length-prefixed messages of the same size with the same batching as the manager.
//! When `python3` exists, the same sequential call and the counter workload also run against
//! Python's `multiprocessing.managers` for a side-by-side speed-up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use monogusa::{Client, Manager, Pending};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// One measured figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    measurement: String,
    transport: String,
    size: String,
    value: f64,
    unit: String,
    /// The figure divided by its baseline (what `baseline` says), if it has one.
    ratio: Option<f64>,
    baseline: String,
}

#[derive(Clone, Copy)]
struct Plan {
    quick: bool,
    /// How long each throughput figure is measured.
    span: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        Plan {
            quick,
            span: if quick {
                Duration::from_millis(60)
            } else {
                Duration::from_millis(700)
            },
        }
    }
}

const AUTHKEY: &str = "bench";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--role") {
        let role = args[at + 1].as_str();
        let rest = &args[at + 2..];
        run_role(role, rest);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let json = args.iter().any(|a| a == "--json");
    let python = !args.iter().any(|a| a == "--no-python");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map_or(String::new(), |at| args[at + 1].clone());

    let pinned = if has_taskset() {
        Some(run_suite(true, quick, &only))
    } else {
        eprintln!("bench: taskset not found; pinned figures skipped");
        None
    };
    let unpinned = run_suite(false, quick, &only);
    let python_rows = if python && has_python() {
        python_comparison(quick, pinned.as_ref().unwrap_or(&unpinned))
    } else {
        Vec::new()
    };

    if json {
        let out = serde_json::json!({
            "date": today(),
            "machine": machine(),
            "quick": quick,
            "pinned": pinned,
            "unpinned": unpinned,
            "python": python_rows,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        print_table(pinned.as_deref(), &unpinned, &python_rows, quick);
    }
}

// ---- Orchestration -------------------------------------------------------------------------

/// Runs every measurement in a child process (pinned to CPU 0, or not) and collects its rows.
fn run_suite(pinned: bool, quick: bool, only: &str) -> Vec<Row> {
    let exe = std::env::current_exe().unwrap();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    command.args([
        "--role",
        "suite",
        if quick { "quick" } else { "full" },
        only,
    ]);
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("running the suite");
    assert!(output.status.success(), "the benchmark suite failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn run_role(role: &str, args: &[String]) {
    match role {
        "suite" => suite(
            Plan::new(args[0] == "quick"),
            args.get(1).map_or("", String::as_str),
        ),
        "raw-server" => raw_server(&args[0]),
        "manager" => manager_role(&args[0]),
        "caller" => caller_role(&args[0], &args[1], args[2].parse().unwrap()),
        "counter-client" => counter_client(&args[0]),
        // Only the task-queue figures, as rows (for a quick look while working on them).
        "tasks" => {
            task_queues(Plan::new(false));
            supervised_workers(Plan::new(false));
        }
        "workers" => supervised_workers(Plan::new(false)),
        "redis" => redis_backend(Plan::new(false)),
        "store-worker" => store_worker_role(&args[0], &args[1], &args[2]),
        "bare-drainer" => bare_drainer_role(&args[0]),
        "supervised-drainer" => supervised_drainer_role(),
        "msgpack" => msgpack_calls(Plan::new(false)),
        "python-manager" => python_manager_role(&args[0]),
        "msgpack-manager" => msgpack_manager_role(&args[0]),
        "task-manager" => task_manager_role(&args[0], &args[1]),
        "task-worker" => task_worker_role(&args[0], &args[1], &args[2]),
        other => panic!("unknown role {other}"),
    }
}

fn has_taskset() -> bool {
    Command::new("taskset")
        .args(["-c", "0", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn has_python() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A child process in a role; it prints its address first and lives until its stdin closes.
struct Server {
    child: Child,
    address: String,
    pid: u32,
}

impl Server {
    fn start(role: &str, bind: &str) -> Server {
        Server::start_with(role, bind, &[])
    }

    /// Like `start`, with more arguments after the address.
    fn start_with(role: &str, bind: &str, more: &[&str]) -> Server {
        Server::spawn(
            Command::new(std::env::current_exe().unwrap()),
            role,
            bind,
            more,
        )
    }

    /// Like `start`, pinned to CPU 0 when `taskset` exists (beside pinned Python processes).
    fn start_pinned(role: &str, bind: &str) -> Server {
        if !has_taskset() {
            return Server::start(role, bind);
        }
        let mut command = Command::new("taskset");
        command
            .args(["-c", "0"])
            .arg(std::env::current_exe().unwrap());
        Server::spawn(command, role, bind, &[])
    }

    fn spawn(mut command: Command, role: &str, bind: &str, more: &[&str]) -> Server {
        let mut child = command
            .args(["--role", role, bind])
            .args(more)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut address = String::new();
        stdout.read_line(&mut address).unwrap();
        let pid = child.id();
        Server {
            child,
            address: address.trim().to_string(),
            pid,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Blocks until stdin closes: how a server child learns the measurement is over.
fn wait_for_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

// ---- The suite -----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Tcp,
    Unix,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }

    fn bind(self, tag: &str) -> String {
        match self {
            Transport::Tcp => "127.0.0.1:0".into(),
            Transport::Unix => {
                let path = std::env::temp_dir()
                    .join(format!("monogusa-bench-{}-{tag}.sock", std::process::id()));
                let _ = std::fs::remove_file(&path);
                format!("unix:{}", path.display())
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Size {
    Small,
    Large,
}

impl Size {
    fn bytes(self) -> usize {
        match self {
            Size::Small => 16,
            Size::Large => 4096,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Size::Small => "16 B",
            Size::Large => "4 KiB",
        }
    }
}

fn emit(row: Row) {
    println!("{}", serde_json::to_string(&row).unwrap());
}

fn row(
    measurement: &str,
    transport: &str,
    size: &str,
    value: f64,
    unit: &str,
    base: Option<(f64, &str)>,
) -> Row {
    Row {
        measurement: measurement.into(),
        transport: transport.into(),
        size: size.into(),
        value,
        unit: unit.into(),
        ratio: base.map(|(b, _)| value / b),
        baseline: base.map(|(_, what)| what.to_string()).unwrap_or_default(),
    }
}

/// Runs `step` (which does `per_step` operations) for the plan's span; operations per second.
fn rate(span: Duration, per_step: usize, mut step: impl FnMut()) -> f64 {
    // Warm up briefly so connections, buffers and caches are in their steady state.
    let warm = Instant::now();
    while warm.elapsed() < span / 10 {
        step();
    }
    let started = Instant::now();
    let mut steps = 0usize;
    while started.elapsed() < span {
        for _ in 0..8 {
            step();
        }
        steps += 8;
    }
    (steps * per_step) as f64 / started.elapsed().as_secs_f64()
}

/// One section of the suite: its measurements, emitted as rows.
type Section = fn(Plan);

/// Runs every section, or only those whose name contains `only` (`--only calls`).
fn suite(plan: Plan, only: &str) {
    let wanted = |section: &str| section.contains(only);
    for transport in [Transport::Tcp, Transport::Unix] {
        if wanted("calls") {
            calls(plan, transport, Size::Small, "echo", small_arg());
            calls(plan, transport, Size::Large, "echo_bytes", large_arg());
        }
        if wanted("allocation-free-calls") {
            allocation_free_calls(plan, transport);
        }
        if wanted("aggregate") {
            aggregate(plan, transport);
        }
        if wanted("connect") {
            connect_and_call(plan, transport);
        }
    }
    let sections: [(&str, Section); 7] = [
        ("counter", counter_workload),
        ("store", store_operations),
        ("tasks", task_queues),
        ("workers", supervised_workers),
        ("redis", redis_backend),
        ("msgpack", msgpack_calls),
        ("memory", idle_memory),
    ];
    for (name, section) in sections {
        if wanted(name) {
            section(plan);
        }
    }
}

/// A msgpack-rpc client of our own for the harness (rmp-serde over a socket), authenticated.
struct MsgpackClient {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    next: u32,
}

type MsgpackReply = (u8, u32, Option<(String, String)>, serde::de::IgnoredAny);

impl MsgpackClient {
    fn connect(address: &str) -> MsgpackClient {
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

    fn send<P: Serialize>(&mut self, method: &str, params: &P) {
        self.next += 1;
        let bytes = rmp_serde::to_vec(&(0u8, self.next, method, params)).unwrap();
        self.writer.write_all(&bytes).unwrap();
    }

    fn receive(&mut self) {
        let (kind, _, error, _): MsgpackReply = rmp_serde::from_read(&mut self.reader).unwrap();
        assert!(kind == 1 && error.is_none(), "{error:?}");
    }
}

/// Sequential calls and 64 in flight through the msgpack-rpc listener, next to the native
/// listener of the same manager.
fn msgpack_calls(plan: Plan) {
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

/// The built-in shared objects: one atomic counter add, one queue put and get.
fn store_operations(plan: Plan) {
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

fn small_arg() -> String {
    "0123456789abcdef".to_string()
}

fn large_arg() -> ByteBuf {
    ByteBuf::from(vec![0x5a; 4096])
}

/// Sequential and pipelined calls against their raw baselines.
fn calls<T: Serialize + serde::de::DeserializeOwned>(
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
fn pipelined_rate<R: serde::de::DeserializeOwned>(
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
fn batched_rate<R: serde::de::DeserializeOwned>(
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
fn allocation_free_calls(plan: Plan, transport: Transport) {
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
fn aggregate(plan: Plan, transport: Transport) {
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

fn caller_role(address: &str, seconds: &str, _size: u32) {
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
fn connect_and_call(plan: Plan, transport: Transport) {
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

/// The counter example's workload: 5 processes x 1000 x (get + inc).
fn counter_workload(plan: Plan) {
    for transport in [Transport::Tcp, Transport::Unix] {
        let manager = Server::start("manager", &transport.bind("ctr"));
        let started = Instant::now();
        let children: Vec<Child> = (0..5)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args(["--role", "counter-client", &manager.address])
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
        let count: i64 = client.call("get", ("hikakin",)).unwrap();
        assert_eq!(count, 5000, "the counter example must count exactly");
        emit(row(
            "counter example (5 processes x 1000 x get+inc)",
            transport.name(),
            "-",
            elapsed,
            "s",
            None,
        ));
        let _ = plan;
    }
}

fn counter_client(address: &str) {
    let client = Client::connect(address, AUTHKEY).unwrap();
    for _ in 0..1000 {
        let _: i64 = client.call("get", ("hikakin",)).unwrap();
        let _: i64 = client.call("inc", ("hikakin",)).unwrap();
    }
}

/// Resident memory the manager gains per idle, authenticated connection.
fn idle_memory(plan: Plan) {
    let n = if plan.quick { 50 } else { 1000 };
    let manager = Server::start("manager", &Transport::Tcp.bind("mem"));
    let warm = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
    let _: String = warm.call("echo", (small_arg(),)).unwrap();
    let before = rss_kib(manager.pid);
    let clients: Vec<Client> = (0..n)
        .map(|_| Client::connect(manager.address.as_str(), AUTHKEY).unwrap())
        .collect();
    // One call each, so every connection thread has read a request and answered it.
    for c in &clients {
        let _: String = c.call("echo", (small_arg(),)).unwrap();
    }
    let after = rss_kib(manager.pid);
    emit(row(
        &format!("memory per idle connection ({n} connections)"),
        "tcp",
        "-",
        (after - before) as f64 / n as f64,
        "KiB",
        None,
    ));
}

fn rss_kib(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Task queues: push + take + ack with 4 worker processes, in memory and with a data
/// directory (group commit), one at a time and in batches of 100; and one durable push's
/// latency next to this machine's own write + fsync.
fn task_queues(plan: Plan) {
    let seconds = plan.span.as_secs_f64().max(0.05) * 2.0;
    let mut in_memory = std::collections::HashMap::new();
    for durable in [false, true] {
        let dir = durable.then(|| tempfile_dir("tasks"));
        let dir_arg = dir
            .as_ref()
            .map_or("-".to_string(), |d| d.display().to_string());
        for mode in ["single", "threads", "batched"] {
            let manager =
                Server::start_with("task-manager", &Transport::Tcp.bind("tq"), &[&dir_arg]);
            let total = run_together(4, |_| {
                vec![
                    "task-worker".to_string(),
                    manager.address.clone(),
                    mode.to_string(),
                    seconds.to_string(),
                ]
            });
            let what = match mode {
                "single" => "tasks, push + take + ack, 4 worker processes",
                "threads" => "tasks, push + take + ack, 4 worker processes x 8 threads",
                _ => "tasks, push_many + take_many + ack_many (100), 4 worker processes",
            };
            let store = if durable { "data dir" } else { "memory" };
            let base = if durable {
                in_memory.get(mode).map(|&b| (b, "the same in memory"))
            } else {
                in_memory.insert(mode, total);
                None
            };
            emit(row(
                &format!("{what}, {store}"),
                "tcp",
                "8 B",
                total,
                "tasks/s",
                base,
            ));
            drop(manager);
        }
        if let Some(dir) = &dir {
            let fsync = fsync_latency(dir, plan);
            let manager =
                Server::start_with("task-manager", &Transport::Tcp.bind("tq"), &[&dir_arg]);
            let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
            let queue = client.tasks::<u64>("latency").unwrap();
            let pushes = rate(plan.span, 1, || {
                queue.push(&1).unwrap();
            });
            let latency = 1e6 / pushes;
            emit(row(
                "write 4 KiB + fsync, same disk",
                "-",
                "4 KiB",
                fsync,
                "µs",
                None,
            ));
            emit(row(
                "one durable push, latency",
                "tcp",
                "8 B",
                latency,
                "µs",
                Some((fsync, "write 4 KiB + fsync")),
            ));
            drop(manager);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Tasks through supervised workers (`Supervisor` + `Worker::run`, 1, 2 and 4 processes of
/// one thread) against bare take + ack loops in as many processes, in the same run: the
/// framework's overhead (heartbeats, stop checks, lease keeping, panics caught). Workers are
/// started and idle first; the clock runs from the first push of `tasks` to the last ack.
fn supervised_workers(plan: Plan) {
    let tasks: u64 = if plan.quick { 5_000 } else { 100_000 };
    for processes in [1usize, 2, 4] {
        let manager = Server::start_with("task-manager", &Transport::Tcp.bind("sw"), &["-"]);
        let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
        // A warm-up round first (connection threads, allocations), then the measured one.
        let drain = |queue: &monogusa::TaskQueue<u64>| {
            let mut rate = 0.0;
            for (round, count) in [(1, tasks / 10), (2, tasks)] {
                let batch: Vec<u64> = (0..count.min(1000)).collect();
                let count = batch.len() as u64 * (count / batch.len() as u64);
                let before = queue.stats().unwrap().done;
                let started = Instant::now();
                for _ in 0..count / batch.len() as u64 {
                    queue.push_many(&batch).unwrap();
                }
                while queue.stats().unwrap().done < before + count {
                    std::thread::sleep(Duration::from_millis(2));
                }
                if round == 2 {
                    rate = count as f64 / started.elapsed().as_secs_f64();
                }
            }
            rate
        };

        let bare_queue = client.tasks::<u64>("bare").unwrap();
        let bare: Vec<Child> = (0..processes)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args(["--role", "bare-drainer", &manager.address])
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        while client.manager_stats().unwrap().connections_open < processes as u64 + 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let bare_rate = drain(&bare_queue);
        for mut child in bare {
            let _ = child.kill();
            let _ = child.wait();
        }

        let supervised_queue = client.tasks::<u64>("supervised").unwrap();
        let mut supervisor =
            monogusa::workers::Supervisor::connect(manager.address.as_str(), AUTHKEY).unwrap();
        let mut settings = monogusa::workers::SupervisorSettings::default();
        settings.print_output = false;
        settings.handle_signals = false;
        supervisor.settings(settings).spawn(
            "drainer",
            processes,
            monogusa::workers::Program::current_exe()
                .unwrap()
                .args(["--role", "supervised-drainer"]),
        );
        let stop = supervisor.stop_handle();
        let supervising = std::thread::spawn(move || supervisor.run().unwrap());
        let running = || {
            client
                .workers()
                .unwrap()
                .iter()
                .filter(|w| w.heartbeat_age.is_some())
                .count()
        };
        while running() < processes {
            std::thread::sleep(Duration::from_millis(5));
        }
        let supervised_rate = drain(&supervised_queue);
        stop.stop();
        supervising.join().unwrap();
        emit(row(
            &format!("tasks through supervised workers, {processes} processes"),
            "tcp",
            "8 B",
            supervised_rate,
            "tasks/s",
            Some((bare_rate, "bare take + ack loops, as many processes")),
        ));
        drop(manager);
    }
}

/// The same work on a manager and on Redis through `monogusa::connect`, 4 processes each:
/// `Counter.add(1)`, and push + take + ack; next to `redis-benchmark`'s own INCR and PING at
/// the same concurrency (4 clients, no pipelining): the engine's limit on this machine.
fn redis_backend(plan: Plan) {
    if !cfg!(feature = "redis") {
        eprintln!("bench: built without the redis feature; no Redis rows (add --features redis)");
        return;
    }
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("bench: redis-server is not installed; no Redis rows");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile_dir("redis");
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    while monogusa::connect(&redis_url).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let requests = if plan.quick { 50_000 } else { 200_000 };
    let benchmark = |test: &str, clients: &str, pipeline: &str| -> f64 {
        let out = Command::new("redis-benchmark")
            .args([
                "-p",
                &port.to_string(),
                "-c",
                clients,
                "-P",
                pipeline,
                "-n",
                &requests.to_string(),
            ])
            .args(["-t", test, "--csv"])
            .output()
            .unwrap();
        // "test","rps",...: the second field of the last line.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.split(',').nth(1))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or(f64::NAN)
    };
    let incr = benchmark("incr", "4", "1");
    let ping = benchmark("ping_mbulk", "4", "1");
    let incr_pipelined = benchmark("incr", "1", "64");
    emit(row(
        "redis-benchmark INCR, 4 clients",
        "tcp",
        "-",
        incr,
        "ops/s",
        None,
    ));
    emit(row(
        "redis-benchmark PING, 4 clients",
        "tcp",
        "-",
        ping,
        "ops/s",
        None,
    ));

    emit(row(
        "redis-benchmark INCR, 1 client, pipeline 64",
        "tcp",
        "-",
        incr_pipelined,
        "ops/s",
        None,
    ));

    let manager = Server::start_with("task-manager", &Transport::Tcp.bind("rb"), &["-"]);
    let manager_url = format!("monogusa://{}", manager.address);
    {
        // The same pipelined INCRs on a shared Counter: 64 sent, then their replies.
        let client = Client::connect(manager.address.as_str(), AUTHKEY).unwrap();
        let counter = client.counter("bench-pipelined").unwrap();
        let mut pending = Vec::with_capacity(64);
        let ours = rate(plan.span, 64, || {
            for _ in 0..64 {
                pending.push(counter.send().add(1).unwrap());
            }
            for p in pending.drain(..) {
                p.wait().unwrap();
            }
        });
        emit(row(
            "Counter.add(1), 1 client, 64 in flight, manager",
            "tcp",
            "8 B",
            ours,
            "calls/s",
            Some((
                incr_pipelined,
                "redis-benchmark INCR, 1 client, pipeline 64",
            )),
        ));
    }
    let seconds = (plan.span.as_secs_f64().max(0.05) * 2.0).to_string();
    let mut on_manager = std::collections::HashMap::new();
    for (backend, url) in [("manager", &manager_url), ("redis", &redis_url)] {
        for work in ["counter", "tasks"] {
            let total = run_together(4, |_| {
                vec![
                    "store-worker".to_string(),
                    url.clone(),
                    work.to_string(),
                    seconds.clone(),
                ]
            });
            let (what, unit) = match work {
                "counter" => ("Counter.add(1), 4 processes", "calls/s"),
                _ => ("tasks, push + take + ack, 4 worker processes", "tasks/s"),
            };
            let base = match (backend, work) {
                ("manager", _) => {
                    on_manager.insert(work, total);
                    None
                }
                ("redis", "counter") => Some((incr, "redis-benchmark INCR, 4 clients")),
                _ => on_manager
                    .get(work)
                    .map(|&m| (m, "the same on the manager")),
            };
            emit(row(
                &format!("{what}, {backend}"),
                "tcp",
                "8 B",
                total,
                unit,
                base,
            ));
        }
    }
    drop(manager);
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// One process of the backend figures: `counter` adds 1, `tasks` pushes, takes and acks, for
/// `seconds`, through `monogusa::connect(url)`; prints operations per second.
fn store_worker_role(url: &str, work: &str, seconds: &str) {
    let store = monogusa::connect(url).unwrap();
    let counter = store.counter("bench-counter").unwrap();
    let queue = store.tasks::<u64>("bench-tasks").unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let span = Duration::from_secs_f64(seconds.parse().unwrap());
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < span {
        if work == "counter" {
            counter.add(1).unwrap();
            done += 1;
        } else {
            queue.push(&1).unwrap();
            if let Some(task) = queue.take(Duration::ZERO).unwrap() {
                task.ack().unwrap();
                done += 1;
            }
        }
    }
    println!("{}", done as f64 / started.elapsed().as_secs_f64());
}

/// Takes and acks tasks of the queue "bare" until killed.
fn bare_drainer_role(address: &str) {
    let client = Client::connect(address, AUTHKEY).unwrap();
    let queue = client.tasks::<u64>("bare").unwrap();
    loop {
        if let Some(task) = queue.take(Duration::from_millis(200)).unwrap() {
            task.ack().unwrap();
        }
    }
}

/// A supervised worker doing nothing per task, on one thread, until stopped.
fn supervised_drainer_role() {
    let worker = monogusa::workers::Worker::from_env().unwrap();
    let queue = worker.client().tasks::<u64>("supervised").unwrap();
    worker
        .run(&queue, 1, |_| Ok::<(), std::convert::Infallible>(()))
        .unwrap();
}

/// A fresh directory under the system's temporary one.
fn tempfile_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("monogusa-bench-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Mean microseconds to write 4 KiB at the end of a file and fsync it, in `dir`.
fn fsync_latency(dir: &std::path::Path, plan: Plan) -> f64 {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = [7u8; 4096];
    let per_second = rate(plan.span, 1, || {
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
    });
    drop(file);
    let _ = std::fs::remove_file(path);
    1e6 / per_second
}

/// Starts `n` processes of this program in the roles `args(i)` gives, lets them say
/// "ready", starts them together and sums the numbers they print.
fn run_together(n: usize, args: impl Fn(usize) -> Vec<String>) -> f64 {
    let mut children: Vec<(Child, BufReader<ChildStdout>)> = (0..n)
        .map(|i| {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .arg("--role")
                .args(args(i))
                // For roles that connect through `monogusa::connect` (never in argv).
                .env("MONOGUSA_AUTHKEY", AUTHKEY)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = BufReader::new(child.stdout.take().unwrap());
            (child, out)
        })
        .collect();
    for (_, out) in &mut children {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
    }
    for (child, _) in &mut children {
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    let mut total = 0.0;
    for (mut child, mut out) in children {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        total += line.trim().parse::<f64>().unwrap();
        child.wait().unwrap();
    }
    total
}

/// One worker of the task-queue figures: pushes, takes and acks for `seconds`; prints tasks
/// acked per second.
fn task_worker_role(address: &str, mode: &str, seconds: &str) {
    let client = Client::connect(address, AUTHKEY).unwrap();
    let queue = client.tasks::<u64>("bench").unwrap();
    let threads = if mode == "threads" { 8 } else { 1 };
    // Each thread's first call opens its connection before the clock starts.
    for _ in 0..threads {
        let _ = queue.stats().unwrap();
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let span = Duration::from_secs_f64(seconds.parse().unwrap());
    let started = Instant::now();
    let work = |queue: monogusa::TaskQueue<u64>| {
        let batch: Vec<u64> = (0..100).collect();
        let mut acked = 0usize;
        while started.elapsed() < span {
            if mode == "batched" {
                queue.push_many(&batch).unwrap();
                let tasks = queue.take_many(100, Duration::ZERO).unwrap();
                acked += tasks.len();
                queue.ack_many(tasks).unwrap();
            } else {
                queue.push(&1).unwrap();
                if let Some(task) = queue.take(Duration::ZERO).unwrap() {
                    task.ack().unwrap();
                    acked += 1;
                }
            }
        }
        acked
    };
    let acked: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let queue = queue.clone();
                scope.spawn(move || work(queue))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!("{}", acked as f64 / started.elapsed().as_secs_f64());
}

// ---- Roles: servers ------------------------------------------------------------------------

/// A manager with a Python listener and the counter's functions, for Python's own clients;
/// prints the Python listener's address.
fn python_manager_role(bind: &str) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    let counts = std::sync::Arc::new(Mutex::new(HashMap::<String, i64>::new()));
    let (c1, c2) = (counts.clone(), counts.clone());
    let manager = Manager::builder()
        .authkey("password")
        .python_listener(bind)
        .register("get", move |key: String| {
            c1.lock().unwrap().get(&key).copied().unwrap_or(0)
        })
        .register("inc", move |key: String| {
            let mut map = c2.lock().unwrap();
            let n = map.entry(key).or_insert(0);
            *n += 1;
            *n
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    println!("{}", manager.python_addresses()[0]);
    std::io::stdout().flush().unwrap();
    wait_for_stdin_eof();
    manager.shutdown();
}

/// A manager with an echo function on a native and a msgpack-rpc listener; prints both
/// addresses on one line.
fn msgpack_manager_role(bind: &str) {
    let manager = Manager::builder()
        .authkey(AUTHKEY)
        .bind(bind)
        .msgpack_listener(bind)
        .register("echo", |text: String| text)
        .build()
        .unwrap()
        .start()
        .unwrap();
    println!("{} {}", manager.address(), manager.msgpack_addresses()[0]);
    std::io::stdout().flush().unwrap();
    wait_for_stdin_eof();
    manager.shutdown();
}

/// A manager for the task-queue figures, keeping its objects in `data_dir` unless it is "-".
fn task_manager_role(bind: &str, data_dir: &str) {
    let mut builder = Manager::builder().authkey(AUTHKEY).bind(bind);
    if data_dir != "-" {
        builder = builder.data_dir(data_dir);
    }
    let manager = builder.build().unwrap().start().unwrap();
    println!("{}", manager.address());
    std::io::stdout().flush().unwrap();
    wait_for_stdin_eof();
    manager.shutdown();
}

/// Counts per key, for the counter workload.
fn manager_role(bind: &str) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    let counts = std::sync::Arc::new(Mutex::new(HashMap::<String, i64>::new()));
    let (c1, c2) = (counts.clone(), counts.clone());
    let manager = Manager::builder()
        .authkey(AUTHKEY)
        .bind(bind)
        .max_connections(8192)
        .register("echo", |text: String| text)
        .register("echo_bytes", |bytes: ByteBuf| monogusa::Reply(bytes))
        .register("length", |text: monogusa::Str| text.len())
        .register("get", move |key: String| {
            c1.lock().unwrap().get(&key).copied().unwrap_or(0)
        })
        .register("inc", move |key: String| {
            let mut map = c2.lock().unwrap();
            let n = map.entry(key).or_insert(0);
            *n += 1;
            *n
        })
        .build()
        .unwrap()
        .start()
        .unwrap();
    println!("{}", manager.address());
    std::io::stdout().flush().unwrap();
    wait_for_stdin_eof();
    manager.shutdown();
}

/// A raw echo server of length-prefixed messages, batching replies like the manager does.
fn raw_server(bind: &str) {
    if let Some(path) = bind.strip_prefix("unix:") {
        let listener = UnixListener::bind(path).unwrap();
        println!("{bind}");
        std::io::stdout().flush().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let stream = stream.unwrap();
                std::thread::spawn(move || echo_loop(stream));
            }
        });
        wait_for_stdin_eof();
        let _ = std::fs::remove_file(path);
    } else {
        let listener = TcpListener::bind(bind).unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let stream = stream.unwrap();
                stream.set_nodelay(true).unwrap();
                std::thread::spawn(move || echo_loop(stream));
            }
        });
        wait_for_stdin_eof();
    }
}

fn echo_loop<S: Read + Write>(mut stream: S) {
    // The same starting buffer as a manager connection, grown only for a big burst.
    let mut buf = vec![0u8; 4096];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Vec::with_capacity(1 << 16);
    loop {
        // Echo every complete message buffered, then write once.
        while end - start >= 4 {
            let len = u32::from_be_bytes(buf[start..start + 4].try_into().unwrap()) as usize;
            if end - start < 4 + len {
                break;
            }
            out.extend_from_slice(&buf[start..start + 4 + len]);
            start += 4 + len;
        }
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        if start == end {
            start = 0;
            end = 0;
        } else if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match stream.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
        // Like a manager connection: a read that fills the buffer doubles it (to 256 KiB).
        if end == buf.len() && buf.len() < 256 << 10 {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// The raw client side: length-prefixed messages, `depth` written at once.
enum RawStream {
    Tcp(TcpStream, Vec<u8>, Vec<u8>),
    Unix(UnixStream, Vec<u8>, Vec<u8>),
}

impl RawStream {
    fn connect(address: &str) -> RawStream {
        match address.strip_prefix("unix:") {
            Some(path) => {
                RawStream::Unix(UnixStream::connect(path).unwrap(), Vec::new(), Vec::new())
            }
            None => {
                let s = TcpStream::connect(address).unwrap();
                s.set_nodelay(true).unwrap();
                RawStream::Tcp(s, Vec::new(), Vec::new())
            }
        }
    }

    /// Writes `depth` messages of `size` bytes in one write and reads all their echoes.
    fn ping_pong(&mut self, size: usize, depth: usize) {
        fn go<S: Read + Write>(
            s: &mut S,
            out: &mut Vec<u8>,
            inb: &mut Vec<u8>,
            size: usize,
            depth: usize,
        ) {
            if out.len() != depth * (4 + size) {
                out.clear();
                for _ in 0..depth {
                    out.extend_from_slice(&(size as u32).to_be_bytes());
                    out.resize(out.len() + size, 0x5a);
                }
                inb.resize(out.len(), 0);
            }
            // Write in slices and read echoes as they pile up, so neither side ever blocks
            // on a full socket buffer (a Unix socket holds about 200 KiB).
            const SLICE: usize = 32 << 10;
            let (mut written, mut read) = (0, 0);
            while written < out.len() {
                let end = (written + SLICE).min(out.len());
                s.write_all(&out[written..end]).unwrap();
                written = end;
                while written - read > 2 * SLICE {
                    read += s.read(&mut inb[read..written]).unwrap();
                }
            }
            s.read_exact(&mut inb[read..]).unwrap();
        }
        match self {
            RawStream::Tcp(s, o, i) => go(s, o, i, size, depth),
            RawStream::Unix(s, o, i) => go(s, o, i, size, depth),
        }
    }
}

// ---- Python's managers, side by side ---------------------------------------------------------

const PYTHON: &str = r#"
import json, sys, time
from multiprocessing.managers import BaseManager

class Counter:
    def __init__(self):
        self.d = {}
    def get(self, k):
        return self.d.get(k, 0)
    def inc(self, k):
        self.d[k] = self.d.get(k, 0) + 1
    def echo(self, x):
        return x

counts = {}
def get(k):
    return counts.get(k, 0)
def inc(k):
    counts[k] = counts.get(k, 0) + 1

shared = Counter()
def the_counter():
    return shared

class M(BaseManager):
    pass
M.register('Counter', callable=the_counter)
M.register('get', callable=get)
M.register('inc', callable=inc)

class Remote(BaseManager):
    pass
Remote.register('get')
Remote.register('inc')

def counter_processes(address, rounds):
    # The five-process counter client: 5 processes, each `rounds` x (inc + get().conjugate()),
    # every call a new connection, as the tutorial writes it. Returns rounds per second.
    from multiprocessing import Process
    def work():
        r = Remote(address=address, authkey=b'password')
        r.connect()
        for _ in range(rounds):
            r.inc('hikakin')
            r.get('hikakin').conjugate()
    procs = [Process(target=work) for _ in range(5)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return 5 * rounds / (time.perf_counter() - t0)

def proxy_calls(address, span):
    # Calls on an existing proxy of an int result: conjugate() over the proxy's connection.
    r = Remote(address=address, authkey=b'password')
    r.connect()
    r.inc('proxy')
    p = r.get('proxy')
    for _ in range(100):
        p.conjugate()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < span:
        for _ in range(16):
            p.conjugate()
        n += 16
    return n / (time.perf_counter() - t0)

def main():
    quick = sys.argv[1] == 'quick'
    span = 0.06 if quick else 0.7
    m = M(address=('127.0.0.1', 0), authkey=b'password')
    m.start()
    c = m.Counter()
    payload = '0123456789abcdef'
    for _ in range(200):
        c.echo(payload)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < span:
        for _ in range(16):
            c.echo(payload)
        n += 16
    seq = n / (time.perf_counter() - t0)
    # The counter workload through one proxy (Python's fastest form): get + inc per round.
    t0 = time.perf_counter()
    rounds = 200 if quick else 1000
    for _ in range(rounds):
        c.get('hikakin')
        c.inc('hikakin')
    fast = 2 * rounds / (time.perf_counter() - t0)
    # The well-known example's form: registered functions, one new connection per call.
    t0 = time.perf_counter()
    rounds = 2 if quick else 12
    for _ in range(rounds):
        m.get('hikakin')
        m.inc('hikakin')
    slow = 2 * rounds / (time.perf_counter() - t0)
    figures = {'seq': seq, 'counter_fast': fast, 'counter_example': slow}
    if len(sys.argv) > 2:
        # Python clients against Python's own server, and against the Rust manager's Python
        # listener (its port in argv[2]), side by side.
        ours = ('127.0.0.1', int(sys.argv[2]))
        figures['py_counter_python'] = counter_processes(m.address, 1 if quick else 3)
        figures['py_counter_ours'] = counter_processes(ours, 20 if quick else 200)
        figures['py_proxy_python'] = proxy_calls(m.address, span)
        figures['py_proxy_ours'] = proxy_calls(ours, span)
    m.shutdown()
    print(json.dumps(figures))

if __name__ == '__main__':
    main()
"#;

fn python_comparison(quick: bool, ours: &[Row]) -> Vec<Row> {
    let script = std::env::temp_dir().join(format!("monogusa-bench-{}.py", std::process::id()));
    std::fs::write(&script, PYTHON).unwrap();
    // Runs the script, pinned to CPU 0 (with our Python listener pinned beside it) or not;
    // its figures as JSON.
    let run = |pinned: bool| -> Option<serde_json::Value> {
        let mut command = if pinned && has_taskset() {
            let mut c = Command::new("taskset");
            c.args(["-c", "0", "python3"]);
            c
        } else {
            Command::new("python3")
        };
        let listener = if pinned {
            Server::start_pinned("python-manager", "127.0.0.1:0")
        } else {
            Server::start("python-manager", "127.0.0.1:0")
        };
        let python_port = listener
            .address
            .rsplit(':')
            .next()
            .unwrap_or("0")
            .to_string();
        let output = command
            .arg(&script)
            .arg(if quick { "quick" } else { "full" })
            .arg(&python_port)
            .output()
            .ok()?;
        drop(listener);
        match serde_json::from_slice::<serde_json::Value>(&output.stdout) {
            Ok(figures) => Some(figures),
            Err(_) => {
                eprintln!(
                    "bench: the Python comparison failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                None
            }
        }
    };
    let figures = run(true);
    let unpinned = run(false);
    let _ = std::fs::remove_file(&script);
    let Some(figures) = figures else {
        return Vec::new();
    };
    let find = |name: &str| {
        ours.iter()
            .find(|r| r.measurement == name && r.transport == "tcp" && r.size == "16 B")
            .map(|r| r.value)
            .unwrap_or(f64::NAN)
    };
    let our_seq = find("sequential calls");
    let py = |key: &str| figures[key].as_f64().unwrap_or(f64::NAN);
    let speedup = |value: f64, label: &str| Row {
        measurement: label.into(),
        transport: "tcp".into(),
        size: "16 B".into(),
        value,
        unit: "calls/s".into(),
        ratio: Some(our_seq / value),
        baseline: "monogusa sequential calls / this (speed-up)".into(),
    };
    let versus = |ours: f64, python: f64, label: &str, unit: &str| Row {
        measurement: label.into(),
        transport: "tcp".into(),
        size: "-".into(),
        value: ours,
        unit: unit.into(),
        ratio: (!python.is_nan()).then(|| ours / python),
        baseline: if python.is_nan() {
            String::new()
        } else {
            "the same Python clients against Python's own manager (speed-up)".into()
        },
    };
    let mut rows = vec![
        speedup(py("seq"), "python managers: sequential calls (one proxy)"),
        speedup(
            py("counter_fast"),
            "python managers: counter get+inc (one proxy)",
        ),
        speedup(
            py("counter_example"),
            "python managers: counter get+inc (the example's form)",
        ),
    ];
    for (run, label) in [(Some(&figures), "pinned"), (unpinned.as_ref(), "unpinned")] {
        let Some(run) = run else { continue };
        let f = |key: &str| run[key].as_f64().unwrap_or(f64::NAN);
        if run.get("py_counter_ours").is_none() {
            continue;
        }
        rows.push(versus(
            f("py_counter_python"),
            f64::NAN,
            &format!("python clients -> python's manager: 5-process counter (inc + get().conjugate()), {label}"),
            "rounds/s",
        ));
        rows.push(versus(
            f("py_counter_ours"),
            f("py_counter_python"),
            &format!("python clients -> monogusa's python listener: the same, {label}"),
            "rounds/s",
        ));
        rows.push(versus(
            f("py_proxy_ours"),
            f("py_proxy_python"),
            &format!(
                "python clients -> monogusa's python listener: a call on an existing proxy, {label}"
            ),
            "calls/s",
        ));
    }
    rows
}

// ---- Output --------------------------------------------------------------------------------

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores")
}

fn human(value: f64, unit: &str) -> String {
    match unit {
        "s" => format!("{value:.3} s"),
        "KiB" => format!("{value:.1} KiB"),
        _ if value >= 1e6 => format!("{:.2}M {unit}", value / 1e6),
        _ if value >= 1e3 => format!("{:.1}k {unit}", value / 1e3),
        _ => format!("{value:.1} {unit}"),
    }
}

fn print_table(pinned: Option<&[Row]>, unpinned: &[Row], python: &[Row], quick: bool) {
    println!(
        "monogusa benchmark, {}, {}{}",
        today(),
        machine(),
        if quick {
            " (quick mode: short spans, figures are rough)"
        } else {
            ""
        }
    );
    println!();
    println!("| measurement | transport | size | pinned | ratio | unpinned | ratio | ratio to |");
    println!("|---|---|---|---|---|---|---|---|");
    for u in unpinned {
        let p = pinned.and_then(|rows| {
            rows.iter().find(|r| {
                r.measurement == u.measurement && r.transport == u.transport && r.size == u.size
            })
        });
        let ratio = |r: Option<f64>| r.map(|r| format!("{r:.2}")).unwrap_or_default();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            u.measurement,
            u.transport,
            u.size,
            p.map(|p| human(p.value, &p.unit))
                .unwrap_or_else(|| "-".into()),
            ratio(p.and_then(|p| p.ratio)),
            human(u.value, &u.unit),
            ratio(u.ratio),
            u.baseline,
        );
    }
    for r in python {
        println!(
            "| {} | {} | {} | {} | {} | | | {} |",
            r.measurement,
            r.transport,
            r.size,
            human(r.value, &r.unit),
            r.ratio.map(|x| format!("{x:.1}x")).unwrap_or_default(),
            r.baseline,
        );
    }
}
