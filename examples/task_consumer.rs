//! The other half of `task_producer`: takes the tasks it put, with a `Task` of its own that
//! has the same shape. `--other-shape` opens the queue with a differently shaped `Task`,
//! which the manager refuses.

use std::time::Duration;

use monogusa::Client;

/// A task, as this program defines it: the same shape as the producer's.
#[derive(serde::Serialize, serde::Deserialize)]
struct Task {
    id: u64,
    name: String,
}

mod v2 {
    /// A task of another shape.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Task {
        pub id: u64,
        pub urgent: bool,
    }
}

fn main() -> monogusa::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (address, count) = match args.as_slice() {
        [address, count, ..] => (address.clone(), count.parse().unwrap_or(10u64)),
        _ => {
            eprintln!(
                "usage: task_consumer ADDRESS COUNT [--other-shape] (key in MONOGUSA_AUTHKEY)"
            );
            std::process::exit(2);
        }
    };
    let key = std::env::var("MONOGUSA_AUTHKEY").unwrap_or_default();
    let client = Client::connect(address.as_str(), key)?;
    if args.iter().any(|a| a == "--other-shape") {
        match client.queue::<v2::Task>("tasks", 0) {
            Ok(_) => println!("opened with another shape"),
            Err(e) => {
                println!("refused: {e}");
                std::process::exit(3);
            }
        }
        return Ok(());
    }
    let tasks = client.queue::<Task>("tasks", 0)?;
    let mut sum = 0;
    for _ in 0..count {
        match tasks.get_timeout(Duration::from_secs(10))? {
            Some(task) => {
                assert_eq!(task.name, format!("task {}", task.id));
                sum += task.id;
            }
            None => break,
        }
    }
    println!("sum of ids {sum}");
    Ok(())
}
