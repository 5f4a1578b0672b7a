//! `monogusa run --tasks QUEUE -- PROGRAM`: any program that reads lines is a worker. Each
//! supervised process is this bridge (the hidden `monogusa bridge` command): a Rust
//! [`Worker`] that takes tasks and hands them to its program as JSON lines on stdin, one per
//! task, and reads one JSON line back per task on stdout:
//!
//! ```text
//! → {"id": 7, "payload": {"to": "ada@example.com"}, "attempt": 1}
//! ← {"id": 7, "ok": true}
//! ← {"id": 8, "ok": false, "error": "smtp down", "retry": true}
//! ```
//!
//! Up to `--concurrency` tasks are handed over at once, answered in any order. The bridge
//! keeps their leases alive while the program holds them; other stdout lines and stderr are
//! the program's log. When the program exits, the tasks it held fail ("the program exited")
//! and the bridge exits too, so the supervisor starts both again after its backoff. A stop
//! (the supervisor's message, SIGTERM) lets the tasks in hand finish, then closes the
//! program's stdin: its end of input is its signal to exit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monogusa::Dynamic;
use monogusa::workers::Worker;
use serde_json::{Map, Value as Json};

use crate::Failure;

/// How a program answered a task.
enum Answer {
    Done,
    /// Failed, with its reason; retried unless the program said `"retry": false`.
    Failed(String, bool),
    /// The program ended (its stdout closed) before answering.
    Gone,
}

/// Why a task handed to the program failed, and whether to retry it.
struct Failed {
    reason: String,
    retry: bool,
}

impl Failed {
    fn retry(reason: impl Into<String>) -> Failed {
        Failed {
            reason: reason.into(),
            retry: true,
        }
    }
}

impl monogusa::workers::Failure for Failed {
    fn reason(&self) -> String {
        self.reason.clone()
    }

    fn retry(&self) -> bool {
        self.retry
    }
}

/// The tasks handed to the program and not yet answered, by id, and whether its output has
/// ended: under one lock, so a task is never handed over after the reader gave up on them.
#[derive(Default)]
struct Handed {
    waiting: HashMap<u64, SyncSender<Answer>>,
    gone: bool,
}

type Pending = Mutex<Handed>;

/// The longest line read from the program: past it, the rest comes as further lines (a
/// program printing without newlines cannot make the bridge hold all of it).
const MAX_LINE: usize = 64 * 1024;

/// Runs the bridge for `queue` over `program` until stopped or the program exits.
pub fn run(queue: &str, concurrency: usize, program: &[String]) -> Result<ExitCode, Failure> {
    let Some((path, args)) = program.split_first() else {
        return Err(Failure::Usage(
            "no program to feed: -- PROGRAM [ARGS]...".into(),
        ));
    };
    let worker = Worker::from_env()?;
    let tasks = worker.client().tasks::<Dynamic>(queue)?;
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure::Runtime(format!("cannot start {path}: {e}")))?;
    let stdin = Mutex::new(Some(child.stdin.take().expect("piped")));
    let pending: Arc<Pending> = Arc::default();
    let reader = {
        let stdout = child.stdout.take().expect("piped");
        let pending = Arc::clone(&pending);
        std::thread::spawn(move || read_answers(BufReader::new(stdout), &pending))
    };
    let stop = worker.stop_handle();
    let report = worker.run(&tasks, concurrency.max(1), |task| {
        let (answer, answered) = sync_channel(1);
        {
            let mut handed = pending.lock().expect("never poisoned");
            if handed.gone {
                return Err(Failed::retry("the program had exited"));
            }
            handed.waiting.insert(task.id().0, answer);
        }
        let line = serde_json::json!({
            "id": task.id().0,
            "payload": to_json(task.payload()),
            "attempt": task.attempt(),
        });
        let written = stdin
            .lock()
            .expect("never poisoned")
            .as_mut()
            .map(|input| writeln!(input, "{line}").and_then(|()| input.flush()));
        if !matches!(written, Some(Ok(()))) {
            pending
                .lock()
                .expect("never poisoned")
                .waiting
                .remove(&task.id().0);
            stop.stop();
            return Err(Failed::retry("the program had closed its input"));
        }
        outcome(&answered, &stop)
    })?;
    // Its end of input tells the program to finish; it is waited for, then killed.
    drop(stdin.lock().expect("never poisoned").take());
    let status = wait_briefly(&mut child, Duration::from_secs(10));
    let _ = reader.join();
    log::info!(
        "bridge for {path}: {} done, {} failed; the program {status}",
        report.done,
        report.failed
    );
    if pending.lock().expect("never poisoned").gone && !worker.is_stopping() {
        // It exited on its own: the supervisor restarts it after its backoff.
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the program's answer; its exit fails the task and stops the bridge.
fn outcome(
    answered: &Receiver<Answer>,
    stop: &monogusa::workers::StopHandle,
) -> Result<(), Failed> {
    match answered.recv().unwrap_or(Answer::Gone) {
        Answer::Done => Ok(()),
        Answer::Failed(reason, retry) => Err(Failed { reason, retry }),
        Answer::Gone => {
            stop.stop();
            Err(Failed::retry("the program exited while holding this task"))
        }
    }
}

/// Reads the program's stdout: answers go to the tasks waiting for them; any other line is
/// the program's log (printed, so the supervisor ships it). At its end, every task still
/// waiting hears that the program is gone.
fn read_answers(mut stdout: impl BufRead, pending: &Pending) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut stdout)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        match parse_answer(text) {
            Some((id, answer)) => {
                match pending.lock().expect("never poisoned").waiting.remove(&id) {
                    Some(waiting) => {
                        let _ = waiting.send(answer);
                    }
                    None => log::warn!("the program answered task {id}, which it does not hold"),
                }
            }
            None => println!("{text}"),
        }
    }
    let mut handed = pending.lock().expect("never poisoned");
    handed.gone = true;
    for (_, waiting) in handed.waiting.drain() {
        let _ = waiting.send(Answer::Gone);
    }
}

/// `{"id": N, "ok": true}` or `{"id": N, "ok": false, "error": "...", "retry": bool}`.
fn parse_answer(line: &str) -> Option<(u64, Answer)> {
    let value: Json = serde_json::from_str(line.trim()).ok()?;
    let id = value.get("id")?.as_u64()?;
    let answer = match value.get("ok")?.as_bool()? {
        true => Answer::Done,
        false => {
            let error = match value.get("error") {
                Some(Json::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => "the program failed the task".into(),
            };
            // `"retry": false`: bad input no retry would fix, dead at once.
            let retry = value.get("retry").and_then(Json::as_bool) != Some(false);
            Answer::Failed(error, retry)
        }
    };
    Some((id, answer))
}

/// A task's payload as JSON: maps with str keys become objects (others, arrays of `[key,
/// value]` pairs), bytes arrays of numbers, non-finite floats `null`.
pub fn to_json(value: &Dynamic) -> Json {
    match value {
        Dynamic::None => Json::Null,
        Dynamic::Bool(b) => Json::Bool(*b),
        Dynamic::Int(n) => Json::from(*n),
        Dynamic::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Dynamic::Str(s) => Json::String(s.clone()),
        Dynamic::Bytes(b) => Json::Array(b.iter().map(|&b| Json::from(b)).collect()),
        Dynamic::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Dynamic::Map(entries) => {
            if entries.iter().all(|(k, _)| matches!(k, Dynamic::Str(_))) {
                let mut map = Map::new();
                for (k, v) in entries {
                    if let Dynamic::Str(k) = k {
                        map.insert(k.clone(), to_json(v));
                    }
                }
                Json::Object(map)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                        .collect(),
                )
            }
        }
    }
}

/// Waits up to `limit` for the program to exit, then kills it; says how it ended.
fn wait_briefly(child: &mut Child, limit: Duration) -> String {
    let until = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return format!("ended: {status}"),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return "was killed: it did not end at the end of its input".into();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line past `MAX_LINE` is read in pieces (the program's log), never held whole, and an
    /// answer after it still reaches its task; at the end of output the rest hear "gone".
    #[test]
    fn long_lines_are_cut_and_answers_still_found() {
        let mut output = vec![b'x'; 3 * MAX_LINE + 10];
        output.extend_from_slice(b"\n{\"id\": 7, \"ok\": true}\n");
        let pending = Pending::default();
        let (seven, answered) = sync_channel(1);
        let (eight, abandoned) = sync_channel(1);
        pending.lock().unwrap().waiting.insert(7, seven);
        pending.lock().unwrap().waiting.insert(8, eight);
        read_answers(std::io::Cursor::new(output), &pending);
        assert!(matches!(answered.recv().unwrap(), Answer::Done));
        assert!(matches!(abandoned.recv().unwrap(), Answer::Gone));
        assert!(pending.lock().unwrap().gone);
    }
}
