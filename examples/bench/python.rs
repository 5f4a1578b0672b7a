//! Python's own managers, side by side.

use crate::*;

pub(crate) const PYTHON: &str = r#"
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

pub(crate) fn python_comparison(quick: bool, ours: &[Row]) -> Vec<Row> {
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
