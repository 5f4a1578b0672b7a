//! The manager's HTTP side over real sockets: the token and its cookie, POSTs that check the
//! token and the Origin, `/metrics` read by a strict parser of the text format, the JSON and
//! event stream the page uses, and hostile HTTP that leaves the RPC side serving.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{KEY, wait_until};
use monogusa::{Client, Manager, ManagerHandle, TaskQueueSettings};

fn manager() -> ManagerHandle {
    Manager::builder()
        .authkey(KEY)
        .http("127.0.0.1:0")
        .build()
        .unwrap()
        .start()
        .unwrap()
}

/// One request, raw; the status and the whole response.
fn request(manager: &ManagerHandle, raw: &str) -> (u16, String) {
    let address = manager.http_addresses()[0].to_string();
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

fn get(manager: &ManagerHandle, path: &str, extra: &str) -> (u16, String) {
    request(
        manager,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
    )
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn auth(manager: &ManagerHandle) -> String {
    format!(
        "Authorization: Bearer {}\r\n",
        manager.http_token().unwrap()
    )
}

#[test]
fn everything_but_healthz_needs_the_token_which_a_cookie_keeps() {
    let manager = manager();
    let token = manager.http_token().unwrap().to_string();
    assert_eq!(get(&manager, "/healthz", "").0, 200);
    for path in ["/", "/metrics", "/api/state", "/events", "/api/logs"] {
        assert_eq!(get(&manager, path, "").0, 401, "{path}");
        assert_eq!(
            get(&manager, &format!("{path}?token=wrong"), "").0,
            401,
            "{path}"
        );
        assert_eq!(
            get(&manager, path, "Cookie: monogusa_token=wrong\r\n").0,
            401,
            "{path}"
        );
    }
    let (status, response) = get(&manager, &format!("/?token={token}"), "");
    assert_eq!(status, 200);
    assert!(response.contains(&format!(
        "Set-Cookie: monogusa_token={token}; HttpOnly; SameSite=Strict"
    )));
    assert!(body(&response).contains("<title>monogusa</title>"));
    let cookie = format!("Cookie: monogusa_token={token}\r\n");
    assert_eq!(get(&manager, "/metrics", &cookie).0, 200);
    assert_eq!(get(&manager, "/nowhere", &cookie).0, 404);
    // The token is derived from the key, not the key itself.
    assert!(!token.contains(KEY));
}

fn dead_letters(client: &Client) -> u64 {
    client.tasks::<u32>("mail").unwrap().stats().unwrap().dead
}

#[test]
fn posts_need_the_token_and_this_origin_and_otherwise_change_nothing() {
    let manager = manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let mail = client
        .named("mail")
        .tasks::<u32>(TaskQueueSettings {
            max_attempts: 1,
            ..TaskQueueSettings::default()
        })
        .unwrap();
    mail.push(&1).unwrap();
    mail.take(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .fail("boom")
        .unwrap();
    assert_eq!(dead_letters(&client), 1);
    let token = manager.http_token().unwrap().to_string();
    let post = |extra: &str| {
        request(
            &manager,
            &format!("POST /api/queues/mail/requeue HTTP/1.1\r\nHost: here:1\r\n{extra}\r\n"),
        )
    };
    assert_eq!(post("").0, 401, "no token");
    assert_eq!(
        post(&format!(
            "Cookie: monogusa_token={token}\r\nOrigin: http://evil.example\r\n"
        ))
        .0,
        403,
        "another origin"
    );
    assert_eq!(
        post(&format!("Cookie: monogusa_token={token}\r\n")).0,
        403,
        "a cookie without an origin"
    );
    assert_eq!(dead_letters(&client), 1, "nothing changed");
    let (status, response) = post(&format!(
        "Cookie: monogusa_token={token}\r\nOrigin: http://here:1\r\n"
    ));
    assert_eq!(status, 200, "{response}");
    assert!(body(&response).contains("\"requeued\":1"), "{response}");
    assert_eq!(dead_letters(&client), 0);
    // A GET never changes anything.
    assert_eq!(
        get(&manager, "/api/queues/mail/requeue", &auth(&manager)).0,
        404
    );
}

/// A strict reader of Prometheus' text format: every sample's family declared by HELP and
/// TYPE first, names and labels well formed, values numbers. Returns samples by name+labels.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut types = std::collections::HashMap::new();
    let mut samples = std::collections::BTreeMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "declared twice: {line}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("a sample is NAME VALUE");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "{line}");
        // A histogram's samples are its name with _bucket, _sum or _count.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("no TYPE before {line}"));
        if kind == "counter" {
            assert!(
                name.ends_with("_total"),
                "a counter's name ends in _total: {line}"
            );
        }
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect(line);
            for pair in inner.split("\",") {
                let (key, value) = pair.split_once("=\"").expect(line);
                assert!(valid_name(key), "{line}");
                assert!(!value.trim_end_matches('"').contains('"'), "{line}");
            }
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "twice: {line}"
        );
    }
    samples
}

#[test]
fn metrics_parse_strictly_and_move_with_the_calls() {
    let manager = manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client.tasks::<u32>("jobs").unwrap();
    let read = || parse_metrics(body(&get(&manager, "/metrics", &auth(&manager)).1));
    let before = read();
    jobs.push_many(&[1, 2, 3]).unwrap();
    jobs.take(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .ack()
        .unwrap();
    let after = read();
    assert!(after["monogusa_calls_total"] > before["monogusa_calls_total"]);
    assert_eq!(
        after["monogusa_task_queue_tasks{queue=\"jobs\",state=\"ready\"}"],
        2.0
    );
    assert_eq!(
        after["monogusa_task_queue_acked_total{queue=\"jobs\"}"],
        1.0
    );
    let failing = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    failing.fail("for the metrics").unwrap();
    let after = read();
    assert_eq!(
        after["monogusa_task_queue_failed_total{queue=\"jobs\"}"],
        1.0
    );
    assert_eq!(
        after["monogusa_task_duration_seconds_count{queue=\"jobs\"}"],
        2.0
    );
    assert_eq!(
        after["monogusa_task_duration_seconds_bucket{queue=\"jobs\",le=\"+Inf\"}"],
        2.0
    );
    assert!(after["monogusa_task_duration_seconds_bucket{queue=\"jobs\",le=\"30\"}"] <= 2.0);
    assert!(after["monogusa_connections_open"] >= 1.0);
    assert!(after.contains_key("monogusa_errors_total{kind=\"authentication\"}"));
}

#[test]
fn the_page_gets_its_state_as_json_and_as_events() {
    let manager = manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    client.tasks::<u32>("shown").unwrap().push(&7).unwrap();
    client.counter("visits").unwrap().add(1).unwrap();
    let state: serde_json::Value =
        serde_json::from_str(body(&get(&manager, "/api/state", &auth(&manager)).1)).unwrap();
    let queue = &state["queues"][0];
    assert_eq!(
        (queue["name"].as_str(), queue["ready"].as_u64()),
        (Some("shown"), Some(1))
    );
    assert!(
        state["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "visits")
    );
    client
        .dict::<String, u32>("sized")
        .unwrap()
        .insert(&"a".into(), &1)
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_str(body(&get(&manager, "/api/state", &auth(&manager)).1)).unwrap();
    let objects = state["objects"].as_array().unwrap();
    let sized = objects.iter().find(|o| o["name"] == "sized").unwrap();
    assert_eq!(sized["size"], 1, "a dict's size");
    // The manager's own objects are marked, for the page to hide them unless asked.
    assert_eq!(sized["internal"], false);
    client.workers().unwrap(); // opens the worker registry, one of the manager's own
    let state: serde_json::Value =
        serde_json::from_str(body(&get(&manager, "/api/state", &auth(&manager)).1)).unwrap();
    let registry = state["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "monogusa.workers")
        .unwrap();
    assert_eq!(registry["internal"], true);
    assert!(state["workers_gone"].is_array());
    let connections = state["connections"].as_array().unwrap();
    assert!(
        connections
            .iter()
            .any(|c| c["calls"].as_u64() > Some(0) && c["authenticated"] == true)
    );
    // The event stream sends the same state, then again as it changes.
    let address = manager.http_addresses()[0].to_string();
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: x\r\n{}\r\n",
        auth(&manager)
    )
    .unwrap();
    let mut lines = BufReader::new(stream).lines().map(Result::unwrap);
    assert!(lines.next().unwrap().starts_with("HTTP/1.1 200"));
    let mut first = None;
    for line in lines.by_ref() {
        if let Some(data) = line.strip_prefix("data: ") {
            first = Some(serde_json::from_str::<serde_json::Value>(data).unwrap());
            break;
        }
    }
    assert_eq!(first.unwrap()["queues"][0]["ready"], 1);
    client.tasks::<u32>("shown").unwrap().push(&8).unwrap();
    let mut moved = false;
    for line in lines.by_ref() {
        if let Some(data) = line.strip_prefix("data: ") {
            let state: serde_json::Value = serde_json::from_str(data).unwrap();
            if state["queues"][0]["ready"] == 2 {
                moved = true;
                break;
            }
        }
    }
    assert!(moved, "the events followed the push");
}

#[test]
fn hostile_http_leaves_the_rpc_side_serving() {
    let manager = manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let address = manager.http_addresses()[0].to_string();
    // Garbage.
    let (status, _) = request(
        &manager,
        "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03 not http\r\n\r\n",
    );
    assert_eq!(status, 400);
    // A huge header: refused after 16 KiB, not read to its end.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nX-Huge: ").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut refused = false;
    for _ in 0..(1 << 14) {
        // Up to 1 GiB, unless the manager answers and closes first.
        if stream.write_all(&chunk).is_err() {
            refused = true;
            break;
        }
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(refused || answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A slowloris on every HTTP slot: the RPC side is untouched.
    let slow: Vec<TcpStream> = (0..80)
        .map(|_| {
            let mut s = TcpStream::connect(&address).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    for n in 0..100 {
        assert!(client.call::<String>("missing", ()).is_err());
        client.counter("still-served").unwrap().add(n).unwrap();
    }
    assert_eq!(client.counter("still-served").unwrap().get().unwrap(), 4950);
    drop(slow);
    wait_until(
        Duration::from_secs(30),
        "the HTTP side to serve again",
        || get(&manager, "/healthz", "").0 == 200,
    );
}

/// In a real browser: the page of a manager whose queue two workers work (one task in four
/// fails for good) shows the counts moving without a reload, opens the dead letters, and
/// requeues them; a screenshot is saved under `target/`.
#[test]
fn the_page_is_live_in_a_real_browser_and_requeues_dead_letters() {
    let Some(chromium) = common::prereq::chromium() else {
        return;
    };
    let Some(node_modules) = common::prereq::node_modules() else {
        return;
    };
    let manager = manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let work = client
        .named("work")
        .tasks::<u64>(TaskQueueSettings {
            max_attempts: 1,
            ..TaskQueueSettings::default()
        })
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    // A producer, and two workers: every fourth task fails on its only attempt (once:
    // requeued, it succeeds).
    let failed_once = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    {
        let (work, stop) = (work.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                work.push(&n).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    for name in ["browser-worker-1", "browser-worker-2"] {
        let worker = monogusa::workers::Worker::builder(client.clone())
            .name(name)
            .heartbeat(Duration::from_millis(200))
            .handle_signals(false)
            .build()
            .unwrap();
        let (work, stop, failed_once) = (work.clone(), stop.clone(), failed_once.clone());
        threads.push(std::thread::spawn(move || {
            let handle = worker.stop_handle();
            let watcher = std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                handle.stop();
            });
            worker
                .run(&work, 1, |task| {
                    if task.payload() % 4 == 3
                        && failed_once.lock().unwrap().insert(*task.payload())
                    {
                        Err(format!("unlucky task {}", task.payload()))
                    } else {
                        Ok(())
                    }
                })
                .unwrap();
            watcher.join().unwrap();
        }));
    }
    // A chord waiting for its second member, in a queue no worker takes from.
    let chords = client.tasks::<u64>("chords").unwrap();
    chords.push_group(&[1, 2], &0).unwrap();
    chords
        .take(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .ack()
        .unwrap();
    let url = format!(
        "http://{}/?token={}",
        manager.http_addresses()[0],
        manager.http_token().unwrap()
    );
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    let screenshot = target.join("dashboard.png");
    let output = std::process::Command::new("node")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/dashboard.js"))
        .args([url.as_str(), "work"])
        .arg(&screenshot)
        .arg("chords")
        .env("CHROMIUM", &chromium)
        .env("NODE_PATH", &node_modules)
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ok"));
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "a screenshot"
    );
}

/// One WebSocket frame from the server (unmasked, FIN): its opcode and payload.
fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).unwrap();
            u16::from_be_bytes(n) as usize
        }
        127 => panic!("no log line is that long"),
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0] & 0x0f, payload)
}

/// A masked client frame.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [7u8, 1, 9, 3];
    let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[test]
fn the_log_tail_streams_over_a_websocket_with_ping_and_close() {
    let manager = manager();
    let mut supervisor = monogusa::workers::Supervisor::new(&manager);
    let mut settings = monogusa::workers::SupervisorSettings::default();
    settings.print_output = false;
    settings.handle_signals = false;
    settings.drain_timeout = Duration::from_secs(5);
    supervisor.settings(settings).spawn(
        "echoer",
        1,
        monogusa::workers::Program::new("sh").args([
            "-c",
            "trap 'exit 0' TERM; echo hello over websocket; while true; do sleep 0.05; done",
        ]),
    );
    let stop = supervisor.stop_handle();
    let supervising = std::thread::spawn(move || supervisor.run().unwrap());

    let address = manager.http_addresses()[0].to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /logs/ws?worker=echoer-1&token={} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        manager.http_token().unwrap()
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
    let (opcode, line) = read_frame(&mut stream);
    assert_eq!(opcode, 1, "a text frame");
    let line = String::from_utf8(line).unwrap();
    assert!(line.ends_with("echoer-1 | hello over websocket"), "{line}");
    stream
        .write_all(&client_frame(0x9, b"are you there"))
        .unwrap();
    assert_eq!(read_frame(&mut stream), (0xA, b"are you there".to_vec()));
    stream
        .write_all(&client_frame(0x8, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(read_frame(&mut stream).0, 0x8, "the close is answered");
    stop.stop();
    assert!(supervising.join().unwrap().all_drained());
}

/// The token reveals nothing of the key: random per run, or kept in the data directory
/// (0600, the same after a restart); one given must be long enough.
#[test]
fn the_token_is_random_or_kept_never_derived_from_the_key() {
    let start = |dir: Option<&std::path::Path>| {
        let mut builder = Manager::builder().authkey(KEY).http("127.0.0.1:0");
        if let Some(dir) = dir {
            builder = builder.data_dir(dir);
        }
        builder.build().unwrap().start().unwrap()
    };
    let (a, b) = (start(None), start(None));
    assert_ne!(a.http_token(), b.http_token(), "the same key, two tokens");
    assert!(a.http_token().unwrap().len() >= 16);
    drop((a, b));
    let dir = tempfile::tempdir().unwrap();
    let first = start(Some(dir.path()));
    let token = first.http_token().unwrap().to_string();
    first.shutdown();
    let kept = dir.path().join("dashboard-token");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(std::fs::read_to_string(&kept).unwrap().trim(), token);
    let again = start(Some(dir.path()));
    assert_eq!(
        again.http_token(),
        Some(token.as_str()),
        "kept across a restart"
    );
    again.shutdown();
    // Others may read it: refused at start, with what to do.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let refused = Manager::builder()
        .authkey(KEY)
        .http("127.0.0.1:0")
        .data_dir(dir.path())
        .build()
        .unwrap_err()
        .to_string();
    assert!(refused.contains("chmod 600"), "{refused}");
    for short in ["", "   ", "short"] {
        let refused = Manager::builder()
            .authkey(KEY)
            .http("127.0.0.1:0")
            .http_token(short)
            .build()
            .unwrap_err()
            .to_string();
        assert!(refused.contains("at least 16"), "{refused}");
    }
}

/// Thirty viewers of a manager with 20,000 objects: the state is built once per second and
/// shared by every `/events` stream (each used to build its own: 30 viewers of 100,000
/// objects aborted the manager), and it lists the first 500 objects with the total.
#[test]
fn viewers_share_one_bounded_state() {
    let manager = manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    for i in 0..20_000u32 {
        client.counter(&format!("c{i}")).unwrap();
    }
    let address = manager.http_addresses()[0].to_string();
    let viewers: Vec<_> = (0..30)
        .map(|_| {
            let address = address.clone();
            let auth = auth(&manager);
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(address).unwrap();
                stream
                    .write_all(format!("GET /events HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes())
                    .unwrap();
                let mut seen = Vec::new();
                let mut chunk = [0u8; 64 * 1024];
                while seen.windows(5).filter(|w| w == b"data:").count() < 3 {
                    let n = stream.read(&mut chunk).unwrap();
                    assert!(n > 0, "the stream ended");
                    seen.extend_from_slice(&chunk[..n]);
                }
                seen.len()
            })
        })
        .collect();
    for viewer in viewers {
        viewer.join().unwrap();
    }
    let metrics = body(&get(&manager, "/metrics", &auth(&manager)).1).to_string();
    let builds: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("monogusa_dashboard_state_builds_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(
        builds < 30,
        "{builds} states built for 30 viewers of 3 events each"
    );
    let state: serde_json::Value =
        serde_json::from_str(body(&get(&manager, "/api/state", &auth(&manager)).1)).unwrap();
    assert_eq!(state["objects"].as_array().unwrap().len(), 500);
    assert!(state["objects_total"].as_u64().unwrap() >= 20_000);
}

/// Seventy silent sockets on the HTTP side cannot keep `/metrics` and `/healthz` from being
/// answered: a new connection displaces a head that never came (the audit's 70 slow sockets
/// left `/metrics` unanswered 9 times in 10).
#[test]
fn silent_sockets_cannot_keep_metrics_unanswered() {
    let manager = manager();
    let address = manager.http_addresses()[0].to_string();
    let silent: Vec<TcpStream> = (0..70)
        .map(|_| TcpStream::connect(address.as_str()).unwrap())
        .collect();
    for _ in 0..10 {
        let (status, response) = get(&manager, "/metrics", &auth(&manager));
        assert_eq!(status, 200, "{response}");
        let (status, _) = get(&manager, "/healthz", "");
        assert_eq!(status, 200);
    }
    drop(silent);
}

/// At its cap of connections being answered, the dashboard's door refuses the next in its own
/// words (`503` and why), through the host's admission like every other door; a place that
/// frees up serves again.
#[test]
fn a_full_dashboard_answers_503() {
    let manager = Manager::builder()
        .authkey(KEY)
        .http("127.0.0.1:0")
        .max_connections(2)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let address = manager.http_addresses()[0].to_string();
    let stream_events = || {
        let mut stream = TcpStream::connect(address.as_str()).unwrap();
        write!(
            stream,
            "GET /events HTTP/1.1\r\nHost: x\r\n{}\r\n",
            auth(&manager)
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        reader
    };
    let first = stream_events();
    let _second = stream_events();
    let (status, response) = get(&manager, "/metrics", &auth(&manager));
    assert_eq!(status, 503, "{response}");
    assert!(response.contains("limit of 2 connections"), "{response}");
    assert!(manager.stats().connections_refused >= 1);
    drop(first);
    wait_until(Duration::from_secs(10), "a place freed up", || {
        get(&manager, "/metrics", &auth(&manager)).0 == 200
    });
}

/// The seed program `examples/python/logs.py`, three of them supervised: their lines arrive
/// live, each prefixed with its worker's name, on the dashboard's log websocket.
#[test]
fn the_logs_example_streams_three_pythons_to_the_websocket() {
    let manager = manager();
    let mut supervisor = monogusa::workers::Supervisor::new(&manager);
    let mut settings = monogusa::workers::SupervisorSettings::default();
    settings.print_output = false;
    settings.handle_signals = false;
    settings.drain_timeout = Duration::from_secs(5);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/logs.py");
    supervisor.settings(settings).spawn(
        "logs",
        3,
        monogusa::workers::Program::new("python3").args(["-u", example]),
    );
    let stop = supervisor.stop_handle();
    let supervising = std::thread::spawn(move || supervisor.run().unwrap());
    let address = manager.http_addresses()[0].to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /logs/ws?token={} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        manager.http_token().unwrap()
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    let mut heard = std::collections::BTreeSet::new();
    while heard.len() < 3 {
        let (opcode, line) = read_frame(&mut stream);
        assert_eq!(opcode, 1);
        let line = String::from_utf8(line).unwrap();
        for n in 1..=3 {
            if line.ends_with(&format!("logs-{n} | logs-{n} says line 2")) {
                heard.insert(n);
            }
        }
    }
    stop.stop();
    assert!(supervising.join().unwrap().all_drained());
}

/// The page's view of workflows: a queue's tasks pushed after others with their parents'
/// progress (`/api/queues/NAME/groups`), and one task's story (`…/task?id=N`).
#[test]
fn groups_and_a_task_story_are_served_as_json() {
    let manager = manager();
    let client = Client::connect(manager.address(), KEY).unwrap();
    let jobs = client
        .named("chords")
        .tasks::<u32>(TaskQueueSettings {
            max_attempts: 1,
            ..TaskQueueSettings::default()
        })
        .unwrap();
    let group = jobs
        .push_group_with(
            &[1, 2, 3],
            &0,
            &monogusa::PushOptions {
                run_if_parents_die: true,
                ..monogusa::PushOptions::default()
            },
        )
        .unwrap();
    let first = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    first.ack_with_result(&10u32).unwrap();
    let second = jobs.take(Duration::from_secs(5)).unwrap().unwrap();
    second.fail("no luck").unwrap();
    let json = |path: &str| -> serde_json::Value {
        let (status, response) = get(&manager, path, &auth(&manager));
        assert_eq!(status, 200, "{response}");
        serde_json::from_str(body(&response)).unwrap()
    };
    let groups = json("/api/queues/chords/groups");
    assert_eq!(
        groups["groups"],
        serde_json::json!([{"id": group.id.0, "status": "waiting", "size": 3, "done": 1,
                            "dead": 1}])
    );
    let story = json(&format!("/api/queues/chords/task?id={}", group.id.0));
    assert_eq!(story["status"], "waiting");
    assert_eq!(
        story["parents"],
        serde_json::json!([
            {"id": group.members[0].0, "status": "done"},
            {"id": group.members[1].0, "status": "dead"},
            {"id": group.members[2].0, "status": "waiting"},
        ])
    );
    let failed = json(&format!(
        "/api/queues/chords/task?id={}",
        group.members[1].0
    ));
    assert_eq!(
        (&failed["status"], &failed["reasons"], &failed["attempts"]),
        (
            &serde_json::json!("dead"),
            &serde_json::json!(["no luck"]),
            &serde_json::json!(1)
        )
    );
    let done = json(&format!(
        "/api/queues/chords/task?id={}",
        group.members[0].0
    ));
    assert_eq!(
        (&done["status"], &done["result_bytes"]),
        (&serde_json::json!("done"), &serde_json::json!(4))
    );
    assert!(done["finished"].is_u64());
    assert_eq!(
        get(&manager, "/api/queues/chords/task", &auth(&manager)).0,
        400
    );
    assert_eq!(json("/api/queues/chords/task?id=999")["status"], "unknown");
}
