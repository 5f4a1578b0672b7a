//! The operating system's "please stop" — SIGINT and SIGTERM on Unix; Ctrl-C, Ctrl-Break,
//! console close, logoff and shutdown on Windows — delivered to a callback on a thread of
//! its own while a [`StopSignals`] lives. `serve_forever` and the worker supervisor both
//! stop on it.

use std::io;
use std::thread::JoinHandle;

/// Watches for stop signals until dropped.
pub(crate) struct StopSignals {
    #[cfg(unix)]
    handle: signal_hook::iterator::Handle,
    #[cfg(windows)]
    closer: monogusa_win::console::ConsoleWatchCloser,
    thread: Option<JoinHandle<()>>,
}

impl StopSignals {
    /// Calls `on_signal` with the signal's name for each one that arrives, on a thread named
    /// `thread_name`.
    pub(crate) fn watch(
        thread_name: &str,
        mut on_signal: impl FnMut(&str) + Send + 'static,
    ) -> io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGINT, SIGTERM};
            let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
            let handle = signals.handle();
            let thread = std::thread::Builder::new()
                .name(thread_name.into())
                .spawn(move || {
                    for signal in signals.forever() {
                        on_signal(if signal == SIGINT {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        });
                    }
                })?;
            Ok(StopSignals {
                handle,
                thread: Some(thread),
            })
        }
        #[cfg(windows)]
        {
            let watch = monogusa_win::console::ConsoleWatch::start()?;
            let closer = watch.closer();
            let thread = std::thread::Builder::new()
                .name(thread_name.into())
                .spawn(move || {
                    while let Some(event) = watch.recv() {
                        on_signal(&event.to_string());
                    }
                })?;
            Ok(StopSignals {
                closer,
                thread: Some(thread),
            })
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        #[cfg(unix)]
        self.handle.close();
        #[cfg(windows)]
        self.closer.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
