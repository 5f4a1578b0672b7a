//! Helpers shared by the integration tests: a standard manager, an independent implementation
//! of the wire protocol for sending hostile bytes, child processes, and condition waits.
#![allow(dead_code)] // each test file uses a different subset

pub mod prereq;

/// A `#[service]` object the foreign-client tests serve, reached as `tally.<method>` from
/// msgpack-rpc and as `m.tally()` from Python.
#[monogusa::service]
pub trait Tally {
    fn add(&mut self, n: i64) -> i64;
    fn total(&self) -> i64;
    /// Panics, for testing.
    fn explode(&self) -> u8;
}

#[derive(Default)]
pub struct Sum(i64);

impl Tally for Sum {
    fn add(&mut self, n: i64) -> i64 {
        self.0 += n;
        self.0
    }

    fn total(&self) -> i64 {
        self.0
    }

    fn explode(&self) -> u8 {
        panic!("tally exploded")
    }
}

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use monogusa::{Address, Manager, ManagerBuilder, ManagerHandle, Reply};
use sha2::Sha256;

pub const KEY: &str = "test-key";

/// A plain serde struct, returned through `Reply`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// A manager builder with the functions the tests call: a shared counter map (`get`, `inc`,
/// `add`), and functions that fail, panic, sleep or echo.
pub fn standard_builder() -> ManagerBuilder {
    let counts = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
    let (c1, c2, c3) = (
        Arc::clone(&counts),
        Arc::clone(&counts),
        Arc::clone(&counts),
    );
    Manager::builder()
        .authkey(KEY)
        .register("get", move |key: String| {
            c1.lock().unwrap().get(&key).copied().unwrap_or(0)
        })
        .register("inc", move |key: String| {
            let mut map = c2.lock().unwrap();
            let n = map.entry(key).or_insert(0);
            *n += 1;
            *n
        })
        .register("add", move |key: String, delta: i64| {
            let mut map = c3.lock().unwrap();
            let n = map.entry(key).or_insert(0);
            *n += delta;
            *n
        })
        .register("echo", |text: String| text)
        .register("repeat", |text: String, times: usize| text.repeat(times))
        .register("echo_bytes", |bytes: Vec<u8>| bytes.len())
        .register("divide", |a: i64, b: i64| {
            if b == 0 {
                Err(format!("cannot divide {a} by zero"))
            } else {
                Ok(a / b)
            }
        })
        .register("boom", |why: String| -> u8 { panic!("boom: {why}") })
        .register("sleep_ms", |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        })
        .register("point", |x: i32, y: i32| Reply(Point { x, y }))
}

/// Starts the standard manager on a free loopback port.
pub fn start_standard() -> ManagerHandle {
    standard_builder().build().unwrap().start().unwrap()
}

/// Starts the standard manager at `address` (a Unix socket path, say).
pub fn start_standard_at(address: &Address) -> ManagerHandle {
    standard_builder()
        .bind(address)
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// Tries to start the standard manager at `address`, which must fail: the error.
pub fn start_error_at(address: &Address) -> monogusa::Error {
    standard_builder()
        .bind(address)
        .build()
        .unwrap()
        .start()
        .unwrap_err()
}

pub fn socket_addr(address: &Address) -> SocketAddr {
    address.to_string().parse().expect("a TCP address")
}

/// Waits until `condition` holds, failing the test after `limit`. Tests wait on conditions,
/// never on fixed sleeps.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- An independent implementation of protocol version 1, from its description ----------

/// The banner, from the one module that defines the protocol's identity.
pub const BANNER: &[u8] = monogusa::protocol::BANNER.as_bytes();

fn hmac(key: &[u8], label: &[u8], cn: &[u8], sn: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(label);
    mac.update(cn);
    mac.update(sn);
    mac.update(BANNER);
    mac.finalize().into_bytes().to_vec()
}

/// Performs the client handshake by hand and returns the authenticated socket.
pub fn raw_authenticated(address: &Address, key: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(socket_addr(address)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let client_nonce = [7u8; 32];
    let mut hello = vec![BANNER.len() as u8];
    hello.extend_from_slice(BANNER);
    hello.extend_from_slice(&client_nonce);
    stream.write_all(&hello).unwrap();
    let mut accept = [0u8; 33];
    stream.read_exact(&mut accept).unwrap();
    assert_eq!(accept[0], 0, "manager did not accept the hello");
    let server_nonce = &accept[1..];
    stream
        .write_all(&hmac(
            key,
            b"monogusa client proof",
            &client_nonce,
            server_nonce,
        ))
        .unwrap();
    let mut proven = [0u8; 33];
    stream.read_exact(&mut proven).unwrap();
    assert_eq!(proven[0], 0, "manager rejected the proof");
    assert_eq!(
        proven[1..],
        hmac(key, b"monogusa server proof", &client_nonce, server_nonce)[..],
        "manager's proof is wrong"
    );
    stream
}

/// A request frame: id, the operation's variant index, its fields, then raw argument bytes.
pub fn request_frame(id: u64, variant: u32, fields: &[u8], args: &[u8]) -> Vec<u8> {
    let mut payload = id.to_le_bytes().to_vec();
    payload.extend_from_slice(&variant.to_le_bytes());
    payload.extend_from_slice(fields);
    payload.extend_from_slice(args);
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(payload);
    frame
}

/// A frame holding a call request: id, `Op::Call(name)`, then the raw argument bytes.
pub fn call_frame(id: u64, name: &str, args: &[u8]) -> Vec<u8> {
    request_frame(id, 0, &string_arg(name), args)
}

/// `Op::Method { object, method }` with raw argument bytes.
pub fn method_frame(id: u64, object: u64, method: &str, args: &[u8]) -> Vec<u8> {
    let mut fields = object.to_le_bytes().to_vec();
    fields.extend(string_arg(method));
    request_frame(id, 2, &fields, args)
}

/// `Op::OpenShared { kind, name, type_tag }` with raw creation argument bytes.
pub fn open_shared_frame(id: u64, kind: &str, name: &str, type_tag: &str, args: &[u8]) -> Vec<u8> {
    let mut fields = string_arg(kind);
    fields.extend(string_arg(name));
    fields.extend(string_arg(type_tag));
    request_frame(id, 8, &fields, args)
}

/// Encodes a string argument the way the codec does (u64 length, then bytes).
pub fn string_arg(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

/// A response read off the wire: its id, whether it is an error, and its body.
#[derive(Debug)]
pub struct RawResponse {
    pub id: u64,
    pub is_error: bool,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// For error responses: the kind code and message.
    pub fn error(&self) -> (u16, String) {
        assert!(self.is_error, "not an error: {self:?}");
        let code = u16::from_le_bytes([self.body[0], self.body[1]]);
        let len = u64::from_le_bytes(self.body[2..10].try_into().unwrap()) as usize;
        (
            code,
            String::from_utf8(self.body[10..10 + len].to_vec()).unwrap(),
        )
    }
}

pub fn read_response(stream: &mut TcpStream) -> std::io::Result<RawResponse> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut payload)?;
    let id = u64::from_le_bytes(payload[..8].try_into().unwrap());
    let status = u32::from_le_bytes(payload[8..12].try_into().unwrap());
    Ok(RawResponse {
        id,
        is_error: status == 1,
        body: payload[12..].to_vec(),
    })
}

/// True once the peer has closed the stream (reads end), within the socket's read timeout.
pub fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

// ---- Peers from chosen addresses, and slow ones ---------------------------------------------

/// A TCP connection to `target` from the loopback address `ip` (127.0.0.2, say: Linux routes
/// all of 127/8 to loopback), so that a test has peers from two hosts.
pub fn connect_from(ip: [u8; 4], target: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    socket.connect(&target.into()).unwrap();
    TcpStream::from(socket)
}

/// Drips `bytes` one at a time, 200 ms apart, until the peer closes the connection; returns
/// how many went out before it did (or all of them).
pub fn drip_until_closed(stream: &mut TcpStream, bytes: &[u8]) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for (sent, byte) in bytes.iter().enumerate() {
        if stream.write_all(std::slice::from_ref(byte)).is_err() {
            return sent;
        }
        let mut sink = [0u8; 512];
        match stream.read(&mut sink) {
            Ok(0) => return sent + 1,
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                return sent + 1;
            }
            _ => {}
        }
    }
    bytes.len()
}

// ---- Child processes ----------------------------------------------------------------------

/// The environment variable that tells a re-run test binary which role to play.
pub const ROLE_VAR: &str = "MONOGUSA_TEST_ROLE";

/// This test binary as a child playing `role`: it runs only the ignored test named
/// `child_main`, which dispatches on the role.
pub fn child_command(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_main",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ROLE_VAR, role);
    command
}

/// Starts [`child_command`]`(role)` with `envs`, its stdin and stdout closed.
pub fn spawn_child(role: &str, envs: &[(&str, &str)]) -> Child {
    let mut command = child_command(role);
    command.stdin(Stdio::null()).stdout(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

/// The path of an example binary, built first: `cargo test --test NAME` does not rebuild
/// examples, and a stale one would test old code. (A no-op when it is up to date.)
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--example", name]);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().unwrap().success(), "building example {name}");
    profile_dir.join("examples").join(name)
}

/// The `monogusa` binary (of the `monogusa-cli` package), built first for the same reason
/// as the examples.
pub fn monogusa_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().unwrap().parent().unwrap();
            let mut build = Command::new(env!("CARGO"));
            build.args([
                "build",
                "--quiet",
                "-p",
                "monogusa-cli",
                "--bin",
                "monogusa",
            ]);
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            assert!(
                build.status().unwrap().success(),
                "building the monogusa binary"
            );
            profile_dir.join("monogusa")
        })
        .clone()
}

/// Runs an example to completion with `args`, asserting it succeeds; returns its stdout.
pub fn run_example(name: &str, args: &[&str]) -> String {
    let output = Command::new(example_binary(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

// ---- A fault-injecting relay ------------------------------------------------------------------

/// What a relay does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Stop forwarding in both directions, but keep reading (so TCP still acknowledges) and
    /// keep both connections open: a half-open path.
    Freeze,
    /// Forward this many bytes toward the manager in all, then close both sides.
    TruncateAfter(usize),
    /// Forward one byte at a time with this many milliseconds between.
    Drip(u64),
    /// After this many bytes toward the client, reset both connections.
    ResetAfter(usize),
    /// Flip the bits of the byte at this offset of the stream toward the manager.
    FlipAt(usize),
}

/// A TCP relay between clients and a manager that can inject faults, per connection (the
/// `choose` function picks each new connection's fault) or all at once (`set_all`).
pub struct Relay {
    pub address: Address,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Every pair of sockets carried, closed when the relay is dropped.
    pairs: Arc<Mutex<Vec<Arc<SocketPair>>>>,
}

/// A relayed connection: the client's socket and the manager's.
type SocketPair = (TcpStream, TcpStream);

impl Relay {
    pub fn start(upstream: &Address, choose: impl Fn(u64) -> Fault + Send + 'static) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address: Address = listener.local_addr().unwrap().into();
        let upstream = socket_addr(upstream);
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (frozen2, stop2) = (Arc::clone(&frozen), Arc::clone(&stop));
        let pairs = Arc::new(Mutex::new(Vec::new()));
        let pairs2 = Arc::clone(&pairs);
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let fault = choose(n as u64);
                let pair = Arc::new((client, server));
                pairs2.lock().unwrap().push(Arc::clone(&pair));
                for toward_manager in [true, false] {
                    let pair = Arc::clone(&pair);
                    let frozen = Arc::clone(&frozen2);
                    std::thread::spawn(move || pump(&pair, toward_manager, fault, &frozen));
                }
            }
        });
        Relay {
            address,
            frozen,
            stop,
            pairs,
        }
    }

    /// Freezes every connection (see [`Fault::Freeze`]) from now on.
    pub fn freeze_all(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(socket_addr(&self.address));
        for pair in self.pairs.lock().unwrap().drain(..) {
            let _ = pair.0.shutdown(std::net::Shutdown::Both);
            let _ = pair.1.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn pump(
    pair: &(TcpStream, TcpStream),
    toward_manager: bool,
    fault: Fault,
    frozen: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let (from, to) = if toward_manager {
        (&pair.0, &pair.1)
    } else {
        (&pair.1, &pair.0)
    };
    let close_both = || {
        let _ = pair.0.shutdown(std::net::Shutdown::Both);
        let _ = pair.1.shutdown(std::net::Shutdown::Both);
    };
    let mut buf = vec![0u8; 64 << 10];
    let mut carried = 0usize;
    loop {
        let n = match (&*from).read(&mut buf) {
            // A frozen path does not carry even the close: the other side never learns.
            Ok(0) | Err(_) if frozen.load(Ordering::SeqCst) || fault == Fault::Freeze => return,
            Ok(0) | Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) || fault == Fault::Freeze {
            continue; // read and dropped: the sender sees its bytes acknowledged
        }
        let chunk = &mut buf[..n];
        match fault {
            Fault::TruncateAfter(limit) if toward_manager && carried + n >= limit => {
                let _ = (&*to).write_all(&chunk[..limit - carried]);
                close_both();
                return;
            }
            Fault::ResetAfter(limit) if !toward_manager && carried + n >= limit => {
                for s in [&pair.0, &pair.1] {
                    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
                }
                close_both();
                return;
            }
            Fault::FlipAt(at) if toward_manager && (carried..carried + n).contains(&at) => {
                chunk[at - carried] ^= 0xff;
            }
            _ => {}
        }
        carried += n;
        if let Fault::Drip(ms) = fault {
            for byte in chunk.iter() {
                if (&*to).write_all(std::slice::from_ref(byte)).is_err() {
                    close_both();
                    return;
                }
                std::thread::sleep(Duration::from_millis(ms));
            }
        } else if (&*to).write_all(chunk).is_err() {
            close_both();
            return;
        }
    }
}

// ---- A manager process ---------------------------------------------------------------------

/// A manager in a child process (the `monogusa` binary), so its memory can be measured.
pub struct ChildManager {
    pub child: std::process::Child,
    pub address: monogusa::Address,
}

impl ChildManager {
    pub fn start(extra: &[&str]) -> ChildManager {
        Self::start_with(extra, "error", std::process::Stdio::null())
    }

    /// Starts the binary with `extra` arguments, a log level and where its stderr goes.
    pub fn start_with(extra: &[&str], log: &str, stderr: std::process::Stdio) -> ChildManager {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let bind = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(monogusa_binary())
            .args(["serve", "--bind", &bind])
            .args(extra)
            .env("MONOGUSA_AUTHKEY", KEY)
            .env("MONOGUSA_LOG", log)
            .stdin(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let address: monogusa::Address = bind.parse().unwrap();
        wait_until(Duration::from_secs(30), "the child manager serves", || {
            monogusa::Client::connect(&address, KEY).is_ok()
        });
        ChildManager { child, address }
    }

    /// A line of the child's /proc status, as a number (`VmRSS` in KiB, `Threads`).
    pub fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// How many descriptors the child has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// The child's resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        self.status("VmRSS")
    }
}

impl Drop for ChildManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
