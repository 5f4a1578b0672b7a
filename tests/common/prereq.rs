//! What some suites need beyond Rust and python3, provisioned by the tests themselves where
//! that is cheap (a virtual environment with Python's `msgpack`, `npm ci` of `tests/node`,
//! both under `target/tmp/test-env/`, made once and reused), and otherwise skipped with one
//! line on the terminal naming what is missing and the command that installs it. Under CI
//! (`CI` set) nothing is skipped: a missing prerequisite fails the test, and `.ci/run`
//! installs them all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Skips a suite for want of `missing`: one line per test binary and prerequisite, written
/// past the test harness's capture so that it shows; under CI, a failure instead.
pub fn skip(missing: &str, install: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing} is missing under CI ({install}; .ci/run does it)"
    );
    static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.iter().any(|s| s == missing) {
        said.push(missing.to_string());
        let suite = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .map(|s| {
                s.rsplit_once('-')
                    .map_or(s.clone(), |(name, _)| name.to_string())
            })
            .unwrap_or_default();
        // Straight to the descriptor: `eprintln!` would be captured and never shown.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED in {suite}: needs {missing}; install it with: {install}"
        );
    }
}

/// The variable that moves provisioning elsewhere and ignores what the machine or
/// `tests/node` already has: a fresh machine, as the test of this module sees it.
pub const ENV_DIR_VAR: &str = "MONOGUSA_TEST_ENV_DIR";

/// Where provisioned prerequisites live (`target/tmp/test-env`, kept between runs).
fn env_dir() -> PathBuf {
    std::env::var_os(ENV_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-env"))
}

/// Whether what the machine has is to be ignored (see [`ENV_DIR_VAR`]).
fn fresh() -> bool {
    std::env::var_os(ENV_DIR_VAR).is_some()
}

/// Makes `dir` by running `make` on a fresh directory beside it, then renaming it into place,
/// so that test binaries running at once never see half of it; `None` if `make` fails.
fn provision(dir: &Path, make: impl FnOnce(&Path) -> bool) -> Option<PathBuf> {
    if dir.exists() {
        return Some(dir.to_path_buf());
    }
    let scratch = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).ok()?;
    if !make(&scratch) {
        let _ = std::fs::remove_dir_all(&scratch);
        return None;
    }
    // Another process may have won the race: then its copy stays and ours goes.
    if std::fs::rename(&scratch, dir).is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    dir.exists().then(|| dir.to_path_buf())
}

fn quietly(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python 3 that can `import msgpack`: `python3` itself when it can, else one of a virtual
/// environment made once under `target/` with `msgpack` from PyPI. `None` (said once) if
/// neither works: no `venv` module (Debian's python3-venv), or no way to PyPI.
pub fn python_with_msgpack() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let can_import =
                |python: &Path| quietly(Command::new(python).args(["-c", "import msgpack"]));
            let system = PathBuf::from(
                std::env::var("MONOGUSA_TEST_PYTHON").unwrap_or_else(|_| "python3".into()),
            );
            if !fresh() && can_import(&system) {
                return Some(system);
            }
            let venv = provision(&env_dir().join("python-msgpack"), |dir| {
                quietly(Command::new(&system).args(["-m", "venv"]).arg(dir))
                    && quietly(
                        Command::new(dir.join("bin/python"))
                            .args(["-m", "pip", "install", "--quiet", "msgpack"]),
                    )
            })
            .map(|dir| dir.join("bin/python"))
            .filter(|python| can_import(python));
            if venv.is_none() {
                skip(
                    "Python's msgpack package (and the venv module to install it under target/)",
                    "python3 -m pip install msgpack (or apt-get install python3-msgpack)",
                );
            }
            venv
        })
        .clone()
}

/// A Python with the PyPI msgpack-rpc client (`msgpack-rpc-python` 0.4.1, with the old
/// `msgpack-python` and tornado 4 it pins, which conflict with today's `msgpack`): a virtual
/// environment of its own, made once under `target/`. `None` (said once) where that cannot be
/// done.
pub fn python_with_msgpackrpc() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let system = PathBuf::from(
                std::env::var("MONOGUSA_TEST_PYTHON").unwrap_or_else(|_| "python3".into()),
            );
            let venv = provision(&env_dir().join("python-msgpackrpc"), |dir| {
                quietly(Command::new(&system).args(["-m", "venv"]).arg(dir))
                    && quietly(Command::new(dir.join("bin/python")).args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "msgpack-rpc-python==0.4.1",
                    ]))
            })
            .map(|dir| dir.join("bin/python"))
            .filter(|python| quietly(Command::new(python).args(["-c", "import msgpackrpc"])));
            if venv.is_none() {
                skip(
                    "the PyPI msgpack-rpc client (and the venv module to install it under target/)",
                    "python3 -m venv env && env/bin/pip install msgpack-rpc-python==0.4.1",
                );
            }
            venv
        })
        .clone()
}

/// The Go msgpack-rpc client of `tests/msgpack/go_client`, built once under `target/` with
/// Debian's Go and its `golang-github-hashicorp-go-msgpack-dev` (GOPATH mode: nothing is
/// downloaded). `None` (said once) without them.
pub fn go_msgpack_client() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let gopath = Path::new("/usr/share/gocode");
            let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/msgpack/go_client");
            let built = gopath
                .join("src/github.com/hashicorp/go-msgpack/codec")
                .exists()
                .then(|| {
                    provision(&env_dir().join("go-client"), |dir| {
                        quietly(
                            Command::new("go")
                                .args(["build", "-o"])
                                .arg(dir.join("go_client"))
                                .arg(".")
                                .current_dir(&sources)
                                .env("GO111MODULE", "off")
                                .env("GOPATH", gopath)
                                .env("GOCACHE", dir.join("cache")),
                        )
                    })
                })
                .flatten()
                .map(|dir| dir.join("go_client"))
                .filter(|client| client.exists());
            if built.is_none() {
                skip(
                    "Go and its msgpack-rpc codec (the Go client of the msgpack-rpc tests)",
                    "apt-get install golang-go golang-github-hashicorp-go-msgpack-dev",
                );
            }
            built
        })
        .clone()
}

/// The `node_modules` directory of `tests/node` (msgpack5rpc, playwright-core): the one
/// `npm ci --prefix tests/node` made, else one made once under `target/` by `npm ci` of the
/// same lock file. `None` (said once) where `npm` is missing or cannot reach its registry.
pub fn node_modules() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
            let complete = |modules: &Path| {
                modules.join("msgpack5rpc").exists() && modules.join("playwright-core").exists()
            };
            if !fresh() && complete(&sources.join("node_modules")) {
                return Some(sources.join("node_modules"));
            }
            let made = provision(&env_dir().join("node"), |dir| {
                ["package.json", "package-lock.json"]
                    .iter()
                    .all(|f| std::fs::copy(sources.join(f), dir.join(f)).is_ok())
                    && quietly(
                        Command::new("npm")
                            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                            .arg(dir),
                    )
            })
            .map(|dir| dir.join("node_modules"))
            .filter(|modules| complete(modules));
            if made.is_none() {
                skip(
                    "node and npm (for msgpack5rpc and playwright-core)",
                    "apt-get install nodejs npm",
                );
            }
            made
        })
        .clone()
}

/// Debian's Chromium (or `CHROMIUM`), for the dashboard's browser test.
pub fn chromium() -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if path.exists() {
        return Some(path);
    }
    skip(
        &format!("chromium (looked for {})", path.display()),
        "apt-get install chromium",
    );
    None
}
