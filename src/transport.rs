//! Where managers listen and clients connect: TCP, Unix-domain sockets and (on Windows)
//! named pipes, and the socket options every connection gets (TCP_NODELAY so small calls
//! are not delayed, keepalive so a vanished peer is eventually noticed).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
#[cfg(unix)]
use std::path::{Path, PathBuf};
#[cfg(windows)]
use std::sync::Arc;

#[cfg(windows)]
use monogusa_win::pipe::{PipeListener, PipeStream};

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::error::{Error, Result};

/// How long an idle TCP connection waits before the first keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// Pending connections the kernel queues before `accept`.
const LISTEN_BACKLOG: i32 = 1024;

/// Whether an I/O error is a socket timeout firing (reported as `WouldBlock` on Unix,
/// `TimedOut` elsewhere).
pub(crate) use crate::error::is_timeout;

/// A manager's address: `host:port` for TCP, `unix:/path` for a Unix-domain socket, or
/// `pipe:NAME` for a Windows named pipe (`\\.\pipe\NAME` is accepted too).
///
/// ```
/// use monogusa::Address;
///
/// let tcp: Address = "127.0.0.1:4343".parse().unwrap();
/// assert_eq!(tcp.to_string(), "127.0.0.1:4343");
/// let v6: Address = "[::1]:0".parse().unwrap();
/// assert_eq!(v6.to_string(), "[::1]:0");
/// let unix: Address = "unix:/tmp/manager.sock".parse().unwrap();
/// assert_eq!(unix.to_string(), "unix:/tmp/manager.sock");
/// assert!("localhost".parse::<Address>().is_err()); // no port
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP address; the host is a name or an IP literal, resolved when used.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Port; 0 asks the system for a free one when binding.
        port: u16,
    },
    /// A Unix-domain socket at this path.
    #[cfg(unix)]
    Unix(PathBuf),
    /// A Windows named pipe, `\\.\pipe\NAME`, by its `NAME`.
    #[cfg(windows)]
    Pipe(String),
}

impl Address {
    /// A TCP address.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A Unix-domain socket address.
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Address::Unix(path.into())
    }

    /// A Windows named pipe address, by the pipe's name (with or without `\\.\pipe\`). A name
    /// that cannot be a pipe's (empty, over 200 characters, holding `\`, `/` or NUL) is
    /// refused when the manager binds it ([`Error::InvalidAddress`]) or a client connects to it.
    #[cfg(windows)]
    pub fn pipe(name: impl Into<String>) -> Self {
        let name = name.into();
        match name.strip_prefix(monogusa_win::pipe::PREFIX) {
            Some(short) => Address::Pipe(short.to_string()),
            None => Address::Pipe(name),
        }
    }
}

/// Why `name` cannot name a pipe, if it cannot. Checked when an address is parsed, and again
/// at bind and connect for names given to [`Address::pipe`], so a bad name gets our words
/// rather than the system's.
fn pipe_name_problem(name: &str) -> Option<&'static str> {
    (name.is_empty() || name.contains(['\\', '/', '\0']) || name.len() > 200)
        .then_some("a pipe name is 1 to 200 characters, without '\\', '/' or NUL")
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            #[cfg(unix)]
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            #[cfg(windows)]
            Address::Pipe(name) => write!(f, "pipe:{name}"),
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidAddress {
            input: input.to_string(),
            reason,
        };
        if let Some(path) = input.strip_prefix("unix:") {
            #[cfg(unix)]
            {
                if path.is_empty() {
                    return Err(invalid("a unix: address needs a path"));
                }
                return Ok(Address::Unix(PathBuf::from(path)));
            }
            #[cfg(not(unix))]
            {
                let _ = path;
                return Err(invalid(
                    "Unix-domain sockets are not available on this system",
                ));
            }
        }
        let pipe = input
            .strip_prefix("pipe:")
            .or_else(|| input.strip_prefix(r"\\.\pipe\"));
        if let Some(name) = pipe {
            if let Some(reason) = pipe_name_problem(name) {
                return Err(invalid(reason));
            }
            #[cfg(windows)]
            return Ok(Address::Pipe(name.to_string()));
            #[cfg(not(windows))]
            return Err(invalid(
                "named pipes are a Windows transport; use unix:/path here",
            ));
        }
        let (host, port) = if let Some(rest) = input.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| invalid("missing ']' after an IPv6 host"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| invalid("expected ':port' after ']'"))?;
            (host, port)
        } else {
            let (host, port) = input
                .rsplit_once(':')
                .ok_or_else(|| invalid("expected host:port or unix:/path"))?;
            if host.contains(':') {
                return Err(invalid("write IPv6 hosts in brackets, like [::1]:4343"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
        Ok(Address::tcp(host, port))
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::tcp(addr.ip().to_string(), addr.port())
    }
}

/// Anything that names an address: `&str`, `String`, [`Address`] or [`SocketAddr`].
/// Parse errors surface when the address is used, as [`Error::InvalidAddress`].
pub trait ToAddress {
    /// Converts to an [`Address`].
    fn to_address(&self) -> Result<Address>;
}

impl ToAddress for Address {
    fn to_address(&self) -> Result<Address> {
        Ok(self.clone())
    }
}

impl ToAddress for str {
    fn to_address(&self) -> Result<Address> {
        self.parse()
    }
}

impl ToAddress for String {
    fn to_address(&self) -> Result<Address> {
        self.parse()
    }
}

impl ToAddress for SocketAddr {
    fn to_address(&self) -> Result<Address> {
        Ok((*self).into())
    }
}

impl<T: ToAddress + ?Sized> ToAddress for &T {
    fn to_address(&self) -> Result<Address> {
        (**self).to_address()
    }
}

/// A connected socket of either kind.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
    /// Shared, since a pipe handle cannot be duplicated the way a socket can.
    #[cfg(windows)]
    Pipe(Arc<PipeStream>),
}

/// What a failed connect means, in words a person acts on.
fn in_words(address: &Address, e: &io::Error) -> String {
    use io::ErrorKind::{ConnectionRefused, TimedOut};
    match (address, e.kind()) {
        #[cfg(unix)]
        (Address::Unix(path), io::ErrorKind::NotFound) => {
            format!("no socket at {}: is the manager running?", path.display())
        }
        #[cfg(unix)]
        (Address::Unix(path), ConnectionRefused) => format!(
            "nothing listens on {} (a socket file left by a manager that is gone?)",
            path.display()
        ),
        #[cfg(unix)]
        (Address::Unix(path), io::ErrorKind::PermissionDenied) => format!(
            "permission denied on {} (the manager's socket is for its own user)",
            path.display()
        ),
        (Address::Tcp { .. }, ConnectionRefused) => {
            "connection refused: nothing listens there (is the manager running?)".into()
        }
        (Address::Tcp { .. }, TimedOut) => {
            "no answer in time (a firewall, or a wrong host?)".into()
        }
        _ => e.to_string(),
    }
}

impl Stream {
    /// Connects to `address`, trying each resolved IP in turn for TCP. Errors name the
    /// address (`connection refused` alone does not say where).
    pub(crate) fn connect(address: &Address, timeout: Option<Duration>) -> io::Result<Stream> {
        Self::connect_to(address, timeout).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("connecting to {address}: {}", in_words(address, &e)),
            )
        })
    }

    fn connect_to(address: &Address, timeout: Option<Duration>) -> io::Result<Stream> {
        match address {
            Address::Tcp { host, port } => {
                let mut last_error = None;
                let resolved = (host.as_str(), *port).to_socket_addrs().map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot resolve host {host} ({e})"))
                })?;
                for addr in resolved {
                    match connect_tcp(addr, timeout) {
                        Ok(stream) => return Ok(Stream::Tcp(stream)),
                        Err(e) => last_error = Some(e),
                    }
                }
                Err(last_error.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
                }))
            }
            #[cfg(unix)]
            Address::Unix(path) => UnixStream::connect(path).map(Stream::Unix),
            #[cfg(windows)]
            Address::Pipe(name) => {
                if let Some(reason) = pipe_name_problem(name) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("pipe:{name}: {reason}"),
                    ));
                }
                PipeStream::connect(name, timeout).map(|p| Stream::Pipe(Arc::new(p)))
            }
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(timeout),
            #[cfg(windows)]
            Stream::Pipe(p) => p.set_read_timeout(timeout),
        }
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_write_timeout(timeout),
            #[cfg(windows)]
            Stream::Pipe(p) => p.set_write_timeout(timeout),
        }
    }

    /// Sets both directions' timeouts; `None` blocks without limit.
    pub(crate) fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(how),
            #[cfg(windows)]
            Stream::Pipe(p) => p.shutdown(how),
        }
    }

    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            #[cfg(unix)]
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
            #[cfg(windows)]
            Stream::Pipe(p) => Ok(Stream::Pipe(Arc::clone(p))),
        }
    }

    /// Who is on the other end, for log lines.
    pub(crate) fn peer_label(&self) -> String {
        match self {
            Stream::Tcp(s) => s
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp peer".into()),
            #[cfg(unix)]
            Stream::Unix(_) => "unix peer".into(),
            #[cfg(windows)]
            Stream::Pipe(p) => match p.client_process_id() {
                Some(pid) => format!("pipe client (pid {pid})"),
                None => "pipe peer".into(),
            },
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reading and writing through a shared reference, as std's sockets allow: the manager keeps
/// one descriptor per connection and shares it between the connection's thread and the
/// connection table (which shuts it down at shutdown), instead of a duplicate descriptor.
impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(s) => (&*s).read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => (&*s).read(buf),
            #[cfg(windows)]
            Stream::Pipe(p) => p.read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Stream::Tcp(s) => (&*s).write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => (&*s).write(buf),
            #[cfg(windows)]
            Stream::Pipe(p) => p.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
impl Stream {
    fn sock_ref(&self) -> SockRef<'_> {
        match self {
            Stream::Tcp(s) => SockRef::from(s),
            Stream::Unix(s) => SockRef::from(s),
        }
    }

    /// Whether the peer has closed or reset the connection, without reading anything or
    /// waiting: bytes it sent stay queued for the connection's reader. One syscall.
    pub(crate) fn peer_gone(&self) -> bool {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match self
            .sock_ref()
            .recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        {
            Ok(0) => true,  // end of stream: the peer closed
            Ok(_) => false, // bytes waiting: it is alive
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        }
    }

    /// How many bytes are queued for reading, up to `limit`, without reading them or waiting.
    pub(crate) fn queued_bytes(&self, limit: usize) -> io::Result<usize> {
        let mut probe = vec![std::mem::MaybeUninit::<u8>::uninit(); limit];
        match self
            .sock_ref()
            .recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes what fits without waiting; `Ok(0)` when nothing fits now.
    pub(crate) fn send_nonblocking(&self, bytes: &[u8]) -> io::Result<usize> {
        match self
            .sock_ref()
            .send_with_flags(bytes, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// The same three looks without waiting, on Windows: Winsock has no per-call
/// `MSG_DONTWAIT`, so sockets are polled (never switched to non-blocking mode, which would
/// break the connection thread's blocking reads), and pipes are peeked.
#[cfg(windows)]
impl Stream {
    /// Whether the peer has closed or reset the connection, without reading or waiting.
    pub(crate) fn peer_gone(&self) -> bool {
        use monogusa_win::pipe::Queued;
        use monogusa_win::socket;
        match self {
            Stream::Tcp(s) => match socket::readiness(s) {
                Ok(ready) if ready.hung_up => true,
                // Readable with nothing queued: the peer's FIN.
                Ok(ready) if ready.readable => socket::queued_bytes(s).is_ok_and(|n| n == 0),
                Ok(_) => false,
                Err(_) => true,
            },
            Stream::Pipe(p) => !matches!(p.queued(), Ok(Queued::Bytes(_))),
        }
    }

    /// How many bytes are queued for reading, up to `limit`, without reading them or waiting.
    pub(crate) fn queued_bytes(&self, limit: usize) -> io::Result<usize> {
        use monogusa_win::pipe::Queued;
        let queued = match self {
            Stream::Tcp(s) => monogusa_win::socket::queued_bytes(s)?,
            Stream::Pipe(p) => match p.queued()? {
                Queued::Bytes(n) => n,
                Queued::Closed => 0,
            },
        };
        Ok(queued.min(limit))
    }

    /// Writes what fits without waiting; `Ok(0)` when nothing fits now.
    pub(crate) fn send_nonblocking(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => {
                if monogusa_win::socket::readiness(s)?.writable {
                    (&*s).write(bytes)
                } else {
                    Ok(0)
                }
            }
            Stream::Pipe(p) => p.write_now(bytes),
        }
    }
}

impl Stream {
    /// The peer's IP address, for TCP connections (Unix-socket peers have none).
    pub(crate) fn peer_ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().ok().map(|a| a.ip()),
            #[cfg(unix)]
            Stream::Unix(_) => None,
            #[cfg(windows)]
            Stream::Pipe(_) => None,
        }
    }
}

/// A stream whose reads and writes must all be done by one deadline: a total limit, unlike a
/// socket timeout, which a peer resets with every byte it sends. The socket's timeouts are
/// re-armed only when they would overshoot the deadline by more than a little, so a quick
/// exchange costs no extra syscalls.
pub(crate) struct Deadline<'a> {
    stream: &'a Stream,
    deadline: std::time::Instant,
    /// The timeout both directions of the socket have now.
    armed: Duration,
}

impl<'a> Deadline<'a> {
    /// Sets the socket's timeouts to `limit` and starts counting.
    pub(crate) fn start(stream: &'a Stream, limit: Duration) -> io::Result<Deadline<'a>> {
        let limit = limit.max(Duration::from_millis(1));
        stream.set_timeouts(Some(limit))?;
        Ok(Deadline {
            stream,
            deadline: std::time::Instant::now() + limit,
            armed: limit,
        })
    }

    fn arm(&mut self) -> io::Result<()> {
        const SLACK: Duration = Duration::from_millis(50);
        let left = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the deadline passed",
            ));
        }
        if left + SLACK < self.armed {
            let left = left.max(Duration::from_millis(1));
            self.stream.set_timeouts(Some(left))?;
            self.armed = left;
        }
        Ok(())
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        let mut stream = self.stream;
        stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn connect_tcp(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    tune_tcp(&SockRef::from(&socket))?;
    match timeout {
        Some(t) => socket.connect_timeout(&addr.into(), t)?,
        None => socket.connect(&addr.into())?,
    }
    Ok(socket.into())
}

fn tune_tcp(socket: &SockRef<'_>) -> io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(KEEPALIVE_IDLE))
}

/// A bound, listening socket of either kind.
#[derive(Debug)]
pub(crate) enum ListeningSocket {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixSocketFile),
    #[cfg(windows)]
    Pipe(PipeListener),
}

impl ListeningSocket {
    /// Binds `address`. For Unix sockets: a file left by a dead manager is replaced, a live
    /// manager's socket gives `AddrInUse`, and anything that is not a socket is left alone.
    pub(crate) fn bind(address: &Address, options: &ListenOptions) -> Result<ListeningSocket> {
        Self::bind_to(address, options).map_err(|e| match e {
            Error::Io(e) => Error::Io(io::Error::new(
                e.kind(),
                format!("listening on {address}: {e}"),
            )),
            other => other,
        })
    }

    #[cfg_attr(not(windows), allow(unused_variables))]
    fn bind_to(address: &Address, options: &ListenOptions) -> Result<ListeningSocket> {
        match address {
            Address::Tcp { host, port } => {
                let mut last_error = None;
                let resolved = (host.as_str(), *port).to_socket_addrs().map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot resolve host {host} ({e})"))
                })?;
                for addr in resolved {
                    match bind_tcp(addr) {
                        Ok(listener) => return Ok(ListeningSocket::Tcp(listener)),
                        Err(e) => last_error = Some(e),
                    }
                }
                Err(Error::Io(last_error.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
                })))
            }
            #[cfg(unix)]
            Address::Unix(path) => UnixSocketFile::bind(path).map(ListeningSocket::Unix),
            #[cfg(windows)]
            Address::Pipe(name) => {
                if let Some(reason) = pipe_name_problem(name) {
                    return Err(Error::InvalidAddress {
                        input: format!("pipe:{name}"),
                        reason,
                    });
                }
                let access = monogusa_win::pipe::Access {
                    group: options.pipe_group.clone(),
                };
                Ok(ListeningSocket::Pipe(PipeListener::bind(name, &access)?))
            }
        }
    }

    /// Waits for the next connection and tunes it.
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        match self {
            ListeningSocket::Tcp(l) => {
                let (stream, _) = l.accept()?;
                tune_tcp(&SockRef::from(&stream))?;
                Ok(Stream::Tcp(stream))
            }
            #[cfg(unix)]
            ListeningSocket::Unix(file) => Ok(Stream::Unix(file.listener.accept()?.0)),
            #[cfg(windows)]
            ListeningSocket::Pipe(pipe) => Ok(Stream::Pipe(Arc::new(pipe.accept()?))),
        }
    }

    /// The address actually bound (with the real port when 0 was asked for).
    pub(crate) fn local_address(&self) -> io::Result<Address> {
        match self {
            ListeningSocket::Tcp(l) => Ok(l.local_addr()?.into()),
            #[cfg(unix)]
            ListeningSocket::Unix(file) => Ok(Address::Unix(file.path.clone())),
            #[cfg(windows)]
            ListeningSocket::Pipe(pipe) => Ok(Address::pipe(pipe.path())),
        }
    }

    /// An address a local client can use to reach this listener (wildcard binds become
    /// loopback), used to wake a blocked `accept` at shutdown.
    pub(crate) fn wake_address(&self) -> io::Result<Address> {
        match self {
            ListeningSocket::Tcp(l) => {
                let mut addr = l.local_addr()?;
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                Ok(addr.into())
            }
            #[cfg(unix)]
            ListeningSocket::Unix(file) => Ok(Address::Unix(file.path.clone())),
            #[cfg(windows)]
            ListeningSocket::Pipe(pipe) => Ok(Address::pipe(pipe.path())),
        }
    }
}

/// How listeners are made, beyond their address.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListenOptions {
    /// A group whose members may open the manager's named pipes besides its own user.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) pipe_group: Option<String>,
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restarted manager rebind its port while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// A listening Unix socket and the file it owns; the file is removed when this is dropped,
/// unless something else has replaced it meanwhile.
#[cfg(unix)]
#[derive(Debug)]
pub(crate) struct UnixSocketFile {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the file we created, to recognise it at removal.
    identity: (u64, u64),
}

#[cfg(unix)]
impl UnixSocketFile {
    fn bind(path: &Path) -> Result<Self> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                )));
            }
            match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("a live manager is listening on {}", path.display()),
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    log::info!("replacing stale socket file {}", path.display());
                    std::fs::remove_file(path)?;
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
        let listener = bind_private(path)?;
        // Already 0600 on Linux (see `bind_private`); elsewhere this narrows it after the fact.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let meta = std::fs::metadata(path)?;
        Ok(UnixSocketFile {
            listener,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
        })
    }
}

/// The longest Unix socket path the system takes (`sun_path` holds 108 bytes with the NUL).
#[cfg(unix)]
const MAX_UNIX_PATH: usize = 107;

/// Binds a Unix socket at `path` that is never reachable by others, not even for an instant:
/// the socket's own mode is narrowed to 0600 before `bind`, which Linux gives the file it
/// creates (the usual chmod after `bind` leaves a window in which anyone may connect).
#[cfg(unix)]
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::PermissionsExt;

    let len = path.as_os_str().len();
    if len > MAX_UNIX_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the socket path {} is {len} bytes long; Unix sockets allow at most {MAX_UNIX_PATH}",
                path.display()
            ),
        ));
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let file = std::fs::File::from(OwnedFd::from(socket));
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let socket = Socket::from(OwnedFd::from(file));
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(UnixListener::from(OwnedFd::from(socket)))
}

#[cfg(unix)]
impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.identity => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    log::warn!("cannot remove socket file {}: {e}", self.path.display());
                }
            }
            _ => {} // already gone, or replaced by someone else's file: not ours to remove
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for text in [
            "127.0.0.1:4343",
            "[::1]:0",
            "localhost:4343",
            #[cfg(unix)]
            "unix:/path/to.sock",
            #[cfg(windows)]
            "pipe:monogusa-7",
            "[fe80::1%eth0]:80",
            "example.com:65535",
        ] {
            let addr: Address = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        assert_eq!(
            "[::1]:7".parse::<Address>().unwrap(),
            Address::tcp("::1", 7)
        );
        #[cfg(unix)]
        assert_eq!(
            "unix:/a b".parse::<Address>().unwrap(),
            Address::unix("/a b")
        );
    }

    #[cfg(windows)]
    #[test]
    fn pipe_addresses_take_both_spellings() {
        let short: Address = "pipe:jobs".parse().unwrap();
        let long: Address = r"\\.\pipe\jobs".parse().unwrap();
        assert_eq!(short, long);
        assert_eq!(long, Address::pipe("jobs"));
        assert_eq!(Address::pipe(r"\\.\pipe\jobs"), short);
        assert_eq!(long.to_string(), "pipe:jobs");
    }

    #[cfg(not(windows))]
    #[test]
    fn pipe_addresses_say_they_are_for_windows() {
        let err = "pipe:jobs".parse::<Address>().unwrap_err().to_string();
        assert!(err.contains("Windows"), "{err}");
    }

    #[cfg(not(unix))]
    #[test]
    fn unix_addresses_say_they_are_not_here() {
        let err = "unix:/tmp/m.sock"
            .parse::<Address>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not available"), "{err}");
    }

    #[test]
    fn malformed_pipe_names_are_refused() {
        for text in ["pipe:", "pipe:a/b", r"pipe:a\\b", "pipe:a\0b"] {
            let err = text.parse::<Address>().unwrap_err();
            assert!(
                matches!(err, Error::InvalidAddress { .. }),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        for text in [
            "",
            "localhost",
            ":80",
            "host:",
            "host:65536",
            "host:-1",
            "::1:80",
            "[::1]",
            "[::1:80",
            "[]:80",
            "unix:",
            "host:80x",
        ] {
            let err = text.parse::<Address>().unwrap_err();
            assert!(
                matches!(err, Error::InvalidAddress { ref input, .. } if input == text),
                "{text:?}: {err}"
            );
        }
    }

    /// The socket file is 0600 from the moment `bind` creates it, not after a chmod.
    #[cfg(unix)]
    #[test]
    fn unix_sockets_are_private_from_creation() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        let _listener = bind_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[cfg(unix)]
    #[test]
    fn a_too_long_unix_path_says_the_limit_and_the_length() {
        let path = format!("/tmp/{}", "x".repeat(120));
        let err =
            ListeningSocket::bind(&Address::unix(&path), &ListenOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("125 bytes long") && text.contains("at most 107"),
            "{text}"
        );
    }

    #[test]
    fn socket_addr_converts() {
        let v4: SocketAddr = "127.0.0.1:5".parse().unwrap();
        assert_eq!(Address::from(v4).to_string(), "127.0.0.1:5");
        let v6: SocketAddr = "[::1]:5".parse().unwrap();
        assert_eq!(Address::from(v6).to_string(), "[::1]:5");
    }
}
