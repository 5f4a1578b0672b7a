//! `monogusa tasks status|result QUEUE ID`: a task queue's tasks by id, opened with the
//! element types the queue was made with (found in the manager's description), so any queue
//! can be looked at whatever program made it.

use std::io::Write;
use std::process::ExitCode;

use monogusa::{Client, Dynamic, TaskId, TaskQueue, TaskQueueSettings, TaskResult, TaskStatus};

use crate::args::{TaskArgs, Tasks};
use crate::{Failure, bridge, connect, output_failed, seconds};

/// The task queue kind's service name, as the manager describes it.
const TASK_QUEUE: &str = "monogusa.TaskQueue";

/// Runs a `tasks` subcommand.
pub fn run(command: &Tasks) -> Result<ExitCode, Failure> {
    let (text, ok) = match command {
        Tasks::Status(args) => status(args)?,
        Tasks::Result(args) => result(args)?,
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(output_failed)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The queue `name`, opened with the tags it was made with; an error if there is none.
fn open(client: &Client, name: &str) -> Result<TaskQueue<Dynamic>, Failure> {
    let mut after = 0;
    loop {
        let page = client.describe_objects(after, 1000)?;
        if let Some(found) = page
            .objects
            .iter()
            .find(|o| o.service == TASK_QUEUE && o.name.as_deref() == Some(name))
        {
            let tag = found.type_tag.clone().unwrap_or_default();
            // The queue exists, so these settings are not used (its own are kept).
            return Ok(client
                .named(name)
                .type_tag(&tag)
                .tasks::<Dynamic>(TaskQueueSettings::default())?);
        }
        match page.objects.last() {
            Some(last) if page.objects.len() == 1000 => after = last.id,
            _ => {
                return Err(Failure::Runtime(format!(
                    "the manager has no task queue named {name:?}"
                )));
            }
        }
    }
}

fn status(args: &TaskArgs) -> Result<(String, bool), Failure> {
    let (_, client) = connect(&args.connect)?;
    let queue = open(&client, &args.queue)?;
    let status = queue.status(TaskId(args.id))?;
    let words = match status {
        TaskStatus::Waiting => "waiting (for the tasks it runs after)".to_string(),
        TaskStatus::Unknown => {
            "unknown (never pushed, purged, or done longer ago than results are kept)".to_string()
        }
        other => other.to_string(),
    };
    Ok((format!("{words}\n"), status != TaskStatus::Unknown))
}

fn result(args: &TaskArgs) -> Result<(String, bool), Failure> {
    let (_, client) = connect(&args.connect)?;
    let queue = open(&client, &args.queue)?;
    let wait = seconds("--for", args.wait_for)?;
    let id = TaskId(args.id);
    Ok(match queue.result::<Dynamic>(id, wait) {
        Ok(TaskResult::Done(None)) => ("done, with no result\n".into(), true),
        Ok(TaskResult::Done(Some(value))) => (format!("{}\n", bridge::to_json(&value)), true),
        Ok(TaskResult::Dead(reasons)) => {
            let mut text = format!("dead after {} failures:\n", reasons.len());
            for reason in reasons {
                text.push_str(&format!("  {reason}\n"));
            }
            (text, false)
        }
        Ok(TaskResult::Pending) => (format!("not finished ({})\n", queue.status(id)?), false),
        Ok(_) => ("unknown\n".into(), false),
        // A result some Rust type wrote: it is there, but only that type reads it.
        Err(monogusa::Error::Codec(_)) => (
            "done; its result is a Rust value, not a plain one (read it with \
             TaskQueue::result and its type)\n"
                .into(),
            true,
        ),
        Err(e) => return Err(e.into()),
    })
}
