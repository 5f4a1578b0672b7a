//! The server roles: managers for each door and the raw echo server.

use crate::*;

/// The counter workload's functions: `get(key)` and `inc(key)` over one map of counts.
fn with_counts(builder: monogusa::ManagerBuilder) -> monogusa::ManagerBuilder {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let counts = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
    let (c1, c2) = (Arc::clone(&counts), counts);
    builder
        .register("get", move |key: String| {
            c1.lock().unwrap().get(&key).copied().unwrap_or(0)
        })
        .register("inc", move |key: String| {
            let mut map = c2.lock().unwrap();
            let n = map.entry(key).or_insert(0);
            *n += 1;
            *n
        })
}

/// A manager with a Python listener and the counter's functions, for Python's own clients;
/// prints the Python listener's address.
pub(crate) fn python_manager_role(bind: &str) {
    let manager = with_counts(Manager::builder())
        .authkey("password")
        .python_listener(bind)
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
pub(crate) fn msgpack_manager_role(bind: &str) {
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
pub(crate) fn task_manager_role(bind: &str, data_dir: &str) {
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
pub(crate) fn manager_role(bind: &str) {
    let manager = with_counts(Manager::builder())
        .authkey(AUTHKEY)
        .bind(bind)
        .max_connections(8192)
        .register("echo", |text: String| text)
        .register("echo_bytes", |bytes: ByteBuf| monogusa::Reply(bytes))
        .register("length", |text: monogusa::Str| text.len())
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
pub(crate) fn raw_server(bind: &str) {
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

pub(crate) fn echo_loop<S: Read + Write>(mut stream: S) {
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
pub(crate) enum RawStream {
    Tcp(TcpStream, Vec<u8>, Vec<u8>),
    Unix(UnixStream, Vec<u8>, Vec<u8>),
}

impl RawStream {
    pub(crate) fn connect(address: &str) -> RawStream {
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
    pub(crate) fn ping_pong(&mut self, size: usize, depth: usize) {
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
