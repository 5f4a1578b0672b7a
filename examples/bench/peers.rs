//! The peers' workflows beside ours in the same run: Celery's chord and RQ's `depends_on`
//! (a job after many), on a redis-server of their own, in a Python virtual environment the
//! harness makes once (`target/bench-peers`, from PyPI). The full table only: `--quick`
//! skips them, saying so.

use crate::*;

/// The script the peers run (see its docstring).
const SCRIPT: &str = include_str!("peers.py");

/// What the virtual environment holds, pinned so figures compare across runs.
const PACKAGES: &[&str] = &["celery==5.7.0", "rq==3.0.0", "redis==8.2.0", "packaging"];

/// A chord of this many tasks, ours and theirs.
const MEMBERS: u64 = 1_000;

/// Celery's chord and RQ's `depends_on`, each next to our chord of as many tasks.
pub(crate) fn peers(plan: Plan) {
    if plan.quick {
        eprintln!("bench: peers (Celery, RQ) run in the full table only");
        return;
    }
    let Some(python) = peers_python() else {
        eprintln!(
            "bench: no Python virtual environment with Celery and RQ (python3 -m venv and pip \
             from PyPI); no peer rows"
        );
        return;
    };
    let Some((mut redis, port, dir)) = start_redis() else {
        eprintln!("bench: redis-server is not installed; no peer rows");
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/0");
    let script = dir.join("peers.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let theirs = |mode: &str| -> Option<f64> {
        let out = Command::new(&python)
            .arg(&script)
            .args([mode, &url, &MEMBERS.to_string(), "4"])
            .env("PYTHONPATH", &dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "bench: the {mode} peer failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let celery = theirs("celery");
    let rq = theirs("rq");
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let manager = Server::start_with("task-manager", &Transport::Tcp.bind("peers"), &["-"]);
    let ours = chord_rate(&manager.address, "peers-chord", MEMBERS);
    drop(manager);
    for (peer, what, rate) in [
        ("Celery 5.7 chord", "Celery's chord", celery),
        ("RQ 3.0 depends_on", "RQ's depends_on", rq),
    ] {
        let Some(rate) = rate else { continue };
        emit(row(
            &format!("{peer}: {MEMBERS} tasks and a callback, 4 worker processes, Redis"),
            "tcp",
            "8 B",
            rate,
            "tasks/s",
            None,
        ));
        emit(row(
            &format!("a chord of {MEMBERS} tasks and its callback, 4 threads, memory"),
            "tcp",
            "8 B",
            ours,
            "tasks/s",
            Some((rate, what)),
        ));
    }
}

/// The virtual environment's python, made (once) if it is not there.
fn peers_python() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-peers");
    let python = dir.join("bin/python");
    let ready = dir.join("installed");
    if ready.exists() {
        return Some(python);
    }
    let quiet = |command: &mut Command| {
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    eprintln!("bench: making {} (Celery, RQ) from PyPI", dir.display());
    let made = quiet(Command::new("python3").args(["-m", "venv"]).arg(&dir))
        && quiet(
            Command::new(&python)
                .args(["-m", "pip", "install", "-q"])
                .args(PACKAGES),
        );
    if !made {
        return None;
    }
    std::fs::write(ready, PACKAGES.join("\n")).ok()?;
    Some(python)
}
