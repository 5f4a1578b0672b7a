//! A main process and three different workers that message each other by name: the main
//! process sends `Fetch` to `fetcher-1`, which sends `Resize` to `resizer-1`, which sends
//! `Archive` to `archiver-1`, which tells `main` it is `Done`. Each process handles its
//! messages with a `match` arm per message type. All exit together on SIGINT or SIGTERM.
//!
//! ```text
//! cargo run --release --example mailboxes               # 20 images, then Ctrl-C
//! cargo run --release --example mailboxes -- --images 500
//! ```
//!
//! The workers are this program re-run with `--role NAME` by a supervisor, which gives each
//! its name and the manager's address and key, and prints their output prefixed with their
//! names. A send returns once the manager holds the message; messages from one sender arrive
//! in the order sent.

use std::process::ExitCode;

use monogusa::workers::{Program, Supervisor, Worker};
use monogusa::{Manager, Result};

/// Every message any process sends: its variant is its type, its handler a `match` arm.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Msg {
    Fetch { url: String },
    Resize { path: String, width: u32 },
    Archive { path: String },
    Done { url: String },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--role", role] => work_as(role),
        [] => main_process(20),
        ["--images", n] => match n.parse() {
            Ok(n) => main_process(n),
            Err(_) => Err(monogusa::Error::Config("--images needs a number".into())),
        },
        _ => Err(monogusa::Error::Config(
            "usage: mailboxes [--images N]".into(),
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailboxes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main_process(images: u32) -> Result<()> {
    let manager = Manager::builder().build()?.start()?;
    let client = manager.client()?;
    let inbox = client.mailbox::<Msg>("main")?;
    let mut supervisor = Supervisor::new(&manager);
    for role in ["fetcher", "resizer", "archiver"] {
        let program = Program::current_exe()?.args(["--role", role]);
        supervisor.spawn(role, 1, program);
    }
    // The supervisor stops the workers on SIGINT or SIGTERM, and then returns.
    let supervising = std::thread::spawn(move || supervisor.run());

    let fetcher = client.mailbox::<Msg>("fetcher-1")?;
    for n in 0..images {
        fetcher.send(&Msg::Fetch {
            url: format!("https://example.com/{n}.png"),
        })?;
    }
    println!("main: sent {images} images to fetch");
    let mut done = 0;
    while done < images && !supervising.is_finished() {
        match inbox.recv_timeout(std::time::Duration::from_millis(200))? {
            Some(Msg::Done { url }) => {
                done += 1;
                if done % 10 == 0 || done == images {
                    println!("main: {done} of {images} done (last {url})");
                }
            }
            Some(other) => println!("main: unexpected {other:?}"),
            None => {}
        }
    }
    if done == images {
        println!("main: all {images} done; Ctrl-C (or SIGTERM) to stop");
    }
    let outcome = supervising.join().expect("the supervisor panicked")?;
    print!("{outcome}");
    if outcome.all_drained() {
        println!("main: everyone stopped");
        Ok(())
    } else {
        Err(monogusa::Error::Config(
            "a worker did not stop cleanly".into(),
        ))
    }
}

fn work_as(role: &str) -> Result<()> {
    let worker = Worker::from_env()?;
    // Who this role passes its work on to, opened once.
    let next = match role {
        "fetcher" => "resizer-1",
        "resizer" => "archiver-1",
        _ => "main",
    };
    let next = worker.client().mailbox::<Msg>(next)?;
    let mut handled = 0;
    // Until the supervisor's stop message (or SIGTERM): then the loop ends.
    for message in worker.messages::<Msg>()? {
        handled += 1;
        match (role, message?) {
            ("fetcher", Msg::Fetch { url }) => {
                let path = format!("/tmp/{}", url.rsplit('/').next().unwrap_or("image"));
                next.send(&Msg::Resize { path, width: 128 })?;
            }
            ("resizer", Msg::Resize { path, width }) => {
                let path = path.replace(".png", &format!("-{width}.png"));
                next.send(&Msg::Archive { path })?;
            }
            ("archiver", Msg::Archive { path }) => {
                let url = format!("archive://{path}");
                next.send(&Msg::Done { url })?;
            }
            (_, other) => println!("{}: not mine: {other:?}", worker.name()),
        }
    }
    println!("{}: stopping after {handled} messages", worker.name());
    Ok(())
}
