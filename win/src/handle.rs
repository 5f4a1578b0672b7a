//! Handles, events and wide strings: the small pieces every other module uses.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::ptr::null;
use std::time::Duration;

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Threading::{CreateEventW, INFINITE};

/// Takes ownership of a handle a Windows call just returned, or its error.
pub(crate) fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the handle is valid (checked above) and was just returned to us by the call
    // that created it, so nobody else owns it.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle as RawHandle) })
}

/// The raw handle, for passing to Windows calls; ownership stays with `handle`.
pub(crate) fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

/// `text` as a NUL-terminated UTF-16 string; a NUL inside is refused (Windows would
/// silently cut the name there).
pub(crate) fn wide(text: &str) -> io::Result<Vec<u16>> {
    if text.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{text:?} contains a NUL character"),
        ));
    }
    Ok(text.encode_utf16().chain(Some(0)).collect())
}

/// A NUL-terminated UTF-16 string at `text`, read into a `String`.
///
/// # Safety
/// `text` points to a valid, NUL-terminated UTF-16 string.
pub(crate) unsafe fn from_wide(text: *const u16) -> String {
    let mut len = 0;
    // SAFETY: the caller promises a NUL terminator, so every unit up to it is readable.
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units before the terminator were just read one by one.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) })
}

/// Milliseconds for a Windows wait: rounded up (a 0.5 ms timeout must not become "do not
/// wait"), `None` for no limit.
pub(crate) fn wait_millis(timeout: Option<Duration>) -> u32 {
    match timeout {
        None => INFINITE,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(u128::from(INFINITE - 1)) as u32
        }
    }
}

/// A manual-reset event, for one overlapped operation at a time.
#[derive(Debug)]
pub(crate) struct Event(OwnedHandle);

impl Event {
    pub(crate) fn new() -> io::Result<Event> {
        // SAFETY: no security attributes and no name: plain values, nothing borrowed.
        let handle = unsafe { CreateEventW(null(), 1, 0, null()) };
        owned(handle).map(Event)
    }

    pub(crate) fn raw(&self) -> HANDLE {
        raw(&self.0)
    }
}
