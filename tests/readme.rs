//! Every shell command in the README runs as pasted: its `sh` blocks, in order, in one shell
//! session in a temporary directory, on free ports instead of the ones written, with the
//! `monogusa` binary of this build on the PATH. `cargo` lines are covered here by name (the
//! counter example is run, the CLI is built), and a new one fails this test until it is.
#![allow(missing_docs)]

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

/// The README's `sh` blocks, in order.
fn shell_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Each `127.0.0.1:PORT` written, on a free port of its own.
fn free_ports(script: &str) -> String {
    let mut ports: HashMap<String, String> = HashMap::new();
    let mut out = String::new();
    let mut rest = script;
    while let Some(at) = rest.find("127.0.0.1:") {
        let (before, after) = rest.split_at(at + "127.0.0.1:".len());
        out.push_str(before);
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            let free = ports.entry(digits.clone()).or_insert_with(|| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
                    .to_string()
            });
            out.push_str(free);
        }
        rest = &after[digits.len()..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_shell_command_in_the_readme_runs_as_pasted() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut script = String::from("set -euo pipefail\n");
    let mut cargo_lines = Vec::new();
    for block in shell_blocks(&readme) {
        for line in block.lines() {
            let command = line.split("  #").next().unwrap().trim();
            if command.starts_with("cargo ") {
                cargo_lines.push(command.to_string());
            } else {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    for command in &cargo_lines {
        match command.as_str() {
            // Run below; this test is part of the second; the binary is on the PATH.
            "cargo run --release --example counter"
            | "cargo test --workspace"
            | "cargo install --path cli" => {}
            other => panic!("the README's `{other}` is run by no test: cover it here"),
        }
    }
    let counted = common::run_example("counter", &[]);
    assert!(
        counted.contains("count = 5000 (expected 5000)"),
        "{counted}"
    );

    let dir = tempfile::tempdir().unwrap();
    let binary = common::monogusa_binary();
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Output to files: the managers the session starts in the background keep them open.
    let out_path = dir.path().join("stdout.txt");
    let err_path = dir.path().join("stderr.txt");
    let mut session = Command::new("bash");
    session
        .args(["-c", &free_ports(&script)])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    std::os::unix::process::CommandExt::process_group(&mut session, 0);
    let mut child = session.spawn().unwrap();
    let group = child.id();
    let status = child.wait().unwrap();
    // Whatever the session left running (its managers) goes with its process group.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status();
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(status.success(), "{stdout}\n{stderr}");
    for expected in [
        "workers: ",
        "resizer-2 | resizing as resizer-2",
        "monogusa_connections",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in:\n{stdout}\n{stderr}"
        );
    }
}
