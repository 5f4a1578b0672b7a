//! The benchmark harness runs in quick mode on every test run, so it cannot rot. Only its
//! shape is checked: figures are for people to read, never asserted (see the README's Performance section).
#![allow(missing_docs)] // tests, not API

mod common;

#[test]
fn harness_quick_mode_produces_every_figure() {
    let output = common::run_example("bench", &["--quick", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&output).unwrap();
    let rows = report["unpinned"].as_array().unwrap();
    let has = |name: &str, transport: &str, size: &str| {
        rows.iter().any(|r| {
            r["measurement"] == name
                && r["transport"] == transport
                && r["size"] == size
                && r["value"].as_f64().is_some_and(|v| v > 0.0)
        })
    };
    for transport in ["tcp", "unix"] {
        for size in ["16 B", "4 KiB"] {
            assert!(has("raw ping-pong", transport, size));
            assert!(has("sequential calls", transport, size));
            for depth in [1, 16, 64, 256] {
                assert!(has(
                    &format!("pipelined calls, {depth} in flight"),
                    transport,
                    size
                ));
                assert!(has(
                    &format!("raw pipelined echo, {depth} in flight"),
                    transport,
                    size
                ));
            }
        }
        for depth in [64, 256] {
            for form in ["pipelined", "batched"] {
                assert!(has(
                    &format!("{form} calls, borrowed argument, integer reply, {depth} in flight"),
                    transport,
                    "16 B"
                ));
            }
        }
        assert!(has("aggregate, 1 client processes", transport, "16 B"));
        assert!(has("connect + handshake + call + close", transport, "16 B"));
        assert!(has(
            "counter example (5 processes x 1000 x get+inc)",
            transport,
            "-"
        ));
    }
    assert!(rows.iter().any(|r| {
        r["measurement"]
            .as_str()
            .unwrap()
            .starts_with("memory per idle connection")
    }));
    let ratio_of = |name: &str| {
        rows.iter()
            .find(|r| r["measurement"] == name)
            .and_then(|r| r["ratio"].as_f64())
    };
    assert!(
        ratio_of("sequential calls").is_some(),
        "ratios are reported"
    );
}

#[test]
fn harness_runs_only_the_sections_asked_for() {
    let output = common::run_example(
        "bench",
        &[
            "--quick",
            "--json",
            "--no-python",
            "--only",
            "allocation-free",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&output).unwrap();
    let rows = report["unpinned"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let name = row["measurement"].as_str().unwrap();
        assert!(name.contains("borrowed argument"), "{name}");
    }
}
