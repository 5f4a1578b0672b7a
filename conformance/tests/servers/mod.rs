//! The servers the conformance suite runs against, each started by the test in a temporary
//! directory on a free loopback port and stopped when dropped. Where one is not installed the
//! suite says so on one line and skips it; under CI (`CI` set) that is a failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::prereq::skip;
use crate::common::wait_until;

// ---- A Redis server ------------------------------------------------------------------------

/// A `redis-server` of our own on a free loopback port, in a temporary directory; stopped
/// (SIGKILL) when dropped.
pub struct RedisServer {
    pub child: std::process::Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one, or returns `None` (saying why) where `redis-server` is not installed;
    /// under CI (`CI` set), a missing server fails the test instead.
    pub fn start(extra: &[&str]) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            skip("redis-server", "apt-get install redis-server");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Self::spawn(port, dir.path(), &extra);
        let server = RedisServer {
            child,
            port,
            dir,
            extra,
        };
        server.wait_ready();
        Some(server)
    }

    fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> std::process::Child {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir)
            .args(["--daemonize", "no", "--logfile", ""])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn wait_ready(&self) {
        wait_until(Duration::from_secs(30), "redis-server to listen", || {
            TcpStream::connect(("127.0.0.1", self.port))
                .and_then(|mut s| {
                    s.write_all(b"PING\r\n")?;
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf)?;
                    Ok(n > 0)
                })
                .unwrap_or(false)
        });
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILLs it (no shutdown save), as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and directory, with the same options.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.port, self.dir.path(), &self.extra);
        self.wait_ready();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- A local SQS stand-in --------------------------------------------------------------------

/// moto's server (`moto_server`, from PyPI's `moto[server]`): the local stand-in for SQS,
/// not AWS. Found as `MONOGUSA_MOTO_SERVER` or `moto_server` on the PATH; killed when dropped.
pub struct MotoServer {
    pub child: std::process::Child,
    pub port: u16,
}

impl MotoServer {
    /// Starts one, or returns `None` (saying why) where moto is not installed; under CI, a
    /// missing moto fails the test instead.
    pub fn start() -> Option<MotoServer> {
        let program =
            std::env::var("MONOGUSA_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let child = match Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                skip(
                    &format!("moto's server ({program}: {e})"),
                    "python3 -m pip install 'moto[server]' (or set MONOGUSA_MOTO_SERVER)",
                );
                return None;
            }
        };
        let server = MotoServer { child, port };
        wait_until(Duration::from_secs(60), "moto_server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(server)
    }

    /// A store on it (any credentials do; moto checks none).
    pub fn store(&self) -> monogusa::Store {
        let mut secrets = monogusa::Secrets::default();
        secrets.aws_access_key_id = Some("testing".into());
        secrets.aws_secret_access_key = Some("testing".into());
        monogusa::connect_with(&format!("sqs+http://127.0.0.1:{}", self.port), &secrets).unwrap()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
