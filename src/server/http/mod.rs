//! The manager's HTTP side (feature `http`): a live dashboard page, its JSON and Server-Sent
//! Events, and Prometheus `/metrics`. A minimal HTTP/1.1 server of our own (one request per
//! connection, `Connection: close`): the pages are few and small, and owning the parser lets
//! it bound everything a hostile peer could grow (head size, head time, connections), apart
//! from the RPC side, which it never blocks.
//!
//! Security: every path but `/healthz` needs the token (`?token=` once, then a
//! `SameSite=Strict` cookie; or `Authorization: Bearer`). State-changing actions are POSTs
//! that check the token and that `Origin`, when sent, is this very host (no CSRF).

mod pages;
pub(crate) mod request;
pub(crate) mod websocket;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::transport::Stream;
use request::{Refusal, Request};

/// The most HTTP connections answering or streaming at once, and the most still sending
/// their heads (the next one displaces the oldest of those from the most crowded address).
const MAX_CONNECTIONS: usize = 64;

/// At most this many of them stream (`/events`, `/logs/ws`): the rest answer requests.
const MAX_STREAMS: usize = 48;

/// How long a client may take to send its request head (a slowloris gets this long).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The cookie that keeps the token after the first visit.
const COOKIE: &str = "monogusa_token";

/// What the HTTP side keeps.
pub(crate) struct HttpState {
    token: String,
    /// Where an operator reads the token (for the log line, which never shows it whole).
    source: String,
    /// How many connections stream now (at most [`MAX_STREAMS`]).
    streams: std::sync::atomic::AtomicUsize,
    /// The page's state, as last built, and when: shared by every viewer.
    pub(super) snapshot: parking_lot::Mutex<Option<(std::time::Instant, Arc<str>)>>,
    /// How many times the state was built (`/metrics`).
    pub(super) states_built: std::sync::atomic::AtomicU64,
}

/// The file in a data directory that keeps the dashboard's token across restarts.
pub(crate) const TOKEN_FILE: &str = "dashboard-token";

/// The shortest token accepted.
const MIN_TOKEN: usize = 16;

/// 16 random bytes, as hex.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl HttpState {
    /// The token given; else the one kept in the data directory (made there, 0600, at the
    /// first start); else a random one for this run. Never derived from the authkey: a token
    /// that leaks (a URL in a browser's history, a log) must not lead to the key.
    pub(crate) fn new(
        token: Option<String>,
        data_dir: Option<&std::path::Path>,
    ) -> crate::error::Result<HttpState> {
        let config = |why: String| crate::error::Error::Config(why);
        let (token, source) = match (token, data_dir) {
            (Some(token), _) => (token.trim().to_string(), "the token you gave".to_string()),
            (None, Some(dir)) => {
                let path = dir.join(TOKEN_FILE);
                (kept_token(&path)?, path.display().to_string())
            }
            (None, None) => (
                random_token()?,
                "ManagerHandle::http_token (random for this run)".to_string(),
            ),
        };
        if token.len() < MIN_TOKEN {
            return Err(config(format!(
                "the dashboard token must be at least {MIN_TOKEN} characters (from {source})"
            )));
        }
        Ok(HttpState {
            token,
            source,
            streams: std::sync::atomic::AtomicUsize::new(0),
            snapshot: parking_lot::Mutex::new(None),
            states_built: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The token's first characters and where to read it whole: what the log says.
    pub(crate) fn hint(&self) -> String {
        format!("{}… (in {})", &self.token[..4], self.source)
    }
}

/// The token kept at `path`, made (0600) if there is none; refused if others may read it.
fn kept_token(path: &std::path::Path) -> crate::error::Result<String> {
    use std::io::Write;
    match std::fs::read_to_string(path) {
        Ok(token) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(crate::error::Error::Config(format!(
                        "{} is readable by others (mode {:o}): chmod 600 it",
                        path.display(),
                        mode & 0o777
                    )));
                }
            }
            Ok(token.trim().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let token = random_token()?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("creating {}: {e}", path.display()))
            })?;
            file.write_all(format!("{token}\n").as_bytes())?;
            file.sync_all()?;
            Ok(token)
        }
        Err(e) => {
            Err(std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display())).into())
        }
    }
}

/// The door of the dashboard and `/metrics`, with its token and shared state.
pub(crate) struct Door(HttpState);

impl Door {
    /// The door as `ManagerBuilder::http` registers it.
    pub(crate) fn make(
        builder: &super::ManagerBuilder,
        _: &[u8],
    ) -> crate::error::Result<Arc<dyn super::listener::Listener>> {
        let state = HttpState::new(builder.http_token.clone(), builder.storage.dir.as_deref())?;
        Ok(Arc::new(Door(state)))
    }
}

impl super::listener::Listener for Door {
    fn name(&self) -> &'static str {
        "http"
    }

    fn serve(&self, shared: &Arc<Shared>, connection: &super::listener::Admitted) -> String {
        if let Err(e) = serve(shared, &self.0, &connection.stream, connection.id) {
            log::debug!("http: {e}");
        }
        "answered".into()
    }

    fn busy(&self, why: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = Response::text(503, &format!("{why}\n")).write(&mut out);
        out
    }

    /// The manager's, but at most [`MAX_CONNECTIONS`] each: a page needs few, and a thread
    /// per connection must stay cheap.
    fn caps(&self, limits: &super::Limits) -> super::listener::Caps {
        let caps = super::listener::Caps::of(limits);
        super::listener::Caps {
            connections: caps.connections.min(MAX_CONNECTIONS),
            handshakes: caps.handshakes.min(MAX_CONNECTIONS),
        }
    }

    fn stack_size(&self, _: &super::Limits) -> usize {
        256 * 1024
    }

    fn thread_name(&self) -> &'static str {
        "monogusa-http"
    }

    /// Requests carry a token, not a proof of the key: no connection events.
    fn reports_events(&self) -> bool {
        false
    }

    fn token(&self) -> Option<&str> {
        Some(self.0.token())
    }

    fn announce(&self, _: &Shared, address: &crate::transport::Address) {
        log_dashboard(&self.0, address);
    }
}

/// Says where the dashboard is, with its token: the operator's one way in.
fn log_dashboard(http: &HttpState, address: &crate::transport::Address) {
    // Never the whole token: logs travel further than the operator's terminal.
    log::info!(
        "manager serving its dashboard on http://{address}/?token=TOKEN, TOKEN being {}",
        http.hint()
    );
    if let crate::transport::Address::Tcp { host, .. } = address
        && host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| !ip.is_loopback())
    {
        log::warn!(
            "the dashboard at {address} is reachable beyond this machine: plain HTTP, its token in the clear; put a TLS proxy in front"
        );
    }
}

/// Holds one of the [`MAX_STREAMS`] streaming places while it lives.
struct Streaming<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Streaming<'a> {
    fn take(streams: &'a std::sync::atomic::AtomicUsize) -> Option<Self> {
        use std::sync::atomic::Ordering::SeqCst;
        streams
            .fetch_update(SeqCst, SeqCst, |n| (n < MAX_STREAMS).then_some(n + 1))
            .ok()
            .map(|_| Streaming(streams))
    }
}

impl Drop for Streaming<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A response to write.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub(crate) fn text(status: u16, body: &str) -> Self {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub(crate) fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            _ => "Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

/// Reads the head within [`HEAD_TIMEOUT`], answers, closes.
/// Appends what arrives within the socket's read timeout to `into` (nothing, if it times
/// out); false once the peer has closed.
fn read_some(stream: &mut &Stream, into: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk) {
        Ok(0) => Ok(false),
        Ok(n) => {
            into.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) if crate::transport::is_timeout(&e) => Ok(true),
        Err(e) => Err(e),
    }
}

fn serve(shared: &Arc<Shared>, state: &HttpState, stream: &Stream, id: u64) -> std::io::Result<()> {
    let mut stream = stream;
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buffer = Vec::with_capacity(1024);
    let request = loop {
        match request::parse(&buffer) {
            Ok(Some((request, _))) => break request,
            Ok(None) => {}
            Err(Refusal::TooLarge) => {
                return Response::text(431, "request head too large\n").write(&mut stream);
            }
            Err(Refusal::Malformed(why)) => {
                return Response::text(400, &format!("bad request: {why}\n")).write(&mut stream);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Response::text(408, "request head too slow\n").write(&mut stream);
        }
        stream.set_read_timeout(Some(left.min(Duration::from_secs(1))))?;
        if !read_some(&mut stream, &mut buffer)? {
            return Ok(());
        }
    };
    stream.set_read_timeout(None)?;
    if let Err(why) = shared.promote(id) {
        return Response::text(503, &format!("{why}\n")).write(&mut stream);
    }
    let streaming =
        request.method == "GET" && (request.path == "/events" || request.path == "/logs/ws");
    let place = if streaming {
        Streaming::take(&state.streams)
    } else {
        None
    };
    if streaming && place.is_none() {
        return Response::text(
            503,
            "too many live views of this dashboard; try again later\n",
        )
        .write(&mut stream);
    }
    if request.path == "/healthz" {
        return Response::text(200, "ok\n").write(&mut stream);
    }
    let (authorized, from_query) = authorized(state, &request);
    if !authorized {
        return Response::text(
            401,
            "the dashboard needs its token: open /?token=TOKEN once (ManagerHandle::http_token, or the token file)\n",
        )
        .write(&mut stream);
    }
    if request.method == "POST" && !same_origin(&request) {
        return Response::text(403, "a POST from another origin changes nothing\n")
            .write(&mut stream);
    }
    if request.path == "/events" && request.method == "GET" {
        return pages::events(shared, state, &mut stream);
    }
    if request.path == "/logs/ws" && request.method == "GET" {
        return websocket::serve(shared, &request, &mut stream);
    }
    let mut response = pages::route(shared, state, &request);
    if from_query {
        response.headers.push((
            "Set-Cookie",
            format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                state.token
            ),
        ));
    }
    response.write(&mut stream)
}

/// Whether the request carries the token, and whether it came in the query.
fn authorized(state: &HttpState, request: &Request) -> (bool, bool) {
    let bearer = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    let matches = |given: Option<&str>| given.is_some_and(|t| constant_time_eq(t, &state.token));
    if matches(request.cookie(COOKIE)) || matches(bearer) {
        return (true, false);
    }
    let query = matches(request.query_param("token"));
    (query, query)
}

/// Compares without an early exit, so timing tells nothing of the token.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A POST's `Origin`, when sent, must be this host (browsers send it on every cross-site
/// POST); none means a non-browser client, which must then have sent the token itself.
fn same_origin(request: &Request) -> bool {
    match (request.header("origin"), request.header("host")) {
        (None, _) => request.cookie(COOKIE).is_none(),
        (Some(origin), Some(host)) => {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        (Some(_), None) => false,
    }
}
