//! Console control events reach every watch, through the one handler.
#![cfg(windows)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use monogusa_win::console::{ConsoleEvent, ConsoleWatch, send_ctrl_break};

#[test]
#[ignore = "Wine 8 refuses GenerateConsoleCtrlEvent without a real console \
            (ERROR_INVALID_ACCESS, even after AllocConsole); run with --ignored on Windows"]
fn ctrl_break_reaches_every_watch() {
    // Under a test runner there may be no console to send to: make one.
    // SAFETY: no arguments; fails harmlessly if a console exists.
    unsafe { windows_sys::Win32::System::Console::AllocConsole() };
    let first = ConsoleWatch::start().unwrap();
    let second = ConsoleWatch::start().unwrap();
    send_ctrl_break(0).unwrap();
    let (tx, rx) = mpsc::channel();
    for watch in [first, second] {
        let tx = tx.clone();
        thread::spawn(move || {
            let _ = tx.send(watch.recv());
        });
    }
    for _ in 0..2 {
        let event = rx.recv_timeout(Duration::from_secs(10)).expect("no event");
        assert_eq!(event, Some(ConsoleEvent::CtrlBreak));
    }
}

#[test]
fn a_closer_ends_a_waiting_watch_and_others_live_on() {
    let kept = ConsoleWatch::start().unwrap();
    let closed = ConsoleWatch::start().unwrap();
    let closer = closed.closer();
    let waiter = thread::spawn(move || closed.recv());
    closer.close();
    assert_eq!(waiter.join().unwrap(), None);
    // The other watch is still registered and waiting for events, not closed.
    let (tx, rx) = mpsc::channel();
    let kept_closer = kept.closer();
    thread::spawn(move || {
        let _ = tx.send(kept.recv());
    });
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    kept_closer.close();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), None);
}
