//! Talks to a running `kv_server`: puts a value, reads it back, asks for the server's uname.
//!
//! ```text
//! cargo run --example kv_client                       # 127.0.0.1:4343
//! cargo run --example kv_client -- unix:/tmp/kv.sock  # or any address
//! cargo run --example kv_client -- --shutdown         # ask the server to stop
//! ```
//!
//! The address is the first argument, else `MONOGUSA_ADDRESS`, else 127.0.0.1:4343. The key
//! is never built in: it comes from `MONOGUSA_AUTHKEY`, the file named by `--authkey-file` or
//! `MONOGUSA_AUTHKEY_FILE`, or the key file a local `kv_server` wrote.

use std::path::PathBuf;
use std::process::ExitCode;

use monogusa::{Client, Dynamic};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut address = std::env::var("MONOGUSA_ADDRESS").unwrap_or_else(|_| "127.0.0.1:4343".into());
    let mut key_file: Option<PathBuf> = std::env::var_os("MONOGUSA_AUTHKEY_FILE").map(Into::into);
    let mut shutdown = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--authkey-file" => key_file = Some(args.next().ok_or("--authkey-file needs a path")?.into()),
            "--shutdown" => shutdown = true,
            other if !other.starts_with('-') => address = other.to_string(),
            other => return Err(format!("unknown option {other}; usage: kv_client [ADDRESS] [--authkey-file PATH] [--shutdown]").into()),
        }
    }
    let authkey = match std::env::var("MONOGUSA_AUTHKEY") {
        Ok(key) => key.into_bytes(),
        Err(_) => {
            let path = key_file.unwrap_or_else(|| std::env::temp_dir().join("monogusa-kv.key"));
            std::fs::read(&path).map_err(|e| {
                format!(
                    "no key: set MONOGUSA_AUTHKEY or --authkey-file ({}: {e})",
                    path.display()
                )
            })?
        }
    };

    let client = Client::connect(address.as_str(), authkey)?;
    if shutdown {
        client.shutdown_server()?;
        println!("asked the manager at {address} to shut down");
        return Ok(());
    }
    let greeting = Dynamic::Str("hello from kv_client".into());
    client.call::<()>("put", ("greeting", greeting))?;
    let value: Option<String> = client
        .call::<Option<Dynamic>>("get", ("greeting",))?
        .and_then(|v| v.as_str().map(String::from));
    let missing: Option<Dynamic> = client.call("get", ("no such key",))?;
    let (sysname, nodename, release, machine): (String, String, String, String) =
        client.call("get_uname", ())?;
    println!("get(\"greeting\") = {value:?}");
    println!("get(\"no such key\") = {missing:?}");
    println!("manager host: {sysname} {nodename} {release} {machine}");
    Ok(())
}
