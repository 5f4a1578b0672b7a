//! What every section uses: server processes in a role, transports and sizes, rows, rates, processes started together.

use crate::*;

/// A child process in a role; it prints its address first and lives until its stdin closes.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) address: String,
    pub(crate) pid: u32,
}

impl Server {
    pub(crate) fn start(role: &str, bind: &str) -> Server {
        Server::start_with(role, bind, &[])
    }

    /// Like `start`, with more arguments after the address.
    pub(crate) fn start_with(role: &str, bind: &str, more: &[&str]) -> Server {
        Server::spawn(
            Command::new(std::env::current_exe().unwrap()),
            role,
            bind,
            more,
        )
    }

    /// Like `start`, pinned to CPU 0 when `taskset` exists (beside pinned Python processes).
    pub(crate) fn start_pinned(role: &str, bind: &str) -> Server {
        if !has_taskset() {
            return Server::start(role, bind);
        }
        let mut command = Command::new("taskset");
        command
            .args(["-c", "0"])
            .arg(std::env::current_exe().unwrap());
        Server::spawn(command, role, bind, &[])
    }

    pub(crate) fn spawn(mut command: Command, role: &str, bind: &str, more: &[&str]) -> Server {
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
pub(crate) fn wait_for_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

// ---- The suite -----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Transport {
    Tcp,
    Unix,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }

    pub(crate) fn bind(self, tag: &str) -> String {
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
pub(crate) enum Size {
    Small,
    Large,
}

impl Size {
    pub(crate) fn bytes(self) -> usize {
        match self {
            Size::Small => 16,
            Size::Large => 4096,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Size::Small => "16 B",
            Size::Large => "4 KiB",
        }
    }
}

pub(crate) fn emit(row: Row) {
    println!("{}", serde_json::to_string(&row).unwrap());
}

pub(crate) fn row(
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
pub(crate) fn rate(span: Duration, per_step: usize, mut step: impl FnMut()) -> f64 {
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

/// A fresh directory under the system's temporary one.
pub(crate) fn tempfile_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("monogusa-bench-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `n` processes of this program in the roles `args(i)` gives, lets them say
/// "ready", starts them together and sums the numbers they print.
pub(crate) fn run_together(n: usize, args: impl Fn(usize) -> Vec<String>) -> f64 {
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

/// A redis-server of its own (no persistence) in a fresh directory, once it answers: the
/// process, its port and the directory; `None` if redis-server is not installed.
pub(crate) fn start_redis() -> Option<(Child, u16, std::path::PathBuf)> {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile_dir("redis");
    let redis = Command::new("redis-server")
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
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    Some((redis, port, dir))
}
