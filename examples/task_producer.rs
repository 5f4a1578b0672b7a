//! Two programs built separately share a queue of tasks: this one puts them, `task_consumer`
//! takes them. Each defines its own `Task`; what must match is the shape, not the module.
//!
//! ```text
//! MONOGUSA_AUTHKEY=secret cargo run --example task_producer -- 127.0.0.1:4343 100
//! MONOGUSA_AUTHKEY=secret cargo run --example task_consumer -- 127.0.0.1:4343 100
//! ```

use monogusa::Client;

/// A task, as this program defines it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Task {
    id: u64,
    name: String,
}

fn main() -> monogusa::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (address, count) = match args.as_slice() {
        [address, count] => (address.clone(), count.parse().unwrap_or(10u64)),
        _ => {
            eprintln!("usage: task_producer ADDRESS COUNT (key in MONOGUSA_AUTHKEY)");
            std::process::exit(2);
        }
    };
    let key = std::env::var("MONOGUSA_AUTHKEY").unwrap_or_default();
    let client = Client::connect(address.as_str(), key)?;
    let tasks = client.queue::<Task>("tasks", 0)?;
    for id in 1..=count {
        tasks.put(&Task {
            id,
            name: format!("task {id}"),
        })?;
    }
    println!("put {count} tasks");
    Ok(())
}
