//! The table and the JSON report.

use crate::*;

pub(crate) fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn machine() -> String {
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

pub(crate) fn human(value: f64, unit: &str) -> String {
    match unit {
        "s" => format!("{value:.3} s"),
        "KiB" => format!("{value:.1} KiB"),
        _ if value >= 1e6 => format!("{:.2}M {unit}", value / 1e6),
        _ if value >= 1e3 => format!("{:.1}k {unit}", value / 1e3),
        _ => format!("{value:.1} {unit}"),
    }
}

pub(crate) fn print_table(pinned: Option<&[Row]>, unpinned: &[Row], python: &[Row], quick: bool) {
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
