//! What Winsock offers no per-call flag for: how many bytes a TCP socket holds unread, and
//! whether it could be read or written now, without blocking and without changing the
//! socket's mode (another thread may be in a blocking call on it).

use std::io;
use std::os::windows::io::AsRawSocket;

use windows_sys::Win32::Networking::WinSock::{
    FIONREAD, POLLERR, POLLHUP, POLLRDNORM, POLLWRNORM, SOCKET, SOCKET_ERROR, WSAGetLastError,
    WSAPOLLFD, WSAPoll, ioctlsocket,
};

fn last_socket_error() -> io::Error {
    // SAFETY: reads the calling thread's last Winsock error.
    io::Error::from_raw_os_error(unsafe { WSAGetLastError() })
}

/// Bytes queued unread on `socket`.
pub fn queued_bytes(socket: &impl AsRawSocket) -> io::Result<usize> {
    let mut queued = 0u32;
    // SAFETY: a valid socket and a place for the count.
    if unsafe { ioctlsocket(socket.as_raw_socket() as SOCKET, FIONREAD, &mut queued) }
        == SOCKET_ERROR
    {
        return Err(last_socket_error());
    }
    Ok(queued as usize)
}

/// What a socket could do now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A read would not block (bytes are queued, or the peer closed).
    pub readable: bool,
    /// A write would not block.
    pub writable: bool,
    /// The connection is closed or broken.
    pub hung_up: bool,
}

/// Looks at `socket` without waiting.
pub fn readiness(socket: &impl AsRawSocket) -> io::Result<Readiness> {
    let mut entry = WSAPOLLFD {
        fd: socket.as_raw_socket() as SOCKET,
        events: POLLRDNORM | POLLWRNORM,
        revents: 0,
    };
    // SAFETY: one valid entry, a zero timeout.
    if unsafe { WSAPoll(&mut entry, 1, 0) } == SOCKET_ERROR {
        return Err(last_socket_error());
    }
    Ok(Readiness {
        readable: entry.revents & POLLRDNORM != 0,
        writable: entry.revents & POLLWRNORM != 0,
        hung_up: entry.revents & (POLLHUP | POLLERR) != 0,
    })
}
