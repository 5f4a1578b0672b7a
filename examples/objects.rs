//! Objects created by clients, shared between processes, and freed when the last reference
//! goes, like Python's `manager.register(typeid, callable)` with proxies, but typed and
//! without leaks.
//!
//! ```text
//! cargo run --example objects
//! ```
//!
//! The coordinator starts a manager that lets clients create `Tally` objects and offers a
//! small mailbox for passing object references. Then two processes:
//! - the *producer* creates a tally, adds 1..=10 to it, posts a reference to it in the
//!   mailbox, waits until the consumer has picked it up, then drops its stub;
//! - the *consumer* reopens the tally from that reference, adds 100, reads the total
//!   (155), and drops its stub.
//!
//! When the second stub goes, the tally is freed: `describe()` shows it before and not after.

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monogusa::{Client, Manager, ObjectRef};

const AUTHKEY_VAR: &str = "MONOGUSA_AUTHKEY";

/// A running total with a label.
#[monogusa::service]
pub trait Tally {
    /// Adds `amount` and returns the new total.
    fn add(&mut self, amount: i64) -> i64;
    /// The total so far.
    fn total(&self) -> i64;
    /// What the tally counts.
    fn label(&self) -> String;
}

struct Sum {
    label: String,
    total: i64,
}

impl Tally for Sum {
    fn add(&mut self, amount: i64) -> i64 {
        self.total += amount;
        self.total
    }
    fn total(&self) -> i64 {
        self.total
    }
    fn label(&self) -> String {
        self.label.clone()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => coordinator(),
        [role, address] if role == "producer" => producer(address),
        [role, address] if role == "consumer" => consumer(address),
        _ => Err("usage: objects".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("objects: {e}");
            ExitCode::FAILURE
        }
    }
}

fn coordinator() -> Result<(), Box<dyn std::error::Error>> {
    let authkey = "objects-example";
    let mailbox = Arc::new(Mutex::new(HashMap::<String, ObjectRef>::new()));
    let (for_post, for_fetch) = (Arc::clone(&mailbox), Arc::clone(&mailbox));
    let manager = Manager::builder()
        .authkey(authkey)
        .register_type("Tally", |label: String| {
            TallyServer::new(Sum { label, total: 0 })
        })
        .register("post", move |slot: String, object: ObjectRef| {
            for_post.lock().unwrap().insert(slot, object);
        })
        .register("fetch", move |slot: String| {
            for_fetch.lock().unwrap().remove(&slot)
        })
        .build()?
        .start()?;
    let address = manager.address().to_string();
    let exe = std::env::current_exe()?;
    let spawn = |role: &str| {
        Command::new(&exe)
            .args([role, address.as_str()])
            .env(AUTHKEY_VAR, authkey)
            .spawn()
    };
    let mut producer = spawn("producer")?;
    let mut consumer = spawn("consumer")?;
    let ok = producer.wait()?.success() & consumer.wait()?.success();

    let client = Client::connect(manager.address(), authkey)?;
    let left = client.describe()?.objects.len();
    println!("coordinator: objects left in the manager: {left}");
    manager.shutdown();
    if !ok || left != 0 {
        return Err("FAILED".into());
    }
    Ok(())
}

fn connect(address: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let authkey = std::env::var(AUTHKEY_VAR).map_err(|_| format!("{AUTHKEY_VAR} is not set"))?;
    Ok(Client::connect(address, authkey)?)
}

/// Polls the mailbox `slot` until something arrives (bounded, so the example always ends).
fn wait_for(client: &Client, slot: &str) -> Result<ObjectRef, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(object) = client.call::<Option<ObjectRef>>("fetch", (slot,))? {
            return Ok(object);
        }
        if Instant::now() > deadline {
            return Err(format!("nothing arrived in {slot:?}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn producer(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = connect(address)?;
    let tally = TallyClient::create(&client, ("jobs done",))?;
    for n in 1..=10 {
        tally.add(n)?;
    }
    println!(
        "producer: created {:?} with total {}",
        tally.label()?,
        tally.total()?
    );
    let object = tally.object_ref();
    client.call::<()>("post", ("tally", &object))?;
    // Hold the stub until the consumer has its own reference: a reference in transit keeps
    // nothing alive by itself.
    wait_for(&client, "picked up")?;
    println!(
        "producer: object {} described as {} reference(s) before letting go",
        object.id,
        references(&client, object.id)?
    );
    drop(tally);
    Ok(())
}

fn consumer(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = connect(address)?;
    let object = wait_for(&client, "tally")?;
    let tally = TallyClient::from_ref(&client, &object)?;
    client.call::<()>("post", ("picked up", &object))?;
    tally.add(100)?;
    // Wait for the producer to let go, then ours is the last reference.
    let deadline = Instant::now() + Duration::from_secs(30);
    while references(&client, object.id)? > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "consumer: {:?} total is {} (expected 155)",
        tally.label()?,
        tally.total()?
    );
    if tally.total()? != 155 {
        return Err("wrong total".into());
    }
    drop(tally);
    println!(
        "consumer: dropped the last stub; object alive: {}",
        references(&client, object.id)? > 0
    );
    Ok(())
}

/// How many references keep object `id` alive (0 once it is gone).
fn references(client: &Client, id: u64) -> Result<u64, monogusa::Error> {
    Ok(client
        .describe()?
        .objects
        .iter()
        .find(|o| o.id == id)
        .map_or(0, |o| o.references))
}
